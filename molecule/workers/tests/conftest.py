"""Shared helpers of the worker-fleet tests (systemd scenario `workers`, supervisord `workers_supervisord`).

The declared fleet is read from molecule/workers/converge.yml, the single source of truth both
scenarios deploy; the process manager and the demo broker password come from the scenario's
inventory. The container is reached through molecule/resources/fleetnode.py (the `node` fixture);
every Celery client runs as the app's service user through the app's environment, so no password is
ever put on a command line by the tests either.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

# molecule/resources holds what every scenario's tests share.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
from celery_fleet.layout import app_layout  # lib/ is on sys.path through fleetnode
from celery_fleet.recap import slowest_tasks
from fleetnode import Node, worker_node
from scenario_inventory import inventory_hosts, inventory_vars

SCENARIO_DIR = Path(__file__).resolve().parents[1]
FLEET_PLAY = yaml.safe_load((SCENARIO_DIR / "converge.yml").read_text())[0]["vars"]
APP = FLEET_PLAY["celery_app_name"]
WORKERS: list[dict[str, Any]] = FLEET_PLAY["celery_workers"]
QUEUES: list[str] = FLEET_PLAY["celery_queues"]
LAYOUT = app_layout(APP)
HOME = LAYOUT["home"]
ENV_FILE = LAYOUT["env_file"]
# The example app's producer, through the fleet's entry module (key scoping on: prefix cf:).
WORKLOAD = "-m celery_fleet_app celery_demo.workload --json"


def service(worker: str) -> str:
    return LAYOUT["worker_service_prefix"] + worker


class Fleet:
    """What the tests need to know about the deployed fleet, and its node."""

    def __init__(self, name: str) -> None:
        variables = inventory_vars(name)
        self.manager: str = variables.get("celery_process_manager", "systemd")
        self.installer: str = variables.get("celery_app_installer", "pip")
        self.password: str = variables["celery_broker_password"]
        # The broker's `default` user (roles/redis redis_password), for the tests that break the broker.
        self.redis_admin_password: str = variables["workers_demo_redis_admin_password"]
        self.node = Node(name, manager=self.manager, app=APP)
        self.hostname: str = self.node.hostname()

    @property
    def secrets(self) -> list[str]:
        """The broker password as written anywhere: raw and percent-encoded in the URL."""
        return sorted({self.password, quote(self.password, safe="")})

    def node_name(self, worker: dict[str, Any]) -> str:
        return worker_node(worker, self.hostname)

    def nodes(self, workers: list[dict[str, Any]] | None = None) -> set[str]:
        return {self.node_name(w) for w in (WORKERS if workers is None else workers)}

    def redis(self, command: str) -> str:
        """redis-cli as the broker's default user; the password travels in the exec's environment."""
        return self.node.check(
            f"redis-cli {command}", secret_env={"REDISCLI_AUTH": self.redis_admin_password}
        )

    def workload(self, args: str, timeout: float = 300) -> dict[str, Any]:
        """The demo workload's JSON report (celery_demo.workload, run as the app's user)."""
        return self.node.json(self.node.python(f"{WORKLOAD} {args}"), timeout=timeout)


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return Fleet(inventory_hosts()[0])


@pytest.fixture(scope="session")
def node(fleet) -> Node:
    return fleet.node


def ansible_playbook(
    *args: str, extra_vars: dict[str, Any] | None = None, tmp_path: Path, profile: bool = False
) -> tuple[int, str]:
    """Run the fleet's converge, with extra arguments, against the scenario's Molecule inventory.

    Returns (rc, combined output). The Ansible config Molecule wrote holds the roles and filter
    paths; extra vars go through a JSON file so nothing (and no secret) lands in argv.
    """
    ephemeral = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    env = dict(os.environ, ANSIBLE_CONFIG=f"{ephemeral}/ansible.cfg", ANSIBLE_FORCE_COLOR="0")
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    if extra_vars is not None:
        path = tmp_path / "extra-vars.json"
        path.write_text(json.dumps(extra_vars))
        command += ["-e", f"@{path}"]
    # Both scenarios converge with molecule/workers/converge.yml; the inventory picks the manager.
    command += [*args, str(SCENARIO_DIR / "converge.yml")]
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=600)
    print(f"ansible-playbook {shlex.join(args)}: rc {proc.returncode} in {time.monotonic() - started:.1f} s")
    if profile:
        for task, seconds in slowest_tasks(proc.stdout):
            print(f"    {task} {seconds:.2f}s")
    return proc.returncode, proc.stdout + proc.stderr
