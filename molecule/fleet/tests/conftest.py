"""Shared helpers of the fleet tests.

The declared fleet is read from inventories/sandbox/group_vars (the files this scenario links), the
secrets from the sandbox's demo-only vault. Containers are driven with `docker` (network cuts,
restarts) and testinfra's docker backend; every Celery client runs inside the ops container as the
app's service user through the app's environment wrapper, so no password reaches a command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

SCENARIO_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = SCENARIO_DIR.parents[1]
SANDBOX = PROJECT_DIR / "inventories" / "sandbox"
GROUP_VARS = SANDBOX / "group_vars"
VAULT_PASSWORD_FILE = SANDBOX / "vault-password.txt"


def _vars(group: str, role: str) -> dict[str, Any]:
    return yaml.safe_load((GROUP_VARS / group / f"{role}.yml").read_text())


APP: str = _vars("all", "celery_app")["celery_app_name"]
# Every service and live check runs the app through the fleet's entry module (roles/celery_app).
MODULE = "celery_fleet_app"
# The kombu key prefix of the sandbox ("" unless key scoping is switched on): queue keys carry it.
KEY_PREFIX: str = _vars("all", "celery_app").get("celery_broker_key_prefix", "")
QUEUES: list[str] = _vars("celery_workers", "celery_worker")["celery_queues"]
# Worker host -> its declared workers (the platforms' groups in molecule.yml).
WORKER_HOSTS = {"fleet-worker-gpu": "gpu_workers", "fleet-worker-cpu": "cpu_workers"}
WORKERS: dict[str, list[dict[str, Any]]] = {
    host: _vars(group, "celery_worker")["celery_workers"] for host, group in WORKER_HOSTS.items()
}
REDIS = "fleet-redis"
OPS = "fleet-ops"
NETWORK = "fleet-net"
HOME = f"/opt/{APP}"
AS_APP = f"runuser -u {APP} -- {HOME}/bin/celery-env"
INSPECT = f"{AS_APP} {HOME}/venv/bin/celery -A {MODULE} inspect --json --timeout 3"
PROBE = f"{AS_APP} env PYTHONPATH={HOME}/app {HOME}/venv/bin/python /tmp/probe.py"
WORKLOAD = f"{AS_APP} {HOME}/venv/bin/python -m celery_demo.workload --json"


def node_name(worker: dict[str, Any], host: str) -> str:
    return worker.get("hostname", f"{worker['name']}@%h").replace("%h", host)


def service(worker: dict[str, Any]) -> str:
    return f"{APP}-worker-{worker['name']}"


def worker_node(host_name: str, worker_name: str) -> str:
    """The node name of a declared worker of a host."""
    return node_name(next(w for w in WORKERS[host_name] if w["name"] == worker_name), host_name)


def main_pid(host_name: str, worker_name: str) -> int:
    """The main process of a worker's systemd service (0 when it is not running)."""
    return int(host(host_name).check_output(f"systemctl show -p MainPID --value {APP}-worker-{worker_name}"))


def declared() -> list[tuple[str, dict[str, Any]]]:
    """(host, worker) for every declared worker of the fleet."""
    return [(host, worker) for host, workers in WORKERS.items() for worker in workers]


def host(name: str):
    return testinfra.get_host(f"docker://{name}")


def docker(*args: str, timeout: float = 120) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


def run_json(name: str, command: str) -> dict[str, Any]:
    """Run a command printing one JSON object (last line) in a container; fail with its output otherwise."""
    result = host(name).run(command)
    match = re.search(r"^\{.*\}\s*$", result.stdout, re.M)
    assert match, (
        f"{command!r} on {name} printed no JSON (rc {result.rc}): "
        f"{result.stdout[-800:]} {result.stderr[-800:]}"
    )
    return json.loads(match.group(0))


def inspect(action: str, expect: set[str] | None = None, timeout: float = 60) -> dict[str, Any]:
    """`celery inspect <action>` from the ops host, retried (bounded) until the nodes in expect answer."""
    deadline = time.monotonic() + timeout
    replies: dict[str, Any] = {}
    while time.monotonic() < deadline:
        result = host(OPS).run(f"{INSPECT} {action}")
        if result.stdout.lstrip().startswith("{"):
            replies = json.loads(result.stdout)
            if expect is None or expect <= replies.keys():
                return replies
        time.sleep(1)
    raise AssertionError(f"inspect {action}: expected {sorted(expect or [])}, got {sorted(replies)}")


def all_nodes() -> set[str]:
    return {node_name(worker, h) for h, worker in declared()}


def vault() -> dict[str, str]:
    out = subprocess.run(
        [
            str(PROJECT_DIR / ".venv" / "bin" / "ansible-vault"),
            "view",
            "--vault-password-file",
            str(VAULT_PASSWORD_FILE),
            str(GROUP_VARS / "all" / "vault.yml"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return yaml.safe_load(out)


def redis_admin(command: str) -> str:
    """A redis-cli command as the admin ACL user; the password travels in the exec's environment."""
    password = vault()["vault_redis_admin_password"]
    return subprocess.run(
        [
            "docker",
            "exec",
            "-e",
            f"REDISCLI_AUTH={password}",
            REDIS,
            "sh",
            "-c",
            f"redis-cli --user admin {command}",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


def executions(since: float) -> dict[str, int]:
    """Task id -> how many times a worker reported it succeeded, from every worker host's journal."""
    counts: dict[str, int] = {}
    pattern = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] succeeded")
    for name in WORKER_HOSTS:
        out = (
            host(name)
            .run(f"journalctl -o cat --no-pager -u '{APP}-worker-*' --since @{int(since) - 1}")
            .stdout
        )
        for task_id in pattern.findall(out):
            counts[task_id] = counts.get(task_id, 0) + 1
    return counts


def wait_until(predicate, timeout: float, interval: float = 1.0) -> float:
    """Seconds until predicate() is true; AssertionError after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError):
            pass  # a container or service still coming back
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s: {predicate.__doc__ or predicate}")


@pytest.fixture(scope="session", autouse=True)
def probe_script() -> None:
    """The producer-side helper, copied into the ops container once."""
    # Through stdin: `docker cp` cannot write into the container's /tmp, a tmpfs.
    subprocess.run(
        ["docker", "exec", "-i", OPS, "sh", "-c", "cat > /tmp/probe.py && chmod 0644 /tmp/probe.py"],
        input=Path(__file__).with_name("probe.py").read_text(),
        text=True,
        check=True,
        timeout=30,
    )


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.cfg")
    env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(VAULT_PASSWORD_FILE)
    env["ANSIBLE_FORCE_COLOR"] = "0"
    return env


def ansible_playbook(
    playbook: str, *args: str, timeout: float = 600, inventory: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`ansible-playbook <playbook of the project> <args>` against this scenario's inventory (or
    another one, such as a copy with other groups), as an operator runs it; the caller checks the
    return code."""
    inventory_dir = inventory or Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    return subprocess.run(
        [
            str(PROJECT_DIR / ".venv" / "bin" / "ansible-playbook"),
            "-i",
            str(inventory_dir),
            *args,
            str(PROJECT_DIR / playbook),
        ],
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# The order of the modules matters: the day-2 plays, the rolling restart and the faults run on the
# fleet the first module checked (the day-2 plays need it as declared: the rolling restart leaves two
# workers at another concurrency), and the ACL LOG is read after everything else ran.
MODULE_ORDER = [
    "test_fleet",
    "test_day2",
    "test_rolling_restart",
    "test_faults",
    "test_diagnose",
    "test_stale",
    "test_acl",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)

    items.sort(key=rank)
