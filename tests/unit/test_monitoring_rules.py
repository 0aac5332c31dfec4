"""Unit tests of lib/celery_fleet/monitoring_rules.py: each rule refuses what it should (the message
names host, field and what is allowed) and accepts the valid case; the helpers' outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from celery_fleet import monitoring_rules as m
from celery_fleet.alerts import RULE_NAMES

ROLES = Path(__file__).resolve().parents[2] / "roles"
PASSWORD = "test-only-password-0123456789"
FLOWER_OK = {"bind": "10.0.0.5", "address": "10.0.0.5", "users": 1, "metrics_public": False}
EXPORTER_OK = {"address": "10.0.0.4"}


def test_host_port_brackets_ipv6():
    assert m.host_port("10.0.0.1", 9121) == "10.0.0.1:9121"
    assert m.host_port("::1", 9090) == "[::1]:9090"


@pytest.mark.parametrize(
    ("address", "local"), [("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"), ("10.0.0.2", "10.0.0.2")]
)
def test_local_address_reaches_a_wildcard_on_loopback(address, local):
    assert m.local_address(address) == local


def test_queue_keys_carry_the_prefix():
    assert m.queue_keys(["a", "b"], "cf:") == ["cf:a", "cf:b"]
    assert m.queue_keys(None, "cf:") == []
    assert m.queue_keys(["a"], None) == ["a"]


def test_queue_nodes_are_the_consumers_of_the_queue():
    entries = [
        {"workers": [{"queues": ["a"]}, {"queues": ["b", "c"]}], "nodes": ["fast@w1", "slow@w1"]},
        {"workers": [{"queues": ["c"]}], "nodes": ["io@w2"]},
    ]
    assert m.queue_nodes(entries, "c") == ["slow@w1", "io@w2"]
    assert m.queue_nodes(entries, "z") == []


def test_scrape_targets_use_loopback_on_the_monitoring_host_and_private_addresses_elsewhere():
    hostvars = {
        "ops": {"flower_port": 5556},
        "r1": {"celery_fleet_private_address": "10.0.0.4"},
        "r2": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.9"}}},
        "r3": {},
    }
    assert m.scrape_targets(["ops"], hostvars, "ops", "flower_port", 5555) == ["127.0.0.1:5556"]
    assert m.scrape_targets(["r1", "r2", "r3"], hostvars, "ops", "redis_exporter_port", 9121) == [
        "10.0.0.4:9121",
        "10.0.0.9:9121",
        "r3:9121",
    ]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("203.0.113.7", "private"),  # TEST-NET-3 is documentation space, not global
        ("8.8.8.8", "public"),
        ("0.0.0.0", "wildcard"),
        ("cf-redis", "name"),
    ],
)
def test_address_kind(address, kind):
    assert m.address_kind(address) == kind


def test_unknown_override_is_refused_naming_the_allowed_rules():
    problems = m.prometheus_problems(
        {"prometheus_alert_overrides": {"CeleryWorkerOfline": {"for": "5m"}}}, "ops"
    )

    assert len(problems) == 1
    assert "host 'ops'" in problems[0]
    assert "field 'prometheus_alert_overrides.CeleryWorkerOfline'" in problems[0]
    assert "unknown rule 'CeleryWorkerOfline'" in problems[0] and "CeleryWorkerOffline" in problems[0]


def test_unknown_override_key_is_refused():
    problems = m.prometheus_problems(
        {"prometheus_alert_overrides": {"RedisDown": {"severty": "page"}}}, "ops"
    )

    assert any("prometheus_alert_overrides.RedisDown" in p and "severty" in p for p in problems)


def test_known_overrides_pass():
    overrides = {name: {"for": "5m", "severity": "page", "enabled": True} for name in RULE_NAMES}
    assert m.prometheus_problems({"prometheus_alert_overrides": overrides}, "ops") == []


def test_flower_user_without_password_is_refused():
    problems = m.prometheus_problems({"prometheus_flower_username": "admin"}, "ops")

    assert any("field 'prometheus_flower_password'" in p for p in problems)


def test_alertmanager_without_receivers_is_refused():
    inputs = {"prometheus_alertmanager_enabled": True, "prometheus_alertmanager_receivers": []}

    assert any("prometheus_alertmanager_receivers" in p for p in m.prometheus_problems(inputs, "ops"))


@pytest.mark.parametrize("address", ["8.8.8.8", "0.0.0.0"])
def test_exporter_on_a_public_or_wildcard_address_is_refused(address):
    problems = m.redis_exporter_problems({"redis_exporter_listen_address": address}, "r1")

    assert any("field 'redis_exporter_listen_address'" in p and "no authentication" in p for p in problems)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.4"])
def test_exporter_on_loopback_or_private_address_passes(address):
    assert m.redis_exporter_problems({"redis_exporter_listen_address": address}, "r1") == []


def test_exporter_key_with_separator_is_refused():
    problems = m.redis_exporter_problems({"redis_exporter_check_keys": ["a,b"]}, "r1")

    assert any("redis_exporter_check_keys" in p for p in problems)


def test_exporter_client_certificate_without_its_key_is_refused():
    cert = {"redis_exporter_redis_tls_cert": "-----BEGIN CERTIFICATE-----"}
    problems = m.redis_exporter_problems(cert, "r1")

    assert any("redis_exporter_redis_tls_key" in p for p in problems)
    assert m.redis_exporter_problems({**cert, "redis_exporter_redis_tls_key": "k"}, "r1") == []


def test_no_monitoring_group_checks_nothing():
    assert m.monitoring_problems([], {}, {}) == []


def test_monitoring_without_flower_or_redis_is_refused():
    problems = m.monitoring_problems(["ops"], {}, {})

    assert any("monitoring needs Flower" in p for p in problems)
    assert any("needs the Redis hosts" in p for p in problems)


def test_valid_remote_scrapes_pass():
    assert m.monitoring_problems(["mon"], {"ops": FLOWER_OK}, {"r1": EXPORTER_OK}) == []


def test_flower_with_oauth_only_cannot_be_scraped():
    problems = m.monitoring_problems(["ops"], {"ops": {**FLOWER_OK, "users": 0}}, {"r1": EXPORTER_OK})

    assert any("host 'ops'" in p and "field 'flower_users'" in p for p in problems)


def test_public_flower_metrics_over_the_network_is_refused():
    flower = {"ops": {**FLOWER_OK, "metrics_public": True}}

    problems = m.monitoring_problems(["mon"], flower, {"r1": EXPORTER_OK})

    assert any("field 'flower_metrics_public'" in p and "without authentication" in p for p in problems)


def test_public_flower_metrics_on_loopback_passes():
    flower = {"ops": {**FLOWER_OK, "address": "127.0.0.1", "metrics_public": True, "users": 0}}

    assert m.monitoring_problems(["ops"], flower, {"r1": EXPORTER_OK}) == []


def test_loopback_flower_with_remote_prometheus_is_refused():
    problems = m.monitoring_problems(
        ["mon"], {"ops": {**FLOWER_OK, "bind": "127.0.0.1"}}, {"r1": EXPORTER_OK}
    )

    assert any("field 'flower_bind'" in p for p in problems)


def test_exporter_scraped_over_a_public_address_is_refused():
    problems = m.monitoring_problems(["mon"], {"ops": FLOWER_OK}, {"r1": {"address": "8.8.8.8"}})

    assert any("host 'r1'" in p and "public address" in p for p in problems)


def test_inventory_problems_ask_for_the_exporter_user():
    hostvars = {
        "ops": {"flower_users": [{"name": "a", "password": PASSWORD}]},
        "r1": {"redis_acl_users": [{"name": "admin", "password": PASSWORD, "ruleset": "admin"}]},
    }

    problems = m.monitoring_inventory_problems(["ops"], ["ops"], ["r1"], hostvars)

    assert len(problems) == 1
    assert "host 'r1'" in problems[0] and "ruleset: redis_exporter" in problems[0]
    assert PASSWORD not in problems[0]


def test_inventory_problems_pass_with_the_exporter_user():
    hostvars = {
        "ops": {"flower_users": [{"name": "a", "password": PASSWORD}]},
        "r1": {"redis_acl_users": [{"name": "exporter", "password": PASSWORD, "ruleset": "redis_exporter"}]},
    }

    assert m.monitoring_inventory_problems(["ops"], ["ops"], ["r1"], hostvars) == []


@pytest.mark.parametrize("role", ["prometheus", "redis_exporter"])
def test_argument_spec_defaults_equal_the_role_defaults(role):
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"][
        "main"
    ]["options"]
    defaults_dir = ROLES / role / "defaults"
    files = (
        [defaults_dir / "main.yml"]
        if (defaults_dir / "main.yml").is_file()
        else sorted((defaults_dir / "main").glob("*.yml"))
    )
    defaults: dict = {}
    for path in files:
        defaults.update(yaml.safe_load(path.read_text()) or {})

    assert {name: spec["default"] for name, spec in specs.items() if "default" in spec} == {
        name: value for name, value in defaults.items() if name in specs and "default" in specs[name]
    }
    assert set(defaults) <= set(specs), set(defaults) - set(specs)


# --- the Sentinels (scraped through each data node's exporter) ----------------------------------------

SENTINEL_NODE = {
    "redis_sentinel_enabled": True,
    "redis_acl_users": [{"name": "exporter", "password": PASSWORD, "ruleset": "redis_exporter"}],
    "redis_sentinel_exporter_password": PASSWORD,
}


def test_password_map_holds_each_address_as_1_45_and_1_69_look_it_up():
    entries = [
        {"address": "redis://127.0.0.1:6379", "password": "a"},
        {"address": "redis://127.0.0.1:26379", "password": "b"},
        {"address": "rediss://10.0.0.1:6380", "password": "c"},
    ]

    assert m.exporter_password_map(entries, "exporter") == {
        "redis://127.0.0.1:6379": "a",
        "redis://exporter@127.0.0.1:6379": "a",
        "redis://127.0.0.1:26379": "b",
        "redis://exporter@127.0.0.1:26379": "b",
        "rediss://10.0.0.1:6380": "c",
        "rediss://exporter@10.0.0.1:6380": "c",
    }


def test_password_map_keeps_an_address_that_names_its_user():
    entries = [{"address": "redis://other@127.0.0.1:6379", "password": "a"}]

    assert m.exporter_password_map(entries, "exporter") == {"redis://other@127.0.0.1:6379": "a"}


def test_sentinel_scrape_targets_are_each_hosts_exporter_and_its_loopback_sentinel():
    hostvars = {
        "r1": {"celery_fleet_private_address": "10.0.0.4"},
        "r2": {
            "celery_fleet_private_address": "10.0.0.5",
            "redis_sentinel_port": 26380,
            "redis_exporter_port": 9122,
        },
    }

    assert m.sentinel_scrape_targets(["r1", "r2"], hostvars, ["ops"]) == [
        {"address": "10.0.0.4:9121", "target": "redis://127.0.0.1:26379"},
        {"address": "10.0.0.5:9122", "target": "redis://127.0.0.1:26380"},
    ]
    assert m.sentinel_scrape_targets(["r1"], hostvars, ["r1"]) == [
        {"address": "127.0.0.1:9121", "target": "redis://127.0.0.1:26379"}
    ]
    # A TLS fleet's Sentinel serves TLS only: the exporter is sent to rediss://.
    hostvars["r1"]["redis_tls_enabled"] = True
    assert m.sentinel_scrape_targets(["r1"], hostvars, ["r1"]) == [
        {"address": "127.0.0.1:9121", "target": "rediss://127.0.0.1:26379"}
    ]


def test_exporter_with_a_sentinel_needs_its_password():
    problems = m.redis_exporter_problems({"redis_exporter_sentinel_address": "redis://127.0.0.1:26379"}, "r1")

    assert len(problems) == 1
    assert "host 'r1'" in problems[0] and "field 'redis_exporter_sentinel_password'" in problems[0]
    assert (
        m.redis_exporter_problems(
            {
                "redis_exporter_sentinel_address": "redis://127.0.0.1:26379",
                "redis_exporter_sentinel_password": PASSWORD,
            },
            "r1",
        )
        == []
    )


def test_inventory_problems_pass_with_the_sentinels_exporter_user():
    hostvars = {"ops": {"flower_users": [{"name": "a", "password": PASSWORD}]}, "r1": SENTINEL_NODE}

    assert m.monitoring_inventory_problems(["ops"], ["ops"], ["r1"], hostvars, ["r1"]) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"redis_sentinel_exporter_password": None}, "redis_sentinel_exporter_password"),
        ({"redis_sentinel_exporter_user": "prom"}, "redis_sentinel_exporter_user"),
    ],
)
def test_inventory_problems_ask_for_the_sentinels_exporter_user(change, field):
    hostvars = {
        "ops": {"flower_users": [{"name": "a", "password": PASSWORD}]},
        "r1": {**SENTINEL_NODE, **change},
    }

    problems = m.monitoring_inventory_problems(["ops"], ["ops"], ["r1"], hostvars, ["r1"])

    assert len(problems) == 1, problems
    assert "host 'r1'" in problems[0] and f"field '{field}'" in problems[0]
    assert PASSWORD not in problems[0]


def test_sentinel_exporter_user_is_not_asked_for_without_sentinel_or_off_the_sentinels():
    hostvars = {
        "ops": {"flower_users": [{"name": "a", "password": PASSWORD}]},
        "r1": {**SENTINEL_NODE, "redis_sentinel_exporter_password": None},
    }

    assert m.monitoring_inventory_problems(["ops"], ["ops"], ["r1"], hostvars, []) == []
    hostvars["r1"]["redis_sentinel_enabled"] = False
    assert m.monitoring_inventory_problems(["ops"], ["ops"], ["r1"], hostvars, ["r1"]) == []


def test_sentinel_static_configs_pass_the_sentinel_as_the_target_parameter():
    targets = [{"address": "10.0.0.4:9121", "target": "redis://127.0.0.1:26379"}]

    assert m.sentinel_static_configs(targets) == [
        {"targets": ["10.0.0.4:9121"], "labels": {"__param_target": "redis://127.0.0.1:26379"}}
    ]
    assert m.sentinel_static_configs([]) == []


# --- where the exporter listens (redis_exporter_listen_address) ------------------------------------


def test_exporter_listens_on_loopback_when_prometheus_runs_on_its_host_only():
    assert m.exporter_address({"celery_fleet_private_address": "10.0.0.4"}, "r1", ["r1"]) == "127.0.0.1"


def test_exporter_listens_on_the_private_address_when_prometheus_runs_elsewhere():
    assert m.exporter_address({"celery_fleet_private_address": "10.0.0.4"}, "r1", ["ops"]) == "10.0.0.4"
    assert m.exporter_address({"celery_fleet_private_address": "10.0.0.4"}, "r1", ["r1", "ops"]) == "10.0.0.4"
    facts = {"ansible_facts": {"default_ipv4": {"address": "10.0.0.9"}}}
    assert m.exporter_address(facts, "r1", ["ops"]) == "10.0.0.9"
    assert m.exporter_address({}, "r1", ["ops"]) == "r1"


def test_the_inventorys_exporter_listen_address_wins():
    settings = {"redis_exporter_listen_address": "10.1.0.4", "celery_fleet_private_address": "10.0.0.4"}

    assert m.exporter_address(settings, "r1", ["ops"]) == "10.1.0.4"
    assert m.exporter_address(settings, "r1", ["r1"]) == "10.1.0.4"


def test_exporter_targets_are_where_each_exporter_listens():
    hostvars = {
        "r1": {"celery_fleet_private_address": "10.0.0.4"},
        "r2": {"redis_exporter_listen_address": "10.1.0.5", "redis_exporter_port": 9122},
    }

    assert m.exporter_targets(["r1", "r2"], hostvars, ["r1", "ops"]) == ["10.0.0.4:9121", "10.1.0.5:9122"]
    assert m.exporter_targets(["r1"], hostvars, ["r1"]) == ["127.0.0.1:9121"]


def test_a_loopback_exporter_scraped_from_another_host_is_refused():
    hostvars = {
        "ops": {"flower_users": [{"name": "a", "password": PASSWORD}]},
        "r1": {
            "redis_acl_users": [{"name": "exporter", "password": PASSWORD, "ruleset": "redis_exporter"}],
            "redis_exporter_listen_address": "127.0.0.1",
        },
    }

    problems = m.monitoring_inventory_problems(["ops"], ["ops"], ["r1"], hostvars)

    assert len(problems) == 1, problems
    assert "host 'r1'" in problems[0] and "field 'redis_exporter_listen_address'" in problems[0]
    assert "loopback" in problems[0]
    assert (
        m.monitoring_inventory_problems(["r1"], ["ops"], ["r1"], {**hostvars, "ops": hostvars["ops"]}) != []
    )


class Untemplatable:
    """Stands in for what Ansible could not template (facts a play did not gather): any use fails."""

    def __bool__(self) -> bool:
        raise AssertionError("used")

    def __str__(self) -> str:
        raise AssertionError("used")


def test_exporter_address_does_not_touch_an_untemplatable_private_address():
    settings = {"celery_fleet_private_address": Untemplatable(), "ansible_facts": Untemplatable()}

    assert m.exporter_address(settings, "r1", ["ops"]) == "r1"


def test_inventory_problems_with_untemplatable_addresses_judge_nothing_of_them():
    hostvars = {
        "ops": {
            "flower_users": [{"name": "a", "password": PASSWORD}],
            "celery_fleet_private_address": Untemplatable(),
        },
        "r1": {**SENTINEL_NODE, "celery_fleet_private_address": Untemplatable()},
    }

    assert m.monitoring_inventory_problems(["ops"], ["ops"], ["r1"], hostvars, ["r1"]) == []


# --- Flower over HTTPS (issue 18): the scrape follows flower_tls_enabled --------------------------------

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
FLOWER_TLS = {
    "flower_tls_enabled": True,
    "flower_tls_port": 8443,
    "flower_tls_ca": CA_PEM,
    "celery_fleet_private_address": "10.0.0.5",
}


def test_flower_scrape_is_plain_http_to_flowers_port_without_tls():
    scrape = m.flower_scrape(["ops"], {"ops": {"celery_fleet_private_address": "10.0.0.5"}}, "mon")

    assert scrape == {"scheme": "http", "targets": ["10.0.0.5:5555"], "server_name": "", "ca": ""}


def test_flower_scrape_is_https_to_nginx_verified_for_the_certificates_name():
    remote = m.flower_scrape(["ops"], {"ops": FLOWER_TLS}, "mon")
    local = m.flower_scrape(
        ["ops"], {"ops": {**FLOWER_TLS, "flower_tls_server_name": "flower.example"}}, "ops"
    )

    assert remote == {"scheme": "https", "targets": ["10.0.0.5:8443"], "server_name": "ops", "ca": CA_PEM}
    assert (local["targets"], local["server_name"]) == (["127.0.0.1:8443"], "flower.example")


def test_flower_scrape_with_no_flower_host_scrapes_nothing():
    assert m.flower_scrape([], {}, "mon")["targets"] == []


def test_flower_scrape_job_over_https_verifies_with_the_ca_and_logs_in_through_the_password_file():
    job = m.flower_scrape_job(
        ["10.0.0.5:443"],
        "/flower/metrics",
        scheme="https",
        username="ops",
        password_file="/etc/prometheus/flower.password",
        ca_file="/etc/prometheus/flower-ca.crt",
        server_name="ops",
    )

    assert job == {
        "job_name": "flower",
        "scheme": "https",
        "metrics_path": "/flower/metrics",
        "static_configs": [{"targets": ["10.0.0.5:443"]}],
        "basic_auth": {"username": "ops", "password_file": "/etc/prometheus/flower.password"},
        "tls_config": {
            "insecure_skip_verify": False,
            "ca_file": "/etc/prometheus/flower-ca.crt",
            "server_name": "ops",
        },
    }


def test_flower_scrape_job_over_http_has_no_tls_config_and_public_metrics_no_auth():
    job = m.flower_scrape_job(["127.0.0.1:5555"], "/metrics")

    assert job["scheme"] == "http"
    assert "tls_config" not in job and "basic_auth" not in job


def test_flower_scrape_job_over_https_without_ca_uses_the_trust_store():
    job = m.flower_scrape_job(["10.0.0.5:443"], "/metrics", scheme="https")

    assert job["tls_config"] == {"insecure_skip_verify": False}


@pytest.mark.parametrize(
    "inputs",
    [
        {"prometheus_flower_scheme": "http", "prometheus_flower_tls_ca": CA_PEM},
        {"prometheus_flower_scheme": "http", "prometheus_flower_tls_server_name": "ops"},
        {"prometheus_flower_scheme": "ftp"},
    ],
)
def test_a_plain_http_or_unknown_scheme_for_a_tls_flower_is_refused(inputs):
    problems = m.prometheus_problems(inputs, "mon")

    assert len(problems) == 1
    assert "host 'mon'" in problems[0] and "field 'prometheus_flower_scheme'" in problems[0]


def test_a_flower_ca_that_is_not_a_certificate_is_refused_without_showing_it():
    problems = m.prometheus_problems(
        {"prometheus_flower_scheme": "https", "prometheus_flower_tls_ca": "not-pem-0123"}, "mon"
    )

    assert len(problems) == 1
    assert "field 'prometheus_flower_tls_ca'" in problems[0] and "not-pem-0123" not in problems[0]


def test_https_scrape_settings_pass():
    inputs = {
        "prometheus_flower_scheme": "https",
        "prometheus_flower_tls_ca": CA_PEM,
        "prometheus_flower_tls_server_name": "ops",
    }

    assert m.prometheus_problems(inputs, "mon") == []


def test_loopback_flower_over_https_with_remote_prometheus_passes():
    flower = {"ops": {**FLOWER_OK, "bind": "127.0.0.1", "tls": True, "server_name": "ops"}}

    assert m.monitoring_problems(["mon"], flower, {"r1": EXPORTER_OK}) == []


def test_flower_hosts_that_differ_in_https_are_refused():
    flower = {"f1": {**FLOWER_OK, "tls": True, "server_name": "f1"}, "f2": {**FLOWER_OK, "tls": False}}

    problems = m.monitoring_problems(["mon"], flower, {"r1": EXPORTER_OK})

    assert len(problems) == 1
    assert "field 'flower_tls_enabled'" in problems[0] and "on f1 but not on f2" in problems[0]


def test_flower_hosts_over_https_with_different_names_are_refused():
    flower = {
        "f1": {**FLOWER_OK, "tls": True, "server_name": "f1"},
        "f2": {**FLOWER_OK, "tls": True, "server_name": "f2"},
    }
    same = {host: {**settings, "server_name": "flower.example"} for host, settings in flower.items()}

    problems = m.monitoring_problems(["mon"], flower, {"r1": EXPORTER_OK})

    assert len(problems) == 1 and "field 'flower_tls_server_name'" in problems[0]
    assert m.monitoring_problems(["mon"], same, {"r1": EXPORTER_OK}) == []


@pytest.mark.parametrize(("tls", "scheme"), [(True, "http"), (False, "https")])
def test_an_inventory_scheme_against_flowers_tls_is_refused(tls, scheme):
    hostvars = {
        "ops": {"flower_users": [{"name": "a", "password": PASSWORD}], "flower_tls_enabled": tls},
        "mon": {"prometheus_flower_scheme": scheme},
        "r1": {"redis_acl_users": [{"name": "exporter", "password": PASSWORD, "ruleset": "redis_exporter"}]},
    }

    problems = m.monitoring_inventory_problems(["mon"], ["ops"], ["r1"], hostvars)

    # (Without TLS a loopback Flower is refused too, for its bind: a problem of its own.)
    scheme_problems = [p for p in problems if "field 'prometheus_flower_scheme'" in p]
    assert len(scheme_problems) == 1 and "host 'mon'" in scheme_problems[0]


def test_an_inventory_scheme_that_agrees_with_flower_passes():
    hostvars = {
        "ops": {"flower_users": [{"name": "a", "password": PASSWORD}], "flower_tls_enabled": True},
        "mon": {"prometheus_flower_scheme": "https"},
        "r1": {"redis_acl_users": [{"name": "exporter", "password": PASSWORD, "ruleset": "redis_exporter"}]},
    }

    assert m.monitoring_inventory_problems(["mon"], ["ops"], ["r1"], hostvars) == []
