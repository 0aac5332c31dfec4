"""lib/celery_fleet/broker.py: the options every service gets, and the Redis ACL rule sets."""

from __future__ import annotations

import pytest
from celery_fleet.broker import (
    SECRET_SET,
    SENTINEL_BROKER_OPTIONS,
    SENTINEL_CELERY_SETTINGS,
    SENTINEL_SOCKET_TIMEOUT,
    acl_rulesets,
    connection,
    expected_broker_options,
    key_prefix_problems,
    option_errors,
    scoping_errors,
    sentinel_problems,
    tls_enabled,
    tls_fleet_errors,
    tls_input_problems,
    tls_servers,
    transport_options,
    userinfo,
)
from celery_fleet.errors import FleetError

COMMANDS = "-@all +ping  +brpop\n+lpush"


def test_no_prefix_allows_every_key_and_channel_and_adds_no_pattern_after_the_star():
    # Act
    rules = acl_rulesets("", 0, COMMANDS)

    # Assert: Redis refuses a channel pattern after `&*`, so the fanout patterns are left out.
    assert rules == {
        name: "resetkeys ~* resetchannels &* -@all +ping +brpop +lpush"
        for name in ("celery_worker", "celery_producer", "celery_flower")
    }


def test_a_prefix_scopes_keys_channels_and_kombus_fanout_patterns():
    # Act
    rules = acl_rulesets("cf:", 2, COMMANDS)

    # Assert
    assert rules["celery_worker"] == (
        "resetkeys ~cf:* resetchannels &cf:* &cf:/2.celery.pidbox &cf:/2.celeryev/worker.* "
        "-@all +ping +brpop +lpush"
    )
    assert rules["celery_producer"] == "resetkeys ~cf:* resetchannels &cf:* -@all +ping +brpop +lpush"
    assert (
        rules["celery_flower"]
        == "resetkeys ~cf:* resetchannels &cf:* &cf:/2.celeryev/* -@all +ping +brpop +lpush"
    )


@pytest.mark.parametrize("prefix", ["*", "cf:*", "a b", "x?", "[a]", "back\\slash", "é", "x" * 65, 3, None])
def test_a_prefix_that_would_change_the_acl_patterns_is_refused(prefix):
    # Act
    problems = key_prefix_problems(prefix, "redis_acl_key_prefix")

    # Assert
    assert len(problems) == 1
    assert str(problems[0]).startswith("field 'redis_acl_key_prefix': ")
    with pytest.raises(FleetError, match="redis_acl_key_prefix"):
        acl_rulesets(prefix, 0, COMMANDS)


@pytest.mark.parametrize("prefix", ["", "cf:", "app-1/", "a.b_c:", "x" * 64])
def test_plain_prefixes_are_accepted(prefix):
    assert key_prefix_problems(prefix, "celery_broker_key_prefix") == []


def test_a_bad_database_number_is_refused():
    with pytest.raises(FleetError, match="redis_acl_celery_db"):
        acl_rulesets("", -1, COMMANDS)


def test_transport_options_always_carry_the_visibility_timeout_and_the_prefix_only_when_set():
    assert transport_options() == {"broker": {"visibility_timeout": 3600}, "backend": {}}
    assert transport_options(7200, "cf:") == {
        "broker": {"visibility_timeout": 7200, "global_keyprefix": "cf:"},
        "backend": {"global_keyprefix": "cf:"},
    }


@pytest.mark.parametrize("timeout", [0, -5, "soon", True])
def test_transport_options_refuse_a_visibility_timeout_that_is_not_seconds(timeout):
    with pytest.raises(FleetError, match="celery_broker_visibility_timeout"):
        transport_options(timeout)


def test_option_errors_name_each_missing_or_different_option():
    # Act
    errors = option_errors(
        "host 'w1', worker 'io'",
        {"visibility_timeout": 7200, "global_keyprefix": "cf:", "max_connections": 20},
        {"visibility_timeout": 3600, "max_connections": 20, "socket_keepalive": True},
    )

    # Assert: the app's own extra option is not an error.
    assert errors == [
        "host 'w1', worker 'io': broker transport option visibility_timeout is 3600, the inventory says 7200",
        "host 'w1', worker 'io': broker transport option global_keyprefix is not set (the fleet sets 'cf:')",
    ]
    assert option_errors("w", {"visibility_timeout": 1}, None) == [
        "w: reported no broker transport options (expected {'visibility_timeout': 1})"
    ]


def test_scoping_errors_name_the_host_whose_prefix_differs_from_the_brokers():
    # Act
    errors = scoping_errors({"w1": "cf:", "w2": None, "w3": "a b"}, {"w1": 7200, "w2": 0}, "cf:")

    # Assert
    assert errors == [
        "host 'w2': field 'celery_broker_visibility_timeout': 0 is not a number of seconds >= 1",
        "host 'w3': field 'celery_broker_key_prefix': 'a b' is not allowed: up to 64 of the characters "
        'A-Z a-z 0-9 _ . : / - ("" turns key scoping off; * ? [ ] \\ and spaces '
        "would change the ACL patterns)",
    ]
    assert scoping_errors({"w1": "cf:"}, {}, "") == [
        "host 'w1': field 'celery_broker_key_prefix': 'cf:' differs from the broker's "
        "redis_acl_key_prefix '': "
        'set both to the same value ("" for no key scoping)'
    ]
    assert scoping_errors({"w1": None}, {}, None) == []
    assert scoping_errors({}, {}, "x y")[0].startswith("field 'redis_acl_key_prefix'")


# --- One builder for every client: direct Redis or through Sentinel -------------------------------

SENTINELS = ["10.0.0.1:26379", "10.0.0.2:26379", "redis-3.example:26380"]


def test_direct_connection_is_what_the_roles_built_before_sentinel():
    # Act
    built = connection("10.0.0.9", 6380, 2, "worker", "s3cret", visibility_timeout=7200, key_prefix="cf:")

    # Assert: db + 1 for the result backend, the options of transport_options, no Celery settings.
    assert built == {
        "broker_url": "redis://worker:s3cret@10.0.0.9:6380/2",
        "result_backend": "redis://worker:s3cret@10.0.0.9:6380/3",
        "transport_options": transport_options(7200, "cf:"),
        "settings": {},
    }


def test_credentials_are_percent_encoded_like_jinjas_urlencode_with_the_slash_replaced():
    # Arrange: the expression the roles used before the builder.
    from jinja2 import Environment

    env = Environment()
    user, password = "w ork/er", "p@ss/w:rd%?#&=+~é"
    jinja = env.from_string(
        "{{ u | urlencode | replace('/', '%2F') }}:{{ p | urlencode | replace('/', '%2F') }}"
    )

    # Act
    built = connection("h", 6379, 0, user, password)

    # Assert
    assert userinfo(user, password) == jinja.render(u=user, p=password)
    assert built["broker_url"] == f"redis://{jinja.render(u=user, p=password)}@h:6379/0"
    assert "@" not in userinfo(user, password).split(":")[1]


def test_sentinel_connection_lists_every_sentinel_for_broker_and_backend():
    # Act
    built = connection(
        "ignored", 6379, 0, "worker", "p/w", SENTINELS, "celery-fleet", "sent-pw", visibility_timeout=600
    )

    # Assert
    assert built["broker_url"] == (
        "sentinel://worker:p%2Fw@10.0.0.1:26379/0;sentinel://worker:p%2Fw@10.0.0.2:26379/0;"
        "sentinel://worker:p%2Fw@redis-3.example:26380/0"
    )
    assert built["result_backend"] == built["broker_url"].replace("/0", "/1")
    sentinel_kwargs = {
        "password": "sent-pw",
        "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
        # A Sentinel gone with its host costs each discovery this much, not the data node's 5 s.
        "socket_connect_timeout": 1,
        "socket_keepalive": True,
        # JSON null: redis-py's no-retry policy, so that a gone Sentinel is skipped after one
        # connect timeout, not eleven (redis-py 8's default retries).
        "retry": None,
    }
    assert built["transport_options"] == {
        "broker": {
            "visibility_timeout": 600,
            "master_name": "celery-fleet",
            "sentinel_kwargs": sentinel_kwargs,
            **SENTINEL_BROKER_OPTIONS,
        },
        "backend": {"master_name": "celery-fleet", "sentinel_kwargs": sentinel_kwargs},
    }
    assert built["settings"] == SENTINEL_CELERY_SETTINGS
    # The Sentinel password is in the options only, never in a URL.
    assert "sent-pw" not in built["broker_url"] + built["result_backend"]


def test_sentinel_connection_keeps_the_key_prefix_on_both_sides():
    built = connection(None, sentinels=SENTINELS[:1], sentinel_password="x", key_prefix="cf:")

    assert built["transport_options"]["broker"]["global_keyprefix"] == "cf:"
    assert built["transport_options"]["backend"]["global_keyprefix"] == "cf:"


@pytest.mark.parametrize(
    ("sentinels", "master", "password", "field"),
    [
        (["10.0.0.1"], "celery-fleet", "pw", "celery_broker_sentinels"),
        (["10.0.0.1:0"], "celery-fleet", "pw", "celery_broker_sentinels"),
        (["10.0.0.1:70000"], "celery-fleet", "pw", "celery_broker_sentinels"),
        (["a b:26379"], "celery-fleet", "pw", "celery_broker_sentinels"),
        ([26379], "celery-fleet", "pw", "celery_broker_sentinels"),
        ("10.0.0.1:26379", "celery-fleet", "pw", "celery_broker_sentinels"),
        (["h:1", "h:1"], "celery-fleet", "pw", "celery_broker_sentinels"),
        (["h:26379"], "", "pw", "celery_broker_master_name"),
        (["h:26379"], " m", "pw", "celery_broker_master_name"),
        (["h:26379"], None, "pw", "celery_broker_master_name"),
        (["h:26379"], "celery-fleet", "", "celery_broker_sentinel_password"),
        (["h:26379"], "celery-fleet", None, "celery_broker_sentinel_password"),
    ],
)
def test_sentinel_settings_that_cannot_work_are_refused_with_the_field_named(
    sentinels, master, password, field
):
    # Act
    problems = sentinel_problems(sentinels, master, password)

    # Assert
    assert [p.field for p in problems] == [field]
    with pytest.raises(FleetError, match=field):
        connection("h", sentinels=sentinels, master_name=master, sentinel_password=password)


def test_no_sentinels_need_no_master_name_nor_password():
    assert sentinel_problems([], "", "") == []
    assert sentinel_problems(None, None, None) == []


def test_a_bad_database_number_is_refused_by_the_builder():
    with pytest.raises(FleetError, match="celery_broker_db"):
        connection("h", db="two")


def test_expected_broker_options_hold_no_secret():
    # Act
    expected = expected_broker_options(600, "", SENTINELS, "celery-fleet")

    # Assert: what a Sentinel worker runs with, the password replaced by a marker.
    built = connection("h", sentinels=SENTINELS, sentinel_password="sent-pw", visibility_timeout=600)
    assert expected == {**built["transport_options"]["broker"], "sentinel_kwargs": SECRET_SET}
    assert expected_broker_options(600) == {"visibility_timeout": 600}


def test_option_errors_never_print_nor_compare_a_secret_option():
    # Arrange
    expected = expected_broker_options(None, "", SENTINELS, "celery-fleet")
    running = {
        **connection("h", sentinels=SENTINELS, sentinel_password="sent-pw")["transport_options"]["broker"]
    }

    # Act / Assert: the running password is accepted without being known.
    assert option_errors("w", expected, running) == []
    running["master_name"] = "other"
    running["sentinel_kwargs"] = {}
    errors = option_errors("w", expected, running)
    assert errors == [
        "w: broker transport option master_name is 'other', the inventory says 'celery-fleet'",
        "w: broker transport option sentinel_kwargs is not set (the fleet sets it)",
    ]
    del running["sentinel_kwargs"]
    assert option_errors("w", expected, running)[-1] == errors[-1]
    # A secret the running side has in another option, or reports under the expected key, never shows.
    running["sentinel_kwargs"] = {"password": "sent-pw"}
    running["master_name"] = "celery-fleet"
    none = option_errors("w", expected, None)
    assert all("sent-pw" not in e for e in [*option_errors("w", expected, running), *none])
    assert SECRET_SET in none[0]


# --- TLS (issue 18) ------------------------------------------------------------------------------


def test_tls_makes_both_urls_rediss_and_every_client_verify_the_broker_with_the_ca():
    # Act
    built = connection(
        "10.0.0.9", 6380, 0, "worker", "s3cret", tls=True, tls_ca_file="/etc/celerydemo/tls/ca.crt"
    )

    # Assert: the broker through broker_use_ssl (kombu reads no TLS option from the URL), the
    # result backend through redis_backend_use_ssl; certificate verification required.
    assert built["broker_url"] == "rediss://worker:s3cret@10.0.0.9:6380/0"
    assert built["result_backend"] == "rediss://worker:s3cret@10.0.0.9:6380/1"
    ssl = {"ssl_cert_reqs": "required", "ssl_ca_certs": "/etc/celerydemo/tls/ca.crt"}
    assert built["settings"] == {"broker_use_ssl": ssl, "redis_backend_use_ssl": ssl}


def test_tls_with_a_client_certificate_passes_certificate_and_key():
    built = connection(
        "h",
        6380,
        tls=True,
        tls_ca_file="/t/ca.crt",
        tls_cert_file="/t/client.crt",
        tls_key_file="/t/client.key",
    )

    for name in ("broker_use_ssl", "redis_backend_use_ssl"):
        assert built["settings"][name] == {
            "ssl_cert_reqs": "required",
            "ssl_ca_certs": "/t/ca.crt",
            "ssl_certfile": "/t/client.crt",
            "ssl_keyfile": "/t/client.key",
        }


def test_tls_off_leaves_the_connection_as_it_was_whatever_the_files_say():
    assert connection("h", 6379, tls=False, tls_ca_file="/t/ca.crt") == connection("h", 6379)


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({}, "celery_broker_tls_ca", "is required with TLS on"),
        ({"tls_ca_file": "ca.crt"}, "celery_broker_tls_ca", "not an absolute path"),
        ({"tls_ca_file": "/t/ca.crt", "tls_cert_file": "/t/c.crt"}, "celery_broker_tls_key", "both"),
        (
            {"sentinels": ["10.0.0.1:26379"], "sentinel_password": "pw"},
            "celery_broker_tls_ca",
            "is required with TLS on",
        ),
    ],
)
def test_tls_settings_that_cannot_work_are_refused_with_the_field_named(kwargs, field, words):
    with pytest.raises(FleetError, match=f"field '{field}': .*{words}"):
        connection("h", 6380, tls=True, **kwargs)


# --- TLS through Sentinel: both hops, the Sentinels and the master they name ------------------

TLS_SENTINELS = ["10.0.0.1:26379", "sentinel-2.example:26379"]


def sentinel_tls(**kwargs):
    return connection(
        None,
        db=2,
        user="worker",
        password="s3cret",
        sentinels=TLS_SENTINELS,
        master_name="celery-fleet",
        sentinel_password="sentinel-pw",
        tls=True,
        tls_ca_file="/etc/celerydemo/tls/ca.crt",
        **kwargs,
    )


def test_tls_through_sentinel_keeps_sentinel_urls_and_verifies_the_master_with_the_ca():
    # Act
    built = sentinel_tls()

    # Assert: the Sentinels are asked through sentinel:// (no rediss:// form exists for them); the
    # master's connections take TLS from Celery's settings, as with one broker host.
    assert built["broker_url"] == (
        "sentinel://worker:s3cret@10.0.0.1:26379/2;sentinel://worker:s3cret@sentinel-2.example:26379/2"
    )
    assert built["result_backend"] == built["broker_url"].replace("/2", "/3")
    ssl = {"ssl_cert_reqs": "required", "ssl_ca_certs": "/etc/celerydemo/tls/ca.crt"}
    assert built["settings"] == {
        **SENTINEL_CELERY_SETTINGS,
        "broker_use_ssl": ssl,
        "redis_backend_use_ssl": ssl,
    }


def test_tls_through_sentinel_makes_both_sides_reach_the_sentinels_over_verified_tls():
    # Act
    built = sentinel_tls()

    # Assert: redis-py builds the Sentinel clients from sentinel_kwargs alone, so the TLS keys must
    # be there (ssl=True: redis.Redis then uses SSLConnection), next to the password and sockets.
    for side in ("broker", "backend"):
        kwargs = built["transport_options"][side]["sentinel_kwargs"]
        assert kwargs == {
            "password": "sentinel-pw",
            "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
            "socket_connect_timeout": 1,
            "socket_keepalive": True,
            "retry": None,
            "ssl": True,
            "ssl_cert_reqs": "required",
            "ssl_ca_certs": "/etc/celerydemo/tls/ca.crt",
        }
        assert built["transport_options"][side]["master_name"] == "celery-fleet"
    # JSON types (the fleet's settings file): a real boolean, strings for the rest.
    assert built["transport_options"]["broker"]["sentinel_kwargs"]["ssl"] is True
    for name, value in SENTINEL_BROKER_OPTIONS.items():
        assert built["transport_options"]["broker"][name] == value


def test_tls_through_sentinel_uses_the_client_certificate_on_both_hops():
    # Act
    built = sentinel_tls(tls_cert_file="/t/client.crt", tls_key_file="/t/client.key")

    # Assert
    client = {"ssl_certfile": "/t/client.crt", "ssl_keyfile": "/t/client.key"}
    for side in ("broker", "backend"):
        assert built["transport_options"][side]["sentinel_kwargs"].items() >= client.items()
    for name in ("broker_use_ssl", "redis_backend_use_ssl"):
        assert built["settings"][name].items() >= client.items()


def test_sentinel_without_tls_gets_no_tls_key():
    built = connection(
        None, sentinels=TLS_SENTINELS, sentinel_password="sentinel-pw", tls=False, tls_ca_file="/t/ca.crt"
    )

    assert built["settings"] == SENTINEL_CELERY_SETTINGS
    for side in ("broker", "backend"):
        assert not any(key.startswith("ssl") for key in built["transport_options"][side]["sentinel_kwargs"])


def test_what_verification_expects_and_prints_of_a_tls_sentinel_client_holds_no_secret():
    # Arrange: the running side as a worker reports it (celery_fleet_live reduces sentinel_kwargs to
    # its key names before it leaves the host; here the full value, the worst case).
    built = sentinel_tls(tls_cert_file="/t/client.crt", tls_key_file="/t/client.key")
    running = dict(built["transport_options"]["broker"], master_name="other")
    expected = expected_broker_options(sentinels=TLS_SENTINELS, master_name="celery-fleet")

    # Act
    errors = option_errors("w1", expected, running) + option_errors("w1", expected, None)

    # Assert
    assert expected["sentinel_kwargs"] == SECRET_SET
    assert errors[0] == (
        "w1: broker transport option master_name is 'other', the inventory says 'celery-fleet'"
    )
    assert all("sentinel-pw" not in e and "s3cret" not in e for e in errors)


# --- TLS variables of the roles (PEM content from the vault) and the fleet's switch -----------

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
# Split so that scripts/scan-secrets.py does not take the test's fake key for a real one.
KEY_HEADER = "EC PRIVATE" + " KEY"
KEY_PEM = f"-----BEGIN {KEY_HEADER}-----\nsecret-key-body\n-----END {KEY_HEADER}-----\n"


def test_the_client_switch_is_celery_broker_tls_enabled_else_the_fleets_redis_tls_enabled():
    assert tls_enabled({}) is False
    assert tls_enabled({"redis_tls_enabled": True}) is True
    assert tls_enabled({"redis_tls_enabled": True, "celery_broker_tls_enabled": False}) is False
    assert tls_enabled({"celery_broker_tls_enabled": True}) is True


def test_tls_off_needs_no_tls_variable():
    assert tls_input_problems(False) == []
    assert tls_input_problems(False, "junk", "junk", "") == []


def test_tls_on_needs_the_ca_and_names_the_field():
    [problem] = tls_input_problems(True)
    assert problem.field == "celery_broker_tls_ca"
    assert "required with TLS on" in str(problem)


def test_a_certificate_without_its_key_and_a_key_without_its_certificate_are_refused():
    [cert_only] = tls_input_problems(True, CA_PEM, CA_PEM, "")
    assert cert_only.field == "celery_broker_tls_key"
    [key_only] = tls_input_problems(True, CA_PEM, "", KEY_PEM)
    assert key_only.field == "celery_broker_tls_cert"
    assert tls_input_problems(True, CA_PEM, CA_PEM, KEY_PEM) == []


def test_content_that_is_not_pem_is_refused_without_showing_it():
    problems = tls_input_problems(True, "/etc/ssl/ca.crt", CA_PEM, "not-a-key-but-a-secret")
    assert [p.field for p in problems] == ["celery_broker_tls_ca", "celery_broker_tls_key"]
    text = " ".join(map(str, problems))
    assert "not-a-key-but-a-secret" not in text
    assert "/etc/ssl/ca.crt" not in text
    assert "BEGIN CERTIFICATE" in text


def test_the_switch_must_be_a_boolean():
    [problem] = tls_input_problems("yes", CA_PEM)
    assert problem.field == "celery_broker_tls_enabled"
    assert "true or false" in str(problem)


def test_clients_and_broker_must_agree_on_tls():
    broker_plain = {"redis_tls_enabled": False, "redis_port": 6379}
    broker_both = {"redis_tls_enabled": True, "redis_port": 6379}
    broker_tls_only = {"redis_tls_enabled": True, "redis_port": 0}
    assert tls_fleet_errors({"w1": True}, None) == []
    assert tls_fleet_errors({"w1": False, "w2": True}, broker_both) == []
    assert tls_fleet_errors({"w1": True}, broker_tls_only) == []
    [no_server_tls] = tls_fleet_errors({"w1": True, "w2": False}, broker_plain)
    assert no_server_tls.startswith("host 'w1'") or "w1" in no_server_tls
    assert "redis_tls_enabled is false" in no_server_tls
    [plain_client] = tls_fleet_errors({"w1": True, "f1": False}, broker_tls_only)
    assert "f1" in plain_client
    assert "TLS-only" in plain_client


def test_through_sentinel_a_tls_client_needs_tls_on_every_data_node_and_sentinel():
    # Arrange: r1-r3 data nodes with a Sentinel each, s4 a Sentinel only; r3 and s4 without TLS.
    servers = tls_servers(
        ["r1", "r2", "r3"],
        ["r1", "r2", "r3", "s4"],
        {
            "r1": {"redis_tls_enabled": True, "redis_port": 0},
            "r2": {"redis_tls_enabled": True},
            "r3": {},
            "s4": {"redis_tls_enabled": False},
        },
    )

    # Act
    errors = tls_fleet_errors(
        {"w1": True, "w2": False}, {"redis_tls_enabled": True, "redis_port": 0}, servers
    )

    # Assert: the first data node alone (the `broker` argument) is no longer what counts.
    assert servers["s4"] == {"redis_tls_enabled": False, "redis_port": 6379, "sentinel": True}
    assert servers["r3"] == {"redis_tls_enabled": False, "redis_port": 6379, "sentinel": True}
    assert errors[0].startswith("host 'w1'")
    assert "redis_tls_enabled is false on r3, s4" in errors[0]
    # The plain client cannot ask r1's and r2's Sentinels (TLS-only with redis_tls_enabled).
    assert errors[1].startswith("host 'w2'")
    assert "r1, r2 speak only TLS" in errors[1]
    assert len(errors) == 2


def test_through_sentinel_clients_and_servers_that_agree_pass():
    tls = tls_servers(
        ["r1", "r2"], ["r1", "r2", "s3"], {key: {"redis_tls_enabled": True} for key in ["r1", "r2", "s3"]}
    )
    plain = tls_servers(["r1", "r2"], ["r1", "r2", "s3"], {})

    assert tls_fleet_errors({"w1": True, "f1": True}, None, tls) == []
    assert tls_fleet_errors({"w1": False}, None, plain) == []
    # A data node with TLS and its plain port open, running no Sentinel, takes plain clients too.
    mixed = tls_servers(["r1", "r2"], ["s1", "s2", "s3"], {"r1": {"redis_tls_enabled": True}})
    assert tls_fleet_errors({"w1": False}, None, mixed) == []
    assert "r2, s1, s2, s3" in tls_fleet_errors({"w1": True}, None, mixed)[0]


def test_the_roles_tls_files_are_the_apps_layout():
    from celery_fleet.layout import app_layout

    layout = app_layout("celerydemo")
    result = connection(
        "mon-redis",
        6380,
        tls=True,
        tls_ca_file=layout["tls_ca_file"],
        tls_cert_file=layout["tls_cert_file"],
        tls_key_file=layout["tls_key_file"],
    )
    assert result["broker_url"].startswith("rediss://")
    assert result["settings"]["broker_use_ssl"] == {
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": "/etc/celerydemo/tls/ca.crt",
        "ssl_certfile": "/etc/celerydemo/tls/client.crt",
        "ssl_keyfile": "/etc/celerydemo/tls/client.key",
    }


def test_a_result_stored_during_a_failover_is_retried_long_enough_but_not_forever():
    # Celery's backoff with full jitter: retry n sleeps up to min(max sleep, 10 ms * 2**n).
    settings = SENTINEL_CELERY_SETTINGS
    base_ms = 10
    caps = [
        min(settings["result_backend_max_sleep_between_retries_ms"], base_ms * 2**n)
        for n in range(1, settings["result_backend_max_retries"] + 1)
    ]

    assert settings["result_backend_always_retry"] is True
    # On average half of each cap: well over a failover (7-9 s measured, README), and bounded.
    assert sum(caps) / 2 / 1000 > 3 * 9
    assert sum(caps) / 1000 < 120
