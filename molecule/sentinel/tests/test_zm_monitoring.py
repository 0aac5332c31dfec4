"""Monitoring of the Sentinel topology (issue 17): Prometheus on the client host scrapes Flower, each
data node's exporter and, through that exporter's /scrape?target=, each data node's Sentinel; two
Sentinels stopped fire RedisSentinelQuorumLost, a replica's server stopped fires
RedisReplicationBroken, and both resolve once the services are back. No password in Prometheus's
API, in argv or in the journal.

Named to run after the failover tests (file order) and before test_zz_secrets.py, which then judges
what this module did too. Every fault is undone in a ``finally`` and the test waits until the
fleet is as it found it (every target up, every Sentinel reaching its quorum, the replica in sync).
Windows are short through the scenario's variables (molecule.yml, group monitoring): 2 s scrapes
and evaluations, 10 s for both alerts; every wait polls, bounded.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from conftest import (
    DATA_NODES,
    MASTER_NAME,
    SENTINELS,
    TLS,
    admin,
    master_node,
    node,
    role,
    sentinel,
    wait_until,
)
from scenario_inventory import inventory_vars

CLIENT = "sentinel-client"
PROMETHEUS = "http://127.0.0.1:9090"
JOBS = {"prometheus": 1, "flower": 1, "redis": len(DATA_NODES), "redis_sentinel": len(SENTINELS)}
SENTINEL_SERVICE = "redis-sentinel"
SERVER_SERVICE = "redis-server"
# How long a fault may take to fire its alert: the Sentinels' down-after (5 s) + 10 s window +
# scrapes and evaluations every 2 s, on a loaded 2-core machine.
FIRE_TIMEOUT = 120
RESOLVE_TIMEOUT = 120


def get(url: str) -> tuple[int, str]:
    """HTTP status and body of a GET from inside the client host (Prometheus listens on loopback)."""
    body, _, status = (
        node(CLIENT).check(f"curl -sS --max-time 10 -w '\\n%{{http_code}}' '{url}'").rpartition("\n")
    )
    return int(status), body


def api(path: str) -> Any:
    status, body = get(PROMETHEUS + path)
    assert status == 200, f"{path}: HTTP {status}: {body[:500]}"
    return json.loads(body)["data"]


def query(expr: str) -> list[dict[str, Any]]:
    return api("/api/v1/query?query=" + urllib.parse.quote(expr))["result"]


def alerts(name: str) -> list[dict[str, Any]]:
    return [a for a in api("/api/v1/alerts")["alerts"] if a["labels"].get("alertname") == name]


def firing(name: str) -> list[dict[str, Any]]:
    return [a for a in alerts(name) if a["state"] == "firing"]


def targets() -> list[dict[str, Any]]:
    return api("/api/v1/targets")["activeTargets"]


def every_target_up() -> list[dict[str, Any]] | None:
    found = targets()
    jobs: dict[str, int] = {}
    for target in found:
        jobs[target["labels"]["job"]] = jobs.get(target["labels"]["job"], 0) + 1
    return found if jobs == JOBS and all(t["health"] == "up" for t in found) else None


def quorum_everywhere() -> bool:
    return all(sentinel(name, f"SENTINEL CKQUORUM {MASTER_NAME}").startswith("OK") for name in SENTINELS)


def secrets() -> dict[str, str]:
    """Every TEST-ONLY password of the scenario's inventory, by the name it has there."""
    found: dict[str, str] = {}

    def walk(value: Any, name: str) -> None:
        if isinstance(value, dict):
            label = f"{name}.{value['name']}" if "name" in value else name
            for key, item in value.items():
                walk(item, f"{label}.{key}" if label else str(key))
        elif isinstance(value, list):
            for item in value:
                walk(item, name)
        elif isinstance(value, str) and value.startswith("test-only") and "password" in name:
            found[name] = value

    for host in (DATA_NODES[0], CLIENT):
        walk(inventory_vars(host), "")
    return found


def test_every_target_is_up_sentinels_included() -> None:
    found, seconds = wait_until(every_target_up, timeout=90, what="every Prometheus target up")
    sentinels = sorted(t["scrapeUrl"] for t in found if t["labels"]["job"] == "redis_sentinel")
    print(f"{len(found)} targets up after {seconds:.1f} s; Sentinels: {sentinels}")
    # A TLS fleet's Sentinels serve TLS only: the exporter reaches them with rediss://.
    scheme = "rediss" if TLS else "redis"
    assert sentinels and all(f"target={scheme}%3A%2F%2F127.0.0.1%3A26379" in url for url in sentinels), (
        sentinels
    )


def test_the_sentinels_report_their_quorum_as_a_metric() -> None:
    wait_until(
        lambda: len(query("redis_sentinel_master_ckquorum_status == 1")) == len(SENTINELS),
        timeout=60,
        what="redis_sentinel_master_ckquorum_status 1 from every Sentinel",
    )
    assert {r["metric"]["master_name"] for r in query("redis_sentinel_master_ckquorum_status")} == {
        MASTER_NAME
    }


def test_no_acl_denial_while_scraped() -> None:
    """The exporter's users, on the data nodes and the Sentinels, are refused nothing."""
    for name in SENTINELS:
        sentinel(name, "ACL LOG RESET")
    # The multi-target endpoint builds a new exporter per scrape (its counters restart at 1): wait
    # on the samples' timestamps instead, three scrape intervals (2 s) after the reset.
    since = float(query("time()")[1]) + 6
    wait_until(
        lambda: (
            len(stamps := query('timestamp(redis_up{job="redis_sentinel"})')) == len(SENTINELS)
            and all(float(s["value"][1]) > since for s in stamps)
        ),
        timeout=60,
        what="three more scrapes of every Sentinel",
    )
    for name in SENTINELS:
        log = sentinel(name, "ACL LOG")
        assert log == "", f"{name}'s Sentinel: {log}"
    for name in DATA_NODES:
        log = admin(name, "ACL LOG")
        assert "exporter" not in log, f"{name}: {log}"


@pytest.mark.parametrize("path", ["/api/v1/targets", "/api/v1/status/config", "/api/v1/status/flags"])
def test_no_secret_in_prometheus_api(path: str) -> None:
    _, body = get(PROMETHEUS + path)
    leaked = [name for name, value in secrets().items() if value in body]
    assert not leaked, f"{path} shows {leaked}"


@pytest.mark.parametrize("host", [*DATA_NODES, CLIENT])
@pytest.mark.parametrize(
    ("place", "command"), [("argv", "ps -eo args"), ("the journal", "journalctl -o json --no-pager")]
)
def test_no_secret_in_argv_or_the_journal(host: str, place: str, command: str) -> None:
    """The output stays on the host (0600); the passwords reach grep through a file written from
    stdin (a shell builtin copies each one), never an argv. The control word proves the search sees
    the exporter's or Prometheus's own lines."""
    names, values = zip(*secrets().items(), strict=True)
    script = (
        "umask 077; cat > /run/mon.pat; "
        f"{{ {command}; }} > /run/mon.out 2>&1 || true; "
        "echo control $(grep -c prometheus /run/mon.out); "
        "while IFS= read -r p; do printf '%s\\n' \"$p\" > /run/mon.one; "
        "echo hits $(grep -cF -f /run/mon.one /run/mon.out); done < /run/mon.pat; "
        "rm -f /run/mon.pat /run/mon.out /run/mon.one"
    )
    words = node(host).check(script, stdin="".join(f"{v}\n" for v in values), timeout=300).split()
    assert words[0] == "control" and int(words[1]) > 0, (
        f"{host}: {place} shows no prometheus line: proves nothing"
    )
    hits = [int(words[i + 1]) for i in range(2, len(words), 2) if words[i] == "hits"]
    assert len(hits) == len(names), words
    leaked = [name for name, count in zip(names, hits, strict=True) if count]
    assert not leaked, f"{host}: {place} holds {', '.join(leaked)}"


def fire_and_resolve(
    alert: str, services: list[tuple[str, str]], back: Callable[[], bool]
) -> list[dict[str, Any]]:
    """Stop each (host, service), wait until ``alert`` fires, start them again (always), wait until
    ``back()`` says the fleet is as it was with the alert gone; the firing alerts."""
    # What the failover tests before this module left settles first (bounded).
    wait_until(lambda: not alerts(alert), timeout=RESOLVE_TIMEOUT, what=f"no {alert} before the fault")
    started = time.monotonic()
    try:
        for host, service in services:
            node(host).stop(service)
        found, fired_s = wait_until(lambda: firing(alert), timeout=FIRE_TIMEOUT, what=f"{alert} firing")
        labels = [a["labels"] for a in found]
        print(f"{alert} firing {fired_s:.1f} s after stopping {services} (window 10 s): {labels}")
    finally:
        for host, service in services:
            node(host).start(service)
    _, resolved_s = wait_until(
        lambda: not alerts(alert) and back(),
        timeout=RESOLVE_TIMEOUT,
        what=f"{alert} resolved, the fleet as found",
    )
    print(f"resolved {resolved_s:.1f} s after the start ({time.monotonic() - started:.0f} s in all)")
    return found


def test_two_sentinels_stopped_fire_quorum_lost_then_it_resolves() -> None:
    found = fire_and_resolve(
        "RedisSentinelQuorumLost",
        [(name, SENTINEL_SERVICE) for name in SENTINELS[1:]],
        lambda: quorum_everywhere() and every_target_up() is not None,
    )
    assert {a["labels"]["master_name"] for a in found} == {MASTER_NAME}


def test_a_stopped_replica_fires_replication_broken_then_it_resolves() -> None:
    replica = next(name for name in DATA_NODES if name != master_node())
    fire_and_resolve(
        "RedisReplicationBroken",
        [(replica, SERVER_SERVICE)],
        lambda: (
            role(replica) == "slave"
            and "master_link_status:up" in admin(replica, "INFO replication")
            and every_target_up() is not None
        ),
    )


def test_no_monitoring_alert_is_left_firing() -> None:
    """As found: neither fault left an alert of the Redis topology behind (RedisDown included)."""
    names = {"RedisSentinelQuorumLost", "RedisReplicationBroken", "RedisDown"}
    _, seconds = wait_until(
        lambda: not [a for a in api("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] in names],
        timeout=RESOLVE_TIMEOUT,
        what=f"none of {sorted(names)} pending or firing",
    )
    print(f"none pending or firing after {seconds:.1f} s")
