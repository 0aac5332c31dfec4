"""Shared helpers of the worker-fleet tests (systemd scenario `workers`, supervisord `workers_supervisord`).

The declared fleet is read from molecule/workers/converge.yml, the single source of truth both
scenarios deploy; the process manager and the demo broker password come from the scenario's
inventory. Every command runs inside the container as the app's service user through the app's
environment wrapper, so no password is ever put on a command line by the tests either.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

SCENARIO_DIR = Path(__file__).resolve().parents[1]
FLEET_PLAY = yaml.safe_load((SCENARIO_DIR / "converge.yml").read_text())[0]["vars"]
APP = FLEET_PLAY["celery_app_name"]
# Services and live checks run the app through the fleet's entry module (roles/celery_app), which
# merges the fleet's transport options (the key prefix cf: of this scenario's scoped ACL) into the app's.
MODULE = "celery_fleet_app"
WORKERS: list[dict[str, Any]] = FLEET_PLAY["celery_workers"]
QUEUES: list[str] = FLEET_PLAY["celery_queues"]
HOME = f"/opt/{APP}"
ENV_FILE = f"/etc/{APP}/celery.env"
AS_APP = f"runuser -u {APP} -- {HOME}/bin/celery-env"
# A producer on a fleet host with key scoping on: the example app through the entry module.
WORKLOAD = f"{AS_APP} {HOME}/venv/bin/python -m {MODULE} celery_demo.workload --json"
INSPECT = f"{AS_APP} {HOME}/venv/bin/celery -A {MODULE} inspect --json --timeout 2"


def service(worker: str) -> str:
    return f"{APP}-worker-{worker}"


def node_name(worker: dict[str, Any], hostname: str) -> str:
    pattern = worker.get("hostname", f"{worker['name']}@%h")
    short, _, domain = hostname.partition(".")
    return pattern.replace("%h", hostname).replace("%n", short).replace("%d", domain)


def run_json(host, command: str) -> dict[str, Any]:
    """Run a command printing one JSON object; fail with its output when it does not."""
    result = host.run(command)
    match = re.search(r"^\{.*\}\s*$", result.stdout, re.S | re.M)
    assert match, (
        f"{command!r} printed no JSON (rc {result.rc}): {result.stdout[-500:]} {result.stderr[-500:]}"
    )
    return json.loads(match.group(0))


def inspect(host, action: str, tries: int = 10) -> dict[str, Any]:
    """`celery inspect <action>` replies by node, retried (bounded) until at least one node answers."""
    for _ in range(tries):
        result = host.run(f"{INSPECT} {action}")
        if result.stdout.lstrip().startswith("{"):
            return json.loads(result.stdout)
        time.sleep(1)
    raise AssertionError(f"no worker answered `inspect {action}`: {result.stdout} {result.stderr}")


class Fleet:
    """What the tests need to know about the deployed fleet and how to drive its services."""

    def __init__(self, host) -> None:
        variables = host.ansible.get_variables()
        self.host = host
        self.manager: str = variables.get("celery_process_manager", "systemd")
        self.installer: str = variables.get("celery_app_installer", "pip")
        self.password: str = variables["celery_broker_password"]
        self.hostname: str = host.check_output("hostname")

    @property
    def secrets(self) -> list[str]:
        """The broker password as written anywhere: raw and percent-encoded in the URL."""
        from urllib.parse import quote

        return sorted({self.password, quote(self.password, safe="")})

    def node(self, worker: dict[str, Any]) -> str:
        return node_name(worker, self.hostname)

    def stop(self, worker: str) -> Any:
        if self.manager == "systemd":
            return self.host.run(f"systemctl stop {service(worker)}")
        return self.host.run(f"supervisorctl stop {service(worker)}")

    def start(self, worker: str) -> Any:
        if self.manager == "systemd":
            return self.host.run(f"systemctl start {service(worker)}")
        return self.host.run(f"supervisorctl start {service(worker)}")

    def state(self, worker: str) -> str:
        """systemd ActiveState (active, failed, ...) or supervisord state (RUNNING, FATAL, ...)."""
        if self.manager == "systemd":
            return self.host.run(f"systemctl show -p ActiveState --value {service(worker)}").stdout.strip()
        out = self.host.run(f"supervisorctl status {service(worker)}").stdout.split()
        return out[1] if len(out) > 1 else "MISSING"

    def main_pid(self, worker: str) -> int:
        if self.manager == "systemd":
            out = self.host.run(f"systemctl show -p MainPID --value {service(worker)}").stdout
        else:
            out = self.host.run(f"supervisorctl pid {service(worker)}").stdout
        return int(out.strip() or 0)

    def failed_state(self) -> str:
        return "failed" if self.manager == "systemd" else "FATAL"

    def service_file(self, worker: str) -> str:
        if self.manager == "systemd":
            return f"/etc/systemd/system/{service(worker)}.service"
        return f"/etc/supervisor/conf.d/{service(worker)}.conf"

    def logs(self, worker: str | None = None, since: str | None = None) -> str:
        """The workers' logs: the journal (systemd) or the program log files (supervisord)."""
        if self.manager == "systemd":
            unit = f"-u {service(worker)}" if worker else f"-u '{APP}-worker-*'"
            when = f"--since '{since}'" if since else ""
            return self.host.run(f"journalctl --no-pager -o cat {unit} {when}").stdout
        pattern = f"{service(worker)}.log" if worker else f"{APP}-worker-*.log"
        # supervisord's program logs are root's (roles/celery_app), not in the app's own log directory.
        return self.host.run(f"cat /var/log/supervisor/{APP}/{pattern}").stdout


@pytest.fixture(scope="module")
def fleet(host) -> Fleet:
    return Fleet(host)


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
    if profile and "TASKS RECAP" in proc.stdout:
        # profile_tasks' slowest tasks of the run, after its two header lines.
        for line in proc.stdout.rsplit("TASKS RECAP", 1)[1].splitlines()[3:8]:
            print(f"    {line.strip()}")
    return proc.returncode, proc.stdout + proc.stderr
