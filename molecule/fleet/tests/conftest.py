"""Shared helpers of the fleet tests.

The declared fleet is read from inventories/sandbox/group_vars (the files this scenario links), the
secrets from the sandbox's vaults (this checkout's: make sandbox-vault). Containers are driven with
`docker` (network cuts, restarts) and reached through molecule/resources/fleetnode.py (`node(name)`);
every Celery client runs inside the ops container as the app's service user through the app's
environment, so no password reaches a command line.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# molecule/resources holds what every scenario's tests share.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
import kept_playbook
from celery_fleet.layout import app_layout  # lib/ is on sys.path through fleetnode
from celery_fleet.recap import play_section, task_section  # the fleet's tests import them from here
from fleetnode import Node, UnitStamps, wait_until, worker_node

__all__ = ["wait_until"]  # re-exported for the tests

SCENARIO_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = SCENARIO_DIR.parents[1]
SANDBOX = PROJECT_DIR / "inventories" / "sandbox"
GROUP_VARS = SANDBOX / "group_vars"
VAULT_PASSWORD_FILE = SANDBOX / "vault-password.txt"


def _vars(group: str, role: str) -> dict[str, Any]:
    return yaml.safe_load((GROUP_VARS / group / f"{role}.yml").read_text())


APP: str = _vars("all", "celery_app")["celery_app_name"]
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
LAYOUT = app_layout(APP)


@functools.cache
def node(name: str) -> Node:
    """A container of the fleet (every host runs systemd here)."""
    return Node(name, app=APP, inspect_timeout=3)


def node_name(worker: dict[str, Any], host: str) -> str:
    """The Celery node name of a declared worker of a host (container name = host name here)."""
    return worker_node(worker, host)


def service(worker: dict[str, Any]) -> str:
    return worker_service(worker["name"])


def worker_service(worker_name: str) -> str:
    return LAYOUT["worker_service_prefix"] + worker_name


def declared_worker(host_name: str, worker_name: str) -> dict[str, Any]:
    return next(w for w in WORKERS[host_name] if w["name"] == worker_name)


def named_node(host_name: str, worker_name: str) -> str:
    """The node name of a declared worker of a host, by the worker's name."""
    return node_name(declared_worker(host_name, worker_name), host_name)


def main_pid(host_name: str, worker_name: str) -> int:
    """The main process of a worker's service (0 when it is not running)."""
    return node(host_name).main_pid(worker_service(worker_name))


def declared() -> list[tuple[str, dict[str, Any]]]:
    """(host, worker) for every declared worker of the fleet."""
    return [(host, worker) for host, workers in WORKERS.items() for worker in workers]


def all_nodes() -> set[str]:
    return {node_name(worker, h) for h, worker in declared()}


def inspect(
    action: str, expect: set[str] | None = None, timeout: float = 60, *, only: bool = False
) -> dict[str, Any]:
    """`celery inspect <action>` from the ops host, waited on until the nodes in expect answer.
    `only`: asked of those nodes alone, answered as soon as they all replied (fleetnode.Node.inspect);
    without it every node's reply is awaited for the whole reply timeout (what a check that no other
    node answers needs)."""
    return node(OPS).inspect(action, expect, timeout=timeout, only=only)


def answers(nodes: set[str], timeout: float = 5) -> bool:
    """Whether every node of `nodes` answers a ping within `timeout`."""
    try:
        inspect("ping", nodes, timeout=timeout, only=True)
    except AssertionError:
        return False
    return True


def workload(args: str, timeout: float = 300) -> dict[str, Any]:
    """The demo workload (celery_demo.workload) from the ops host: its JSON report."""
    return node(OPS).json(node(OPS).python(f"-m celery_demo.workload --json {args}"), timeout=timeout)


def probe(args: str, timeout: float = 600) -> dict[str, Any]:
    """tests/probe.py (copied into the ops container) from the ops host: its JSON report."""
    ops = node(OPS)
    return ops.json(ops.python(f"/tmp/probe.py {args}", pythonpath=LAYOUT["code_dir"]), timeout=timeout)


def docker(*args: str, timeout: float = 120) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


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
    return node(REDIS).check(f"redis-cli --user admin {command}", secret_env={"REDISCLI_AUTH": password})


def executions(since: float) -> dict[str, int]:
    """Task id -> how many times a worker reported it succeeded, from every worker host's journal."""
    counts: dict[str, int] = {}
    pattern = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] succeeded")
    for name in WORKER_HOSTS:
        out = node(name).logs(worker_service("*"), since=f"@{int(since) - 1}")
        for task_id in pattern.findall(out):
            counts[task_id] = counts.get(task_id, 0) + 1
    return counts


@contextlib.contextmanager
def streaming(name: str, rate: int = 8, minimum: int = 500) -> Iterator[dict[str, Any]]:
    """A producer on the ops host streaming tasks (probe.py stream, at least ``minimum``) while the
    block runs: entered once its first task is sent; on leaving, stopped, and the dict it yielded
    gets ``sent`` (the entries of /tmp/<name>-ids.json) and ``report`` (the producer's own).

    At 20 a second (tried 2026-12-06) the stream sends 20 a second for as long as the play under it
    runs, 700-1,250 tasks when four scenarios share the cores: more CPU, where the 8 a second's
    ~40 s after a play are only waiting."""
    ops = node(OPS)
    files = f"/tmp/{name}-ids.json /tmp/{name}-stop"
    ops.check(f"rm -f {files} /tmp/{name}-started")
    out: dict[str, Any] = {}

    def produce() -> None:
        out["report"] = probe(f"stream {files} --min {minimum} --rate {rate} --started /tmp/{name}-started")

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        wait_until(
            lambda: ops.exists(f"/tmp/{name}-started"), timeout=60, what="the producer's first task sent"
        )
        yield out
    finally:
        ops.check(f"touch /tmp/{name}-stop")
        thread.join(timeout=180)
    out["sent"] = json.loads(ops.read(f"/tmp/{name}-ids.json"))


def unit_timestamps() -> dict[tuple[str, str], UnitStamps]:
    """(host, worker) -> its unit's last stop and start (``Node.unit_stamps``)."""
    return {
        (name, worker["name"]): node(name).unit_stamps(service(worker))
        for name, workers in WORKERS.items()
        for worker in workers
    }


@pytest.fixture(scope="session", autouse=True)
def probe_script() -> None:
    """The producer-side helper, copied into the ops container once."""
    # Through stdin: `docker cp` cannot write into the container's /tmp, a tmpfs.
    node(OPS).check(
        "cat > /tmp/probe.py && chmod 0644 /tmp/probe.py",
        stdin=Path(__file__).with_name("probe.py").read_text(),
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
            kept_playbook.command(str(PROJECT_DIR / ".venv" / "bin" / "ansible-playbook")),
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


# Worker hosts a test left deployed off the inventory (test_diagnose's misspelt app module). The next
# full site.yml run (test_stale's) deploys them as declared and checks that they answer; whatever no
# later run brought back is deployed here at the end of the session (a module run alone, a failure).
LEFT_BROKEN: set[str] = set()


WORKER_PLAY = "PLAY [Deploy the Celery app and its workers on every worker host at once]"
WHY = "TASK [celery_worker : current | Say why the host converges]"


def converged(play: Any) -> dict[str, str]:
    """Worker host -> why it converged (the hosts the worker play did not skip): the output of the
    role's "Say why" task, one block per host."""
    why = task_section(play_section(play.stdout, WORKER_PLAY), WHY)
    blocks = re.split(r"^ok: \[(\S+)\] =>", why, flags=re.M)[1:]
    return {host: " ".join(text.split()) for host, text in zip(blocks[::2], blocks[1::2], strict=True)}


@pytest.fixture(scope="session", autouse=True)
def deploy_what_was_left_broken() -> Iterator[None]:
    yield
    if LEFT_BROKEN:
        restored = ansible_playbook("playbooks/deploy-workers.yml", "-l", ",".join(sorted(LEFT_BROKEN)))
        output = restored.stdout + restored.stderr
        assert restored.returncode == 0, output[output.find("fatal:") :][:3000] or output[-2000:]
        LEFT_BROKEN.clear()


# The order of the modules matters: test_rerun is the scenario's idempotence check (the second
# run of site.yml, before anything else touches the fleet); the day-2 plays, the rolling restart and
# the faults run on the fleet the first module checked (the day-2 plays need it as declared: the
# rolling restart leaves two workers at another concurrency), test_stale's full site.yml run brings
# back the host test_diagnose broke (one run instead of two), and the ACL LOG is read after
# everything else ran. The worker password rotation comes last: the fleet keeps the new password.
MODULE_ORDER = [
    "test_rerun",
    "test_fleet",
    "test_day2",
    "test_rolling_restart",
    "test_faults",
    "test_diagnose",
    "test_stale",
    "test_acl",
    "test_rotation",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)

    items.sort(key=rank)
