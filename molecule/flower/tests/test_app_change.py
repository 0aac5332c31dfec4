"""A change of the app reaches every service of a host in one run of site.yml; the scenario's
idempotence check (it replaces Molecule's `idempotence` step, molecule.yml).

site.yml runs roles/celery_app in the workers', beat's and Flower's plays: on a host of all three,
the workers' play writes the new files and the later plays find nothing left to change. The fact
celery_app_changed must still say "the app changed on this host during this run" there, or beat and
Flower keep the old settings until something else restarts them.

flower-bookworm (systemd) joins the groups celery_workers and celery_beat through an extra
inventory source; site.yml --limit it with a new celery_app_environment must restart its workers,
beat and Flower into the new environment. Then converge.yml again on every host, as Molecule's
`idempotence` step ran it (the broker's tasks skipped: see the fixture): one run that serves two
tests, where the scenario paid a site.yml run here and a whole converge of both hosts in that step.
It must restart flower-bookworm's services back into the scenario's own environment file (the
later modules see the converged host) and change nothing else anywhere: changed=0 on
flower-bookworm-supervisord, which this module is the first to touch, and on flower-bookworm only
the environment file and the restarts that the change back explains. Sorts first (before
test_bad_input.py, whose fingerprints compare the host with itself only), so the second run meets
the hosts as the converge left them.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import time

import pytest
from celery_fleet.recap import changed_per_host, slowest_tasks  # lib/ is on sys.path through fleetnode
from conftest import BEAT_SERVICE, FLOWER_SERVICE, LAYOUT, PROJECT, Target, ansible_playbook, inventory_hosts

HOST = "flower-bookworm"  # systemd in molecule.yml
OTHERS = [name for name in inventory_hosts() if name != HOST]
CONVERGE = str(pathlib.Path(__file__).resolve().parents[1] / "converge.yml")
# What a change back of the app's environment alone may change in converge.yml on HOST: the file
# (roles/celery_app) and the restarts of the services that run the app (roles/celery_service, for
# the workers, beat and Flower). Any other changed task means the run was not idempotent.
EXPLAINED = re.compile(
    r"Write the app's environment, commands, TLS files, settings and entry point"
    r"|Restart the services whose unit, files or app changed"
)
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


def _changed(result: subprocess.CompletedProcess[str], host: str = HOST) -> int:
    changed = changed_per_host(result.stdout)
    assert host in changed, result.stdout[-3000:]
    return changed[host]


def _changed_tasks(result: subprocess.CompletedProcess[str], host: str) -> list[str]:
    """The tasks and handlers that reported `changed` on ``host``, in run order: one entry per task
    run, as the recap counts them (a loop's items count once; a task run by several roles, such as
    roles/celery_service's, once per run)."""
    found: list[str] = []
    task, counted = "", False
    for line in result.stdout.splitlines():
        header = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.+)\]", line)
        if header:
            task, counted = header.group(1), False
        elif not counted and re.match(rf"^changed: \[{re.escape(host)}(?: -> [^\]]+)?\]", line):
            found.append(task)
            counted = True
    return found


def _slowest(result: subprocess.CompletedProcess[str], count: int = 4) -> list[str]:
    """The run's slowest tasks from profile_tasks' recap (sorted, slowest first)."""
    return [f"{name} {seconds:.2f}s" for name, seconds in slowest_tasks(result.stdout, count)]


def _timed(args: list[str], extra_vars: dict | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = ansible_playbook(args, extra_vars)
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
    others = [Target(name) for name in OTHERS]
    before = _state(target)
    others_before = {other.container: _pids(other) for other in others}

    site = ["-i", str(inventory), str(PROJECT / "site.yml"), "--limit", HOST]
    changed, changed_seconds = _timed(site, CHANGE)
    after_change = _state(target)
    # No --limit: Molecule's idempotence run on every host, and HOST's way back (see the docstring).
    # Without the broker's tasks (a third of a converge, as in test_retire.py): roles/redis with
    # the same four ACL rule sets (and an exporter's) and no TLS is checked for changed=0 by the
    # fleet scenario's tests/test_rerun.py (inventories/sandbox), with TLS by the redis scenario's
    # idempotence step.
    restored, restored_seconds = _timed([CONVERGE, "--skip-tags", "redis"])
    after_restore = _state(target)
    others_after = {other.container: _pids(other) for other in others}

    for name, result, seconds in [
        (f"site.yml -l {HOST} with the change", changed, changed_seconds),
        ("converge.yml on every host without it", restored, restored_seconds),
    ]:
        recap = _changed(result) if result.returncode == 0 else "?"
        print(f"\n{name}: rc {result.returncode}, changed={recap} on {HOST}, {seconds:.0f} s")
        print(f"  slowest tasks: {_slowest(result)}")
    print(f"changed on {HOST} by converge.yml: {_changed_tasks(restored, HOST)}")
    for name, state in [("before", before), ("changed", after_change), ("restored", after_restore)]:
        print(f"MainPIDs {name}: {state['pids']}")
    return {
        "target": target,
        "before": before,
        "changed": changed,
        "after_change": after_change,
        "restored": restored,
        "after_restore": after_restore,
        "others_before": others_before,
        "others_after": others_after,
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


def test_converge_again_changes_nothing_on_the_other_hosts(runs: dict) -> None:
    result = runs["restored"]
    assert result.returncode == 0, result.stdout[-3000:]
    changed = {name: _changed(result, name) for name in OTHERS}
    print(f"converge.yml again: changed {changed}, tasks {[_changed_tasks(result, n) for n in OTHERS]}")
    assert changed == dict.fromkeys(OTHERS, 0), result.stdout[-3000:]
    # Nothing restarted either (more than Molecule's step checked).
    assert runs["others_after"] == runs["others_before"]


def test_converge_again_changes_only_the_environment_and_its_restarts_on_the_host(runs: dict) -> None:
    result = runs["restored"]
    assert result.returncode == 0, result.stdout[-3000:]
    tasks = _changed_tasks(result, HOST)
    # The parse found what the recap counts: no changed task escapes the check below.
    assert tasks and len(tasks) == _changed(result), (tasks, _changed(result))
    assert [task for task in tasks if not EXPLAINED.search(task)] == [], result.stdout[-3000:]
