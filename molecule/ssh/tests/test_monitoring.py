"""Monitoring deployed over SSH + sudo (issue 17): Prometheus on the host scrapes itself, Flower and
the Redis exporter, every target up, and Prometheus's API shows no password. Whether a password
reached sudo's log, the journal, argv or a world-readable file is judged by test_secrets.py, which
runs after this file and searches for the exporter's password too (an ACL user of the inventory)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from conftest import check_output, redis_admin, secrets
from fleetnode import wait_until

PROMETHEUS = "http://127.0.0.1:9090"
JOBS = {"prometheus", "flower", "redis"}


def get(path: str) -> str:
    """A GET of Prometheus's API on the host (loopback), over SSH; fails on an HTTP error."""
    return check_output(f"curl -sS --fail --max-time 10 '{PROMETHEUS}{path}'")


def api(path: str) -> Any:
    return json.loads(get(path))["data"]


def test_every_scrape_target_is_up() -> None:
    def all_up() -> list[dict[str, Any]] | None:
        targets = api("/api/v1/targets")["activeTargets"]
        jobs = {t["labels"]["job"] for t in targets}
        return targets if jobs == JOBS and all(t["health"] == "up" for t in targets) else None

    targets, seconds = wait_until(all_up, timeout=90, what="every Prometheus target up")
    print(f"\n{len(targets)} targets up after {seconds:.1f} s: {sorted(t['scrapeUrl'] for t in targets)}")


def test_the_exporter_reads_redis_and_is_refused_nothing() -> None:
    redis_admin("ACL", "LOG", "RESET")
    query = "/api/v1/query?query=" + urllib.parse.quote("redis_exporter_scrapes_total")
    before = float(api(query)["result"][0]["value"][1])
    wait_until(
        lambda: float(api(query)["result"][0]["value"][1]) >= before + 3,
        timeout=60,
        what="three more scrapes",
    )
    assert "exporter" not in redis_admin("ACL", "LOG")
    up = api("/api/v1/query?query=" + urllib.parse.quote('redis_up{job="redis"}'))["result"]
    assert [r["value"][1] for r in up] == ["1"], up


@pytest.mark.parametrize("path", ["/api/v1/targets", "/api/v1/status/config", "/api/v1/status/flags"])
def test_no_password_in_prometheus_api(path: str) -> None:
    body = get(path)
    leaked = [name for name, value in secrets().items() if value in body]
    assert not leaked, f"{path} shows {leaked}"
