"""The alert rules (lib/celery_fleet/alerts.py): built from the inventory, checked and unit-tested by
Debian's promtool of both suites (scripts/ensure-promtool.sh puts them into the cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from celery_fleet.alerts import DEFAULT_THRESHOLDS, RULE_NAMES, alert_rules, monitored_queues
from celery_fleet.errors import FleetError

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_TESTS = Path(__file__).with_name("alert-rules.test.yml")
DEFAULTS = ROOT / "roles" / "prometheus" / "defaults" / "main" / "alerts.yml"
ROLE = ROOT / "roles" / "prometheus"
ARGSPECS = ROLE / "meta" / "argument_specs.yml"
ROLE_DEFAULTS = ROLE / "defaults" / "main" / "main.yml"
ROLE_VARS = ROLE / "vars" / "main.yml"
TEMPLATE = ROOT / "roles" / "prometheus" / "templates" / "celery-fleet-alerts.yml.j2"
ALERTS_DOC = ROOT / "README.md"  # the alert table; roles/prometheus/ALERTS.md the rest
CACHE = Path(
    os.environ.get("CELERY_FLEET_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "celery-fleet"
)
SUITES = ("bookworm", "trixie")

# The inventory alert-rules.test.yml is written for.
ENTRIES = [
    {
        "host": "cf-worker-1",
        "nodename": "cf-worker-1",
        "key_prefix": "cf:",
        "workers": [
            {"name": "default", "queues": ["celery", "emails"]},
            {"name": "slow", "queues": ["slow"]},
        ],
    }
]
QUEUES = ["celery", "emails", "slow"]


def rules(**kwargs):
    args = {"entries": ENTRIES, "queues": QUEUES, "thresholds": {}, "sentinel_enabled": True, "overrides": {}}
    args.update(kwargs)
    return alert_rules(
        args["entries"], args["queues"], args["thresholds"], args["sentinel_enabled"], args["overrides"]
    )


def alerts_of(rule_file):
    return {r["alert"]: r for group in rule_file["groups"] for r in group["rules"] if "alert" in r}


def records_of(rule_file, name):
    return [r["labels"] for group in rule_file["groups"] for r in group["rules"] if r.get("record") == name]


# --- The rule file from the inventory --------------------------------------------------------------


def test_declared_workers_are_node_names_with_their_host():
    declared = records_of(rules(), "celery_fleet_worker_declared")

    assert declared == [
        {"worker": "default@cf-worker-1", "host": "cf-worker-1"},
        {"worker": "slow@cf-worker-1", "host": "cf-worker-1"},
    ]


def test_node_name_expands_the_hostname_field_with_the_machine_name():
    entries = [
        {
            "host": "w1",
            "nodename": "w1.example.org",
            "workers": [
                {"name": "a", "hostname": "a-%n@%d", "queues": ["q"]},
                {"name": "b", "queues": ["q"]},
            ],
        }
    ]

    declared = records_of(rules(entries=entries, queues=["q"]), "celery_fleet_worker_declared")

    assert [d["worker"] for d in declared] == ["a-w1@example.org", "b@w1.example.org"]


def test_without_nodename_the_inventory_host_names_the_node():
    entries = [{"host": "w1", "workers": [{"name": "a", "queues": ["q"]}]}]

    declared = records_of(rules(entries=entries, queues=["q"]), "celery_fleet_worker_declared")

    assert declared == [{"worker": "a@w1", "host": "w1"}]


def test_absent_workers_are_not_declared():
    entries = [
        {
            "host": "w1",
            "workers": [{"name": "a", "queues": ["q"]}, {"name": "old", "queues": ["q"], "state": "absent"}],
        }
    ]

    rule_file = rules(entries=entries, queues=["q"])

    assert [d["worker"] for d in records_of(rule_file, "celery_fleet_worker_declared")] == ["a@w1"]
    assert records_of(rule_file, "celery_fleet_queue_consumer") == [{"queue": "q", "worker": "a@w1"}]


def test_queue_keys_carry_the_key_prefix():
    keys = records_of(rules(), "celery_fleet_queue_key")

    assert keys == [
        {"queue": "celery", "key": "cf:celery"},
        {"queue": "emails", "key": "cf:emails"},
        {"queue": "slow", "key": "cf:slow"},
    ]


def test_without_celery_queues_the_workers_queues_are_measured():
    keys = records_of(rules(queues=None), "celery_fleet_queue_key")

    assert sorted(k["queue"] for k in keys) == ["celery", "emails", "slow"]


def test_consumers_map_each_queue_to_its_workers():
    consumers = records_of(rules(), "celery_fleet_queue_consumer")

    assert consumers == [
        {"queue": "celery", "worker": "default@cf-worker-1"},
        {"queue": "emails", "worker": "default@cf-worker-1"},
        {"queue": "slow", "worker": "slow@cf-worker-1"},
    ]


def test_every_alert_has_severity_summary_description_and_a_one_line_runbook():
    for name, alert in alerts_of(rules()).items():
        assert alert["labels"]["severity"] in ("critical", "warning"), name
        assert set(alert["annotations"]) == {"summary", "description", "runbook"}, name
        assert "\n" not in alert["annotations"]["runbook"], name
        assert "[[" not in alert["expr"] + alert["annotations"]["description"], name


def test_the_three_names_the_monitoring_scenario_asserts_exist():
    assert {"CeleryWorkerOffline", "CeleryQueueStuck", "CeleryQueueNoConsumer"} <= set(alerts_of(rules()))


def test_sentinel_rules_only_with_sentinel():
    with_sentinel = set(alerts_of(rules(sentinel_enabled=True)))
    without = set(alerts_of(rules(sentinel_enabled=False)))

    assert with_sentinel - without == {"RedisReplicationBroken", "RedisSentinelQuorumLost"}
    assert with_sentinel == set(RULE_NAMES)


def test_thresholds_reach_the_expressions_and_windows():
    thresholds = {"queue_stuck_length": 500, "worker_offline_for": "30s", "flower_job": "celery-flower"}

    alerts = alerts_of(rules(thresholds=thresholds))

    assert "celery_fleet:queue_length > 500 " in alerts["CeleryQueueStuck"]["expr"]
    assert alerts["CeleryWorkerOffline"]["for"] == "30s"
    assert 'up{job="celery-flower"}' in alerts["CeleryFlowerDown"]["expr"]


def test_overrides_change_window_severity_threshold_or_drop_a_rule():
    overrides = {
        "CeleryQueueStuck": {"for": "1m", "severity": "critical", "threshold": 5},
        "RedisRejectedConnections": {"enabled": False},
    }

    alerts = alerts_of(rules(overrides=overrides))

    assert alerts["CeleryQueueStuck"]["for"] == "1m"
    assert alerts["CeleryQueueStuck"]["labels"]["severity"] == "critical"
    assert "celery_fleet:queue_length > 5 " in alerts["CeleryQueueStuck"]["expr"]
    assert "RedisRejectedConnections" not in alerts


def test_unknown_rule_name_in_overrides_is_refused_with_the_allowed_names():
    with pytest.raises(FleetError) as error:
        rules(overrides={"CeleryWorkerGone": {"for": "1m"}})

    message = str(error.value)
    assert "prometheus_alert_overrides.CeleryWorkerGone" in message
    assert "unknown rule 'CeleryWorkerGone'" in message
    assert "CeleryWorkerOffline" in message


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"window": "1m"}, "prometheus_alert_overrides.RedisDown': unknown key 'window'"),
        ({"for": "2 minutes"}, "prometheus_alert_overrides.RedisDown.for"),
        ({"severity": "Page Me"}, "prometheus_alert_overrides.RedisDown.severity"),
        ({"enabled": "no"}, "prometheus_alert_overrides.RedisDown.enabled"),
        ({"threshold": 3}, "rule RedisDown has no threshold"),
    ],
)
def test_bad_override_values_are_refused(override, field):
    with pytest.raises(FleetError, match=field.replace(".", r"\.")):
        rules(overrides={"RedisDown": override})


def test_bad_threshold_override_value_is_refused():
    with pytest.raises(FleetError, match="not a number"):
        rules(overrides={"CeleryQueueStuck": {"threshold": "many"}})


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"queue_length": 5}, "unknown threshold 'queue_length'"),
        ({"worker_offline_for": "2"}, "prometheus_alert_worker_offline_for"),
        ({"redis_memory_percent": True}, "prometheus_alert_redis_memory_percent"),
        ({"redis_job": 'a"b'}, "prometheus_alert_redis_job"),
    ],
)
def test_bad_thresholds_are_refused(thresholds, message):
    with pytest.raises(FleetError, match=message):
        rules(thresholds=thresholds)


def test_an_empty_fleet_still_gives_a_valid_rule_file():
    rule_file = rules(entries=[], queues=None)

    assert records_of(rule_file, "celery_fleet_worker_declared") == []
    assert set(alerts_of(rule_file)) == set(RULE_NAMES)


# --- The role's files agree with the code ----------------------------------------------------------


def test_role_defaults_are_the_code_defaults():
    defaults = yaml.safe_load(DEFAULTS.read_text())

    assert defaults == {f"prometheus_alert_{k}": v for k, v in DEFAULT_THRESHOLDS.items()} | {
        "prometheus_alert_overrides": {}
    }


def alert_options() -> dict:
    """The role's argument specs of the alert thresholds (prometheus_alert_*)."""
    options = yaml.safe_load(ARGSPECS.read_text())["argument_specs"]["main"]["options"]
    return {name: spec for name, spec in options.items() if name.startswith("prometheus_alert_")}


def test_argument_specs_cover_every_alert_default_with_the_same_value():
    defaults = yaml.safe_load(DEFAULTS.read_text())
    options = alert_options()

    assert set(options) == set(defaults)
    for name, spec in options.items():
        assert spec.get("default") == defaults[name], name
        assert spec.get("description"), name


def test_alert_table_lists_every_rule():
    text = ALERTS_DOC.read_text()

    for name in RULE_NAMES:
        assert f"| `{name}`" in text, name


def test_every_alert_has_a_firing_and_a_silent_promtool_case():
    cases = [
        case
        for test in yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]

    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}

    assert fires == set(RULE_NAMES)
    assert silent == set(RULE_NAMES)


# --- promtool (Debian's, both suites) --------------------------------------------------------------


def promtool(suite: str) -> Path:
    path = CACHE / "promtool" / suite / "promtool"
    if not os.access(path, os.X_OK):
        reason = f"no promtool for {suite} at {path}: run scripts/ensure-promtool.sh (make unit does)"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI never skips this)")
        pytest.skip(reason)
    return path


@pytest.fixture
def rule_dir(tmp_path):
    (tmp_path / "celery-fleet-alerts.yml").write_text(yaml.safe_dump(rules(), sort_keys=False, width=200))
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    return tmp_path


@pytest.mark.parametrize("suite", SUITES)
def test_promtool_check_rules_accepts_the_rule_file(suite, rule_dir):
    result = subprocess.run(
        [promtool(suite), "check", "rules", "celery-fleet-alerts.yml"],
        cwd=rule_dir,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    print(suite, result.stdout.strip())


@pytest.mark.parametrize("suite", SUITES)
def test_promtool_test_rules_every_alert_fires_and_stays_silent(suite, rule_dir):
    result = subprocess.run(
        [promtool(suite), "test", "rules", PROMTOOL_TESTS.name],
        cwd=rule_dir,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules_fails_on_a_wrong_rule(rule_dir):
    # The promtool cases can fail: a rule file whose worker window is longer misses the 5m case.
    (rule_dir / "celery-fleet-alerts.yml").write_text(
        yaml.safe_dump(rules(thresholds={"worker_offline_for": "10m"}), sort_keys=False, width=200)
    )

    result = subprocess.run(
        [promtool(SUITES[0]), "test", "rules", PROMTOOL_TESTS.name],
        cwd=rule_dir,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "CeleryWorkerOffline" in result.stdout + result.stderr


# --- The role's template, rendered by Ansible from the worker hosts' hostvars ----------------------

PLAYBOOK = """
- name: Gather the worker host's facts, as site.yml's worker plays do
  hosts: celery_workers
  gather_facts: true
  gather_subset: [min]
  tasks: []
- name: Render the alert rules on the monitoring host
  hosts: monitoring
  gather_facts: false
  vars_files: [{role_defaults}, {defaults}, {role_vars}]
  tasks:
    - name: Render celery-fleet-alerts.yml
      ansible.builtin.template:
        src: {template}
        dest: {dest}
        mode: "0644"
      # Task vars outrank the role defaults read as vars_files above.
      vars:
        # What playbooks/deploy-monitoring.yml passes: the worker hosts' entries (hostvars serve too).
        prometheus_celery_workers: "{{{{ groups['celery_workers'] | map('extract', hostvars) | list }}}}"
        prometheus_celery_queues: [celery, slow]
        prometheus_sentinel_enabled: false
"""


@pytest.mark.parametrize("suite", SUITES[:1])
def test_template_renders_a_rule_file_promtool_accepts(suite, tmp_path, local_inventory, ansible_playbook):
    binary = promtool(suite)
    worker = {"celery_broker_key_prefix": "cf:", "celery_queues": ["celery", "slow"]}
    worker["celery_workers"] = [
        {"name": "default", "queues": ["celery"]},
        {"name": "slow", "queues": ["slow"]},
    ]
    inventory = local_inventory({"celery_workers": {"w1": worker}, "monitoring": {"m1": {}}})
    dest = tmp_path / "celery-fleet-alerts.yml"
    (tmp_path / "play.yml").write_text(
        PLAYBOOK.format(
            role_defaults=ROLE_DEFAULTS, defaults=DEFAULTS, role_vars=ROLE_VARS, template=TEMPLATE, dest=dest
        )
    )

    play = ansible_playbook(tmp_path / "play.yml", inventory=inventory)
    check = subprocess.run([binary, "check", "rules", str(dest)], capture_output=True, text=True, check=False)

    assert play.returncode == 0, play.stdout[-3000:]
    assert check.returncode == 0, check.stdout + check.stderr
    text = dest.read_text()
    nodename = os.uname().nodename
    assert f"worker: default@{nodename}" in text
    assert "key: cf:slow" in text
    assert "RedisSentinelQuorumLost" not in text
    # Prometheus's own templates pass through Ansible's untouched.
    assert "summary: Celery worker {{ $labels.worker }} is offline" in text


def test_defaults_pass_the_argument_spec_part():
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec = {
        name: {k: v for k, v in option.items() if k != "description"}
        for name, option in alert_options().items()
    }

    result = ArgumentSpecValidator(spec).validate(yaml.safe_load(DEFAULTS.read_text()))

    assert result.error_messages == []


def test_monitored_queues_are_the_declared_ones_then_every_consumed_one():
    # Arrange: "emails" and "slow" are consumed but not in celery_queues; "idle" has no consumer.
    declared = ["idle", "celery"]

    # Act / Assert: the exporter's keys come from this list, the rules' queue keys too.
    assert monitored_queues(ENTRIES, declared) == ["idle", "celery", "emails", "slow"]
    assert monitored_queues(ENTRIES, None) == ["celery", "emails", "slow"]
    assert monitored_queues([], None) == []
    keys = {
        rule["labels"]["queue"]
        for rule in rules(queues=None)["groups"][0]["rules"]
        if rule.get("record") == "celery_fleet_queue_key"
    }
    assert keys == set(monitored_queues(ENTRIES, None))
