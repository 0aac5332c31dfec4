"""A change of the app reaches every service of a host in one run of site.yml.

site.yml runs roles/celery_app in the workers', beat's and Flower's plays: on a host of all three,
the workers' play writes the new files and the later plays find nothing left to change. The fact
celery_app_changed must still say "the app changed on this host during this run" there, or beat and
Flower keep the old settings until something else restarts them.

flower-bookworm (systemd) joins the groups celery_workers and celery_beat through an extra
inventory source; site.yml --limit it with a new celery_app_environment must restart its workers,
beat and Flower into the new environment; a second run without it restarts them again, back to the
scenario's own environment file (the later modules see the converged host). Sorts before
test_bad_input.py, whose fingerprints compare the host with itself only.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import time

import pytest
from conftest import BEAT_SERVICE, FLOWER_SERVICE, LAYOUT, PROJECT, Target, ansible_playbook

HOST = "flower-bookworm"  # systemd in molecule.yml
MARK = "FLEET_TEST_MARK"
CHANGE = {"celery_app_environment": {MARK: "1"}}


def _services(target: Target) -> list[str]:
    workers = [LAYOUT["worker_service_prefix"] + worker["name"] for worker in target.vars["celery_workers"]]
    return [*workers, BEAT_SERVICE, FLOWER_SERVICE]


def _pids(target: Target) -> dict[str, int]:
    return {service: target.node.main_pid(service) for service in _services(target)}


def _marked(target: Target, pid: int) -> bool:
    """Whether the process started with MARK in its environment (read as root)."""
    environ = target.sh(f"tr '\\0' '\\n' < /proc/{pid}/environ", check=False).stdout.splitlines()
    return f"{MARK}=1" in environ


def _state(target: Target) -> dict:
    """Each service's MainPID, whether it runs and carries MARK; the app's environment file's checksum;
    whether the workers' restart record (deploy-workers.yml's first play -> its batches) is left."""
    pids = _pids(target)
    return {
        "pids": pids,
        "running": {name: target.service_active(name) for name in pids},
        "marked": {name: pid > 0 and _marked(target, pid) for name, pid in pids.items()},
        "env": target.sh(f"md5sum {LAYOUT['env_file']}").stdout,
        "record": target.node.exists(LAYOUT["worker_restart_file"]),
    }


def _changed(result: subprocess.CompletedProcess[str]) -> int:
    match = re.search(rf"^{re.escape(HOST)}\s*:.*\bchanged=(\d+)", result.stdout, re.M)
    assert match, result.stdout[-3000:]
    return int(match.group(1))


def _slowest(result: subprocess.CompletedProcess[str], count: int = 4) -> list[str]:
    """The run's slowest tasks from profile_tasks' recap (sorted, slowest first)."""
    recap = result.stdout.rpartition("TASKS RECAP")[2]
    tasks = re.findall(r"^(.+?) -{3,} (\d+\.\d+)s$", recap, re.M)
    return [f"{name} {seconds}s" for name, seconds in tasks[:count]]


def _site(inventory: pathlib.Path, extra_vars: dict | None) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = ansible_playbook(["-i", str(inventory), str(PROJECT / "site.yml"), "--limit", HOST], extra_vars)
    return result, time.monotonic() - started


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    # The host in every group of an app service (it is in `flower` already); the code from where
    # converge.yml takes it.
    inventory = tmp_path_factory.mktemp("app-change") / "groups.yml"
    source = {"celery_app_src": str(PROJECT / "examples" / "celery_demo")}
    inventory.write_text(
        json.dumps({"celery_workers": {"hosts": {HOST: source}}, "celery_beat": {"hosts": {HOST: {}}}})
    )
    target = Target(HOST)
    before = _state(target)

    changed, changed_seconds = _site(inventory, CHANGE)
    after_change = _state(target)
    restored, restored_seconds = _site(inventory, None)
    after_restore = _state(target)

    for name, result, seconds in [
        ("with the change", changed, changed_seconds),
        ("without it", restored, restored_seconds),
    ]:
        recap = _changed(result) if result.returncode == 0 else "?"
        print(f"\nsite.yml -l {HOST} {name}: rc {result.returncode}, changed={recap}, {seconds:.0f} s")
        print(f"  slowest tasks: {_slowest(result)}")
    for name, state in [("before", before), ("changed", after_change), ("restored", after_restore)]:
        print(f"MainPIDs {name}: {state['pids']}")
    return {
        "target": target,
        "before": before,
        "changed": changed,
        "after_change": after_change,
        "restored": restored,
        "after_restore": after_restore,
    }


def test_app_change_restarts_workers_beat_and_flower_into_the_new_environment(runs: dict) -> None:
    result, before, after = runs["changed"], runs["before"], runs["after_change"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert after["env"] != before["env"]
    assert all(pid > 0 for pid in before["pids"].values()), before["pids"]
    # Every service started anew, runs, and carries the new variable.
    assert {name: pid for name, pid in after["pids"].items() if pid in (0, before["pids"][name])} == {}
    assert after["running"] == dict.fromkeys(after["running"], True)
    assert after["marked"] == dict.fromkeys(after["marked"], True)
    assert not after["record"]


def test_run_without_the_change_restarts_them_back_to_the_converged_environment(runs: dict) -> None:
    result, changed, after = runs["restored"], runs["after_change"], runs["after_restore"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert after["env"] == runs["before"]["env"]
    assert {name: pid for name, pid in after["pids"].items() if pid in (0, changed["pids"][name])} == {}
    assert after["running"] == dict.fromkeys(after["running"], True)
    assert after["marked"] == dict.fromkeys(after["marked"], False)
    assert not after["record"]
    runs["target"].wait_for_flower()
