"""Unit tests of the Sentinel rules and decisions of roles/redis (issue 16): the current master
from the Sentinels' answers, the quorum, peer addresses, one host's Sentinel settings and the
topology rules, each message checked for the field it names."""

from __future__ import annotations

import pytest
from celery_fleet.errors import FleetError
from celery_fleet.redis_rules import redis_problems, sentinel_topology_problems
from celery_fleet.sentinel import current_master, parse_answer, peer_addresses, quorum, replication_info

PASSWORD = "test-only-password-0123456789"
FALLBACK = {"address": "10.0.0.1", "port": 6379}
SENTINEL_HOST = {
    "redis_password": PASSWORD,
    "redis_sentinel_enabled": True,
    "redis_sentinel_password": PASSWORD,
    "redis_replication_password": PASSWORD,
    "redis_sentinel_auth_password": PASSWORD,
    "redis_sentinel_master_name": "celery-fleet",
    "redis_replication_user": "replication",
    "redis_sentinel_auth_user": "sentinel",
    "redis_sentinel_port": 26379,
    "redis_sentinel_down_after_milliseconds": 5000,
    "redis_sentinel_failover_timeout": 60000,
    "redis_sentinel_parallel_syncs": 1,
    "redis_min_replicas_to_write": 1,
    "redis_min_replicas_max_lag": 10,
}
TOPOLOGY = {
    "redis_sentinel_enabled": True,
    "redis_sentinel_quorum": 0,
    "redis_sentinel_initial_master": "r1",
    "redis_sentinel_master_name": "celery-fleet",
    "redis_min_replicas_to_write": 1,
}
NODES = ["r1", "r2", "r3"]


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# --- the current master --------------------------------------------------------------------------


def test_no_sentinel_answering_falls_back_to_the_initial_master():
    master = current_master(
        ["", "Could not connect to Redis at 10.0.0.9:26379: Connection refused", ""], 3, FALLBACK
    )

    assert master == {"address": "10.0.0.1", "port": 6379, "source": "initial"}


def test_the_address_a_majority_names_is_the_master_not_the_fallback():
    answers = ["10.0.0.2\n6379\n", "10.0.0.2\n6379", ""]

    assert current_master(answers, 3, FALLBACK) == {"address": "10.0.0.2", "port": 6379, "source": "sentinel"}


def test_answers_without_a_majority_stop_the_run():
    with pytest.raises(FleetError) as error:
        current_master(["10.0.0.2\n6379", "10.0.0.3\n6379", ""], 3, FALLBACK)

    assert "field 'redis_sentinel_master_name'" in str(error.value)
    assert "10.0.0.2:6379 (1)" in str(error.value)


def test_the_sentinels_running_so_far_decide_while_they_are_deployed():
    master = current_master(["10.0.0.2\n6379", "", ""], 3, FALLBACK)

    assert master["address"] == "10.0.0.2"
    assert master["source"] == "sentinel"


def test_a_stale_minority_loses_to_the_majority_of_answers():
    master = current_master(["10.0.0.3\n6379", "10.0.0.2\n6379", "10.0.0.2\n6379"], 3, FALLBACK)

    assert master["address"] == "10.0.0.2"


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "NOAUTH Authentication required.",
        "AUTH failed: WRONGPASS invalid username-password pair",
        "\n",
        "a b\n1",
    ],
)
def test_error_replies_are_no_answer(stdout):
    assert parse_answer(stdout) is None


def asked(host: str, index: int, stdout: str, stderr: str = "") -> dict:
    """One registered result of tasks/master.yml's loop (Sentinel host, index of the password)."""
    return {"item": [host, index], "stdout": stdout, "stderr": stderr, "rc": 0}


WRONG = {
    "stdout": "NOAUTH Authentication required.",
    "stderr": "AUTH failed: WRONGPASS invalid username-password pair",
}


def test_a_sentinel_refusing_the_password_stops_the_run_instead_of_falling_back():
    """The trap: every Sentinel refusing a changed password looked like "no Sentinel runs yet", and
    the initial master came back in charge although a failover had moved the master."""
    answers = [asked(h, 0, WRONG["stdout"], WRONG["stderr"]) for h in ("s1", "s2", "s3")]

    with pytest.raises(FleetError) as error:
        current_master(answers, 3, FALLBACK)

    message = str(error.value)
    assert "field 'redis_sentinel_password'" in message
    assert "s1, s2, s3 refuse it" in message
    assert "redis_sentinel_previous_passwords" in message
    assert "nothing was changed" in message


def test_one_refusing_sentinel_among_answering_ones_still_stops_the_run():
    answers = [asked("s1", 0, "10.0.0.2\n6379"), asked("s2", 0, **WRONG), asked("s3", 0, "10.0.0.2\n6379")]

    with pytest.raises(FleetError, match="on s2 refuse it"):
        current_master(answers, 3, FALLBACK)


def test_a_bare_wrongpass_answer_is_a_refusal_too():
    with pytest.raises(FleetError, match="redis_sentinel_password"):
        current_master(["AUTH failed: WRONGPASS invalid username-password pair", "", ""], 3, FALLBACK)


def test_a_sentinel_with_no_password_yet_is_no_answer_not_a_refusal():
    """Debian's package starts Sentinel with its own file before the role writes the fleet's (first
    deployment): AUTH fails for want of a password, protected mode denies the command."""
    unconfigured = {
        "stdout": "DENIED Redis is running in protected mode because protected mode is enabled and no "
        "password is set for the default user.",
        "stderr": "AUTH failed: ERR AUTH <password> called without any password configured for the "
        "default user. Are you sure your configuration is correct?",
    }
    answers = [asked("s1", 0, **unconfigured), asked("s2", 0, ""), asked("s3", 0, "")]

    assert current_master(answers, 3, FALLBACK)["source"] == "initial"


def test_during_a_rotation_a_sentinel_not_yet_deployed_answers_to_the_previous_password():
    answers = [
        asked("s1", 0, "10.0.0.2\n6379"),
        asked("s1", 1, "10.0.0.2\n6379"),
        asked("s2", 0, **WRONG),
        asked("s2", 1, "10.0.0.2\n6379"),
        asked("s3", 0, **WRONG),
        asked("s3", 1, "10.0.0.2\n6379"),
    ]

    assert current_master(answers, 3, FALLBACK) == {"address": "10.0.0.2", "port": 6379, "source": "sentinel"}


def test_unreachable_sentinels_with_any_password_are_no_answer_not_a_refusal():
    down = {"stdout": "", "stderr": "Could not connect to Redis at 10.0.0.9:26379: Connection refused"}
    answers = [asked(h, i, **down) for h in ("s1", "s2", "s3") for i in (0, 1)]

    assert current_master(answers, 3, FALLBACK)["source"] == "initial"


def test_a_sentinel_refusing_one_password_and_unreachable_with_the_other_is_no_answer():
    down = {"stdout": "", "stderr": "Could not connect to Redis at 10.0.0.9:26379: Connection refused"}
    answers = [asked("s1", 0, **WRONG), asked("s1", 1, **down), asked("s2", 0, "10.0.0.3\n6379")]

    assert current_master(answers, 3, FALLBACK)["address"] == "10.0.0.3"


def test_previous_sentinel_passwords_are_checked_on_every_sentinel_host():
    old = "test-only-old-sentinels-0123"
    assert redis_problems({**SENTINEL_HOST, "redis_sentinel_previous_passwords": [old]}, "r1") == []
    assert redis_problems({**SENTINEL_ONLY, "redis_sentinel_previous_passwords": [old]}, "s1") == []

    for inputs, host in ((SENTINEL_HOST, "r1"), (SENTINEL_ONLY, "s1")):
        problem = only(redis_problems({**inputs, "redis_sentinel_previous_passwords": [PASSWORD]}, host))
        assert problem.startswith(f"host '{host}': field 'redis_sentinel_previous_passwords': ")
        assert "repeat the current password" in problem
        assert PASSWORD not in problem
    problem = only(redis_problems({**SENTINEL_HOST, "redis_sentinel_previous_passwords": ["short"]}, "r1"))
    assert "shorter than 16 characters" in problem


def test_quorum_zero_is_a_majority_and_a_declared_one_stays():
    assert (quorum(0, 3), quorum(0, 5), quorum(3, 5)) == (2, 3, 3)


def test_peer_addresses_prefer_the_announce_then_private_then_facts():
    hostvars = {
        "a": {"redis_announce_address": "10.0.0.1", "celery_fleet_private_address": "10.9.9.9"},
        "b": {"celery_fleet_private_address": "10.0.0.2"},
        "c": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.3"}}},
    }

    assert peer_addresses(["a", "b", "c"], hostvars) == {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3"}


def test_a_peer_without_address_is_named_or_left_out():
    with pytest.raises(FleetError, match="no address for x"):
        peer_addresses(["x"], {"x": {}})

    assert peer_addresses(["x"], {"x": {}}, strict=False) == {}


# --- one host's Sentinel settings -----------------------------------------------------------------


def test_valid_sentinel_host_passes():
    assert redis_problems(SENTINEL_HOST, "r1") == []


def test_sentinel_settings_are_not_checked_when_off():
    assert (
        redis_problems(
            {**SENTINEL_HOST, "redis_sentinel_enabled": False, "redis_sentinel_password": None}, "r1"
        )
        == []
    )


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"redis_sentinel_password": None}, ["field 'redis_sentinel_password'", "16 characters"]),
        ({"redis_replication_password": "short"}, ["field 'redis_replication_password'", "Vault"]),
        ({"redis_sentinel_auth_password": ""}, ["field 'redis_sentinel_auth_password'"]),
        ({"redis_sentinel_master_name": "my master"}, ["field 'redis_sentinel_master_name'", "'my master'"]),
        (
            {"redis_sentinel_auth_user": "replication"},
            ["field 'redis_replication_user, redis_sentinel_auth_user'"],
        ),
        (
            {"redis_acl_users": [{"name": "sentinel", "password": PASSWORD, "ruleset": "admin"}]},
            ["redis_sentinel_auth_user'", "clashing: sentinel"],
        ),
        ({"redis_sentinel_port": 6379}, ["field 'redis_sentinel_port'", "also a port of the data node"]),
        ({"redis_sentinel_port": 0}, ["field 'redis_sentinel_port'", "1-65535"]),
        (
            {"redis_sentinel_down_after_milliseconds": 10},
            ["field 'redis_sentinel_down_after_milliseconds'", ">= 100"],
        ),
        ({"redis_min_replicas_max_lag": 0}, ["field 'redis_min_replicas_max_lag'", ">= 1"]),
        ({"redis_sentinel_exporter_password": "short"}, ["field 'redis_sentinel_exporter_password'", "16"]),
        (
            {"redis_sentinel_exporter_password": PASSWORD, "redis_sentinel_exporter_user": "default"},
            ["field 'redis_sentinel_exporter_user'", "'default'"],
        ),
    ],
)
def test_each_sentinel_host_rule_names_host_and_field(change, fragments):
    problem = only(redis_problems({**SENTINEL_HOST, **change}, "r1"))

    assert problem.startswith("host 'r1': ")
    assert all(f in problem for f in fragments), problem


# A host of redis_sentinel that is not a data node runs a Sentinel only: none of the server's rules
# (its password, ACL users, memory policy, ports) and none of the replicas' settings apply to it.
DATA_NODE_ONLY = ("redis_password", "redis_replication_password", "redis_min_replicas_to_write",
                  "redis_min_replicas_max_lag")  # fmt: skip
SENTINEL_ONLY = {
    **{k: v for k, v in SENTINEL_HOST.items() if k not in DATA_NODE_ONLY},
    "redis_replication_hosts": ["r1", "r2"],
    "redis_sentinel_hosts": ["r1", "r2", "s1"],
}


def test_a_sentinel_only_host_needs_no_data_node_settings():
    # No redis_password, no ACL users with an admin, an evicting policy, a Sentinel port equal to
    # redis_port, no replication password: each would be refused on a data node.
    inputs = {
        **SENTINEL_ONLY,
        "redis_default_user_enabled": False,
        "redis_acl_users": [],
        "redis_maxmemory_policy": "allkeys-lru",
        "redis_port": 26379,
        "redis_min_replicas_max_lag": 0,
    }

    assert redis_problems(inputs, "s1") == []


def test_the_same_settings_on_a_data_node_are_refused():
    inputs = {**SENTINEL_ONLY, "redis_acl_users": [], "redis_port": 26379}

    problems = redis_problems(inputs, "r1")

    for field in ("redis_password", "redis_replication_password", "redis_sentinel_port"):
        assert any(f"field '{field}'" in p for p in problems), (field, problems)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"redis_sentinel_password": ""}, ["field 'redis_sentinel_password'", "16 characters"]),
        ({"redis_sentinel_auth_password": None}, ["field 'redis_sentinel_auth_password'"]),
        ({"redis_sentinel_auth_user": "a user"}, ["field 'redis_sentinel_auth_user'", "'a user'"]),
        ({"redis_sentinel_port": 0}, ["field 'redis_sentinel_port'", "1-65535"]),
        ({"redis_sentinel_failover_timeout": 10}, ["field 'redis_sentinel_failover_timeout'", ">= 1000"]),
    ],
)
def test_a_sentinel_only_host_still_gets_the_sentinel_rules(change, fragments):
    problem = only(redis_problems({**SENTINEL_ONLY, **change}, "s1"))

    assert problem.startswith("host 's1': ")
    assert all(f in problem for f in fragments), problem


def test_a_sentinel_only_host_with_tls_needs_the_tls_files():
    paths = {"redis_tls_cert_file": "/c.pem", "redis_tls_key_file": "/k.pem", "redis_tls_ca_file": "/ca.pem"}

    assert redis_problems({**SENTINEL_ONLY, "redis_tls_enabled": True, **paths}, "s1") == []
    problem = only(
        redis_problems({**SENTINEL_ONLY, "redis_tls_enabled": True, **paths, "redis_tls_key_file": ""}, "s1")
    )
    assert problem.startswith("host 's1': field 'redis_tls_key_file'"), problem
    assert "Sentinel host" in problem
    # A data node gets its own message for the same field, once.
    data_node = redis_problems(
        {**SENTINEL_HOST, "redis_tls_enabled": True, **paths, "redis_tls_key_file": ""}, "r1"
    )
    assert [p for p in data_node if "redis_tls_key_file" in p] == [
        next(p for p in data_node if "redis_tls_key_file" in p)
    ]


@pytest.mark.parametrize(
    "groups",
    [
        {},  # not given: a data node
        {"redis_replication_hosts": "{{ groups['redis'] }}"},  # not rendered: a data node
        {"redis_replication_hosts": ["r1", "s1"]},  # in both groups
        {"redis_sentinel_hosts": ["r1", "r2"]},  # in neither: the data node rules, as before
    ],
    ids=["unknown", "template", "both", "neither"],
)
def test_a_host_not_known_as_sentinel_only_is_checked_as_a_data_node(groups):
    inputs = {**SENTINEL_ONLY, **groups}
    for name in ("redis_replication_hosts", "redis_sentinel_hosts"):
        if name not in groups and not groups:
            inputs.pop(name)

    assert any("field 'redis_password'" in p for p in redis_problems(inputs, "s1"))


def test_the_sentinels_exporter_user_is_checked_only_when_its_password_is_set():
    assert redis_problems({**SENTINEL_HOST, "redis_sentinel_exporter_user": "default"}, "r1") == []
    assert redis_problems({**SENTINEL_HOST, "redis_sentinel_exporter_password": PASSWORD}, "r1") == []
    assert redis_problems({**SENTINEL_ONLY, "redis_sentinel_exporter_password": "x"}, "s1")


@pytest.mark.parametrize(
    "field", ["redis_replication_previous_passwords", "redis_sentinel_auth_previous_passwords"]
)
def test_previous_passwords_of_the_sentinel_users_are_checked_on_data_nodes(field):
    assert redis_problems({**SENTINEL_HOST, field: ["test-only-old-password-0123"]}, "r1") == []

    problem = only(redis_problems({**SENTINEL_HOST, field: [PASSWORD]}, "r1"))

    assert problem.startswith(f"host 'r1': field '{field}': previous passwords of redis_")
    assert "repeat the current password" in problem
    assert PASSWORD not in problem


def test_sentinel_messages_never_show_a_password():
    problems = redis_problems({**SENTINEL_HOST, "redis_sentinel_password": "short-secret"}, "r1")

    assert problems
    assert not any("short-secret" in p for p in problems)


# --- the topology -------------------------------------------------------------------------------


def test_valid_topology_passes():
    assert sentinel_topology_problems(TOPOLOGY, NODES, NODES) == []


def test_nothing_is_checked_with_sentinel_off():
    assert sentinel_topology_problems({**TOPOLOGY, "redis_sentinel_enabled": False}, ["r1"], []) == []


@pytest.mark.parametrize(
    ("change", "data_nodes", "sentinels", "fragments"),
    [
        ({}, NODES, ["r1", "r2"], ["field 'redis_sentinel'", "has 2 host(s)", "at least 3"]),
        ({}, NODES, [], ["field 'redis_sentinel_enabled'", "group redis_sentinel is empty"]),
        (
            {"redis_min_replicas_to_write": 0},
            ["r1"],
            NODES,
            ["field 'redis_sentinel_enabled'", "group redis has 1 host(s)"],
        ),
        ({"redis_sentinel_quorum": 2}, NODES, NODES, ["field 'redis_sentinel_quorum'", "must be odd"]),
        ({"redis_sentinel_quorum": 5}, NODES, NODES, ["field 'redis_sentinel_quorum'", "at most the 3"]),
        (
            {"redis_sentinel_initial_master": "w1"},
            NODES,
            NODES,
            ["field 'redis_sentinel_initial_master'", "'w1'"],
        ),
        (
            {"redis_min_replicas_to_write": 3},
            NODES,
            NODES,
            ["field 'redis_min_replicas_to_write'", "2 replica(s)"],
        ),
    ],
)
def test_each_topology_rule_names_the_field(change, data_nodes, sentinels, fragments):
    problem = only(sentinel_topology_problems({**TOPOLOGY, **change}, data_nodes, sentinels))

    assert all(f in problem for f in fragments), problem


def test_a_client_with_another_master_name_is_named():
    clients = {
        "w1": (["10.0.0.1:26379"], "other"),
        "w2": (["10.0.0.1:26379"], "celery-fleet"),
        "w3": ([], None),
    }

    problem = only(sentinel_topology_problems(TOPOLOGY, NODES, NODES, clients))

    assert problem.startswith("host 'w1': field 'celery_broker_master_name': 'other'")


def test_a_client_asking_for_sentinels_while_off_is_named():
    clients = {"w1": (["10.0.0.1:26379"], "celery-fleet")}

    problem = only(
        sentinel_topology_problems({**TOPOLOGY, "redis_sentinel_enabled": False}, ["r1"], [], clients)
    )

    assert "field 'celery_broker_sentinels'" in problem


MASTER_INFO = """# Replication\r
role:master\r
connected_slaves:2\r
min_slaves_good_slaves:2\r
slave0:ip=172.18.0.3,port=6379,state=online,offset=5120,lag=0\r
slave1:ip=172.18.0.4,port=6379,state=wait_bgsave,offset=0,lag=3\r
master_failover_state:no-failover\r
master_repl_offset:5120\r
"""


def test_replication_info_reads_the_master_and_its_replicas():
    info = replication_info(MASTER_INFO)

    assert info["role"] == "master"
    assert info["master_repl_offset"] == 5120
    assert [(r["ip"], r["port"], r["state"], r["offset"], r["lag"]) for r in info["replicas"]] == [
        ("172.18.0.3", 6379, "online", 5120, 0),
        ("172.18.0.4", 6379, "wait_bgsave", 0, 3),
    ]
    assert [r["ip"] for r in info["in_sync"]] == ["172.18.0.3"]
    assert info["replicas"][1]["summary"] == (
        "172.18.0.4:6379 wait_bgsave, last acknowledgement 3 s ago, 5120 bytes behind"
    )


def test_a_replica_behind_the_master_is_not_in_sync():
    info = replication_info(MASTER_INFO.replace("offset=5120", "offset=5119"))

    assert info["in_sync"] == []


def test_replication_info_of_a_replica_names_its_master_and_link():
    info = replication_info("role:slave\nmaster_host:172.18.0.2\nmaster_port:6379\nmaster_link_status:down\n")

    assert info["role"] == "slave"
    assert (info["master_host"], info["master_port"], info["master_link_status"]) == (
        "172.18.0.2",
        "6379",
        "down",
    )
    assert info["replicas"] == []


def test_replication_info_of_nothing_is_empty():
    assert replication_info(None) == {"role": "", "replicas": [], "in_sync": [], "master_repl_offset": 0}
