"""What issue 17 promises, on a converged fleet: Prometheus scrapes every target, the worker and
queue alerts fire within their (short) windows and resolve, and no secret shows anywhere."""

from __future__ import annotations

import json
import shlex
import time

import pytest
import yaml
from celery_fleet.alerts import RULE_NAMES
from conftest import (
    ALERTMANAGER,
    OPS,
    PROMETHEUS,
    REDIS,
    WORKER,
    alerts,
    api,
    get,
    node,
    node_name,
    redis_cli,
    scenario_vars,
    secrets,
    service,
    status_of,
    wait_until,
    workers,
)

JOBS = {"prometheus", "flower", "redis"}


def test_every_scrape_target_is_up() -> None:
    def all_up() -> list[dict] | None:
        targets = api("/api/v1/targets")["activeTargets"]
        jobs = {t["labels"]["job"] for t in targets}
        return targets if jobs == JOBS and all(t["health"] == "up" for t in targets) else None

    targets, seconds = wait_until(all_up, timeout=90, what="every Prometheus target up")
    print(f"{len(targets)} targets up after {seconds:.1f} s: {[t['scrapeUrl'] for t in targets]}")


@pytest.mark.parametrize("queue", ["high_priority", "low_priority"])
def test_queue_length_is_a_metric(queue: str) -> None:
    key = scenario_vars()["celery_broker_key_prefix"] + queue
    result, _ = wait_until(
        lambda: api(f"/api/v1/query?query=redis_key_size%7Bkey%3D%22{key}%22%7D")["result"],
        timeout=60,
        what=f"redis_key_size for {key}",
    )
    print(f"{key}: {result[0]['value'][1]}")


def test_flower_metrics_refuse_anonymous_scrape() -> None:
    assert status_of("http://127.0.0.1:5555/metrics") == 401


def _scrapes() -> float:
    return float(api("/api/v1/query?query=redis_exporter_scrapes_total")["result"][0]["value"][1])


def test_exporter_acl_log_stays_empty_while_scraped() -> None:
    redis_cli("ACL LOG RESET")
    before = float(api("/api/v1/query?query=redis_exporter_scrapes_total")["result"][0]["value"][1])
    wait_until(
        lambda: (
            float(api("/api/v1/query?query=redis_exporter_scrapes_total")["result"][0]["value"][1])
            >= before + 3
        ),
        timeout=60,
        what="three more exporter scrapes",
    )
    log = redis_cli("ACL LOG")
    assert "exporter" not in log, log
    assert api("/api/v1/query?query=redis_up")["result"][0]["value"][1] == "1"


@pytest.mark.parametrize("path", ["/api/v1/targets", "/api/v1/status/config", "/api/v1/status/flags"])
def test_no_secret_in_prometheus_api(path: str) -> None:
    body = get(PROMETHEUS + path)
    leaked = [s for s in secrets() if s in body]
    assert not leaked, f"{path} shows {len(leaked)} password(s)"


@pytest.mark.parametrize(
    ("host", "path", "group"),
    [
        (OPS, "/etc/prometheus/flower.password", "prometheus"),
        (OPS, "/etc/prometheus/alertmanager.yml", "prometheus"),
        (REDIS, "/etc/default/prometheus-redis-exporter", "prometheus"),
    ],
)
def test_secret_files_are_root_and_service_group_0640(host: str, path: str, group: str) -> None:
    assert node(host).stat(path) == ("root", group, 0o640)


@pytest.mark.parametrize("host", [OPS, REDIS])
def test_no_secret_in_argv_or_journal(host: str) -> None:
    argv = node(host).check("ps -eo args")
    journal = node(host).check("journalctl --no-pager -o cat 2>/dev/null | tail -n 20000")
    for secret in secrets():
        assert secret not in argv, f"{host}: a password in ps"
        assert secret not in journal, f"{host}: a password in the journal"


def _firing(name: str, **labels: str) -> list[dict]:
    return [
        a
        for a in alerts(name)
        if a["state"] == "firing" and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def _absent(name: str, **labels: str) -> bool:
    return not [a for a in alerts(name) if all(a["labels"].get(k) == v for k, v in labels.items())]


def test_stopped_worker_and_its_filled_queue_fire_then_resolve() -> None:
    worker = next(w for w in workers() if w["queues"] == ["low_priority"])
    nodename = node_name(worker)
    queue = worker["queues"][0]
    assert _absent("CeleryWorkerOffline"), "an alert before the fault"
    stopped_at = time.monotonic()
    node(WORKER).stop(service(worker))
    try:
        _, offline_s = wait_until(
            lambda: _firing("CeleryWorkerOffline", worker=nodename),
            timeout=120,
            what=f"{nodename} offline firing",
        )
        print(f"CeleryWorkerOffline firing {offline_s:.1f} s after the stop (window 10 s)")
        publish = "-c " + shlex.quote(
            # celery_fleet_app first: the fleet's transport options (key prefix) on the app.
            "import celery_fleet_app\nfrom celery_demo.tasks import PING_TASKS\n"
            f"[PING_TASKS[{queue!r}].apply_async(queue={queue!r}) for _ in range(5)]\nprint('{{}}')"
        )
        node(OPS).check(node(OPS).python(publish))
        _, queue_s = wait_until(
            lambda: _firing("CeleryQueueNoConsumer", queue=queue),
            timeout=120,
            what=f"{queue} no-consumer firing",
        )
        print(f"CeleryQueueNoConsumer firing {queue_s:.1f} s after the publish")
        # Alertmanager received them (its receiver is a placeholder: nothing is delivered).
        received = json.loads(get(ALERTMANAGER + "/api/v2/alerts").split("\n", 1)[1])
        assert {"CeleryWorkerOffline", "CeleryQueueNoConsumer"} <= {
            a["labels"]["alertname"] for a in received
        }
    finally:
        node(WORKER).start(service(worker))
    _, resolved_s = wait_until(
        lambda: (
            _absent("CeleryWorkerOffline", worker=nodename) and _absent("CeleryQueueNoConsumer", queue=queue)
        ),
        timeout=120,
        what="both alerts resolved after the start",
    )
    print(f"both resolved {resolved_s:.1f} s after the start ({time.monotonic() - stopped_at:.0f} s in all)")


def test_alertmanager_runs_the_inhibit_rule_of_an_unreachable_flower() -> None:
    # Flower down makes every declared worker look offline: one page, not one per worker.
    status = json.loads(get(ALERTMANAGER + "/api/v2/status").split("\n", 1)[1])
    loaded = yaml.safe_load(status["config"]["original"])
    assert {
        "source_matchers": ['alertname="CeleryFlowerDown"'],
        "target_matchers": ['alertname="CeleryWorkerOffline"'],
    } in loaded["inhibit_rules"], loaded.get("inhibit_rules")


def test_every_alert_of_the_fleet_is_loaded() -> None:
    groups = api("/api/v1/rules")["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    # Without Sentinel the replication and quorum rules are left out.
    expected = set(RULE_NAMES) - {"RedisReplicationBroken", "RedisSentinelQuorumLost"}
    assert loaded == expected
