"""Helpers of the monitoring scenario's tests.

Containers are reached through molecule/resources/fleetnode.py (`docker exec`). Prometheus's and
Alertmanager's APIs are read from inside the ops container with python3's urllib (no credentials
needed: both listen on loopback there); the Redis ACL LOG is read with the admin user's password in
REDISCLI_AUTH through the exec's environment, never argv.
"""

from __future__ import annotations

import functools
import json
import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
from celery_fleet.layout import app_layout  # lib/ is on sys.path through fleetnode
from fleetnode import Node, wait_until, worker_node

__all__ = ["wait_until"]

APP = "celerydemo"
LAYOUT = app_layout(APP)
REDIS, WORKER, OPS = "mon-redis", "mon-worker", "mon-ops"
PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"
# The scenario's inventory (molecule.yml): Molecule writes group vars per group.
SCENARIO = pathlib.Path(__file__).resolve().parents[1]


@functools.cache
def scenario_vars() -> dict[str, Any]:
    import yaml

    groups = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["provisioner"]["inventory"]["group_vars"]
    merged: dict[str, Any] = {}
    for group in ("all", "redis", "celery_workers", "flower", "monitoring"):
        merged.update(groups.get(group, {}))
    return merged


@functools.cache
def node(name: str) -> Node:
    return Node(name, app=APP, inspect_timeout=3)


def workers() -> list[dict[str, Any]]:
    return scenario_vars()["celery_workers"]


def node_name(worker: dict[str, Any]) -> str:
    return worker_node(worker, WORKER)


def service(worker: dict[str, Any]) -> str:
    return LAYOUT["worker_service_prefix"] + worker["name"]


def get(url: str, container: str = OPS) -> str:
    """The body of a GET from inside a container (any HTTP status)."""
    script = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen({url!r}, timeout=10); print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
    )
    return node(container).check("python3 -", stdin=script)


def status_of(url: str, container: str = OPS) -> int:
    return int(get(url, container).split("\n", 1)[0])


def api(path: str) -> Any:
    """Prometheus's JSON API on the ops host."""
    status, _, body = get(PROMETHEUS + path).partition("\n")
    assert status == "200", f"{path}: HTTP {status}: {body[:500]}"
    return json.loads(body)["data"]


def alerts(name: str) -> list[dict[str, Any]]:
    return [a for a in api("/api/v1/alerts")["alerts"] if a["labels"].get("alertname") == name]


def secrets() -> list[str]:
    """Every TEST-ONLY password of the scenario."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if "password" in str(key) and isinstance(item, str) and item.startswith("test-only"):
                    found.append(item)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(scenario_vars())
    return sorted(set(found))


# The broker is TLS-only (redis_port 0): the admin reaches it on its Unix socket (roles/redis).
REDIS_SOCKET = "/run/redis/redis-server.sock"


def acl_password(user: str) -> str:
    return next(u["password"] for u in scenario_vars()["redis_acl_users"] if u["name"] == user)


def redis_cli(command: str) -> str:
    """redis-cli as the admin ACL user on the Redis host's Unix socket (password through the exec's
    environment)."""
    return node(REDIS).check(
        f'REDISCLI_AUTH="$CF_ADMIN" redis-cli -s {REDIS_SOCKET} --user admin --no-auth-warning {command}',
        secret_env={"CF_ADMIN": acl_password("admin")},
    )
