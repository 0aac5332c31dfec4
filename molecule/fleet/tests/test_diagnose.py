"""A worker that does not come up makes the deploy say why, and stops the rollout there.

The app module is made unimportable on every worker host (celery_app_module misspelt, as a typo in
the inventory would): the first restart batch (one host: celery_fleet_serial 1) crash-loops, and
deploy-workers.yml fails naming its workers, showing their log and the hint for an import error.
The other host is never restarted (its workers keep running the good module, its restarts stay
recorded). Which host comes first is the inventory's order: the test finds it by the main PIDs.
The fleet is then deployed as declared by test_stale's full site.yml run, which comes next: both
hosts restart and answer, and the records go (a deploy-workers.yml run of its own cost 100-190 s).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import LAYOUT, LEFT_BROKEN, WORKERS, ansible_playbook, main_pid, node, node_name


def _pids() -> dict[str, dict[str, int]]:
    """host -> worker -> main PID of its service."""
    return {
        host: {w["name"]: main_pid(host, w["name"]) for w in workers} for host, workers in WORKERS.items()
    }


@pytest.fixture(scope="module")
def broken_deploy() -> Iterator[dict[str, Any]]:
    # Deployed as declared again by test_stale's full site.yml run, which follows and checks that
    # every worker answers and the records are gone (conftest.LEFT_BROKEN: at the session's end
    # otherwise).
    LEFT_BROKEN.update(WORKERS)
    before = _pids()
    result = ansible_playbook(
        "playbooks/deploy-workers.yml",
        "-e",
        "celery_app_module=celery_demo.misspelt",
        "-e",
        "celery_worker_verify_retries=5",
    )
    after = _pids()
    outcome = {
        "result": result,
        "before": before,
        "after": after,
        "restarted": sorted(host for host in WORKERS if after[host] != before[host]),
        "records": {name: node(name).exists(LAYOUT["worker_restart_file"]) for name in WORKERS},
    }
    yield outcome


def test_the_deploy_fails_naming_each_worker_with_its_log_and_the_cause(broken_deploy) -> None:
    result: subprocess.CompletedProcess[str] = broken_deploy["result"]
    output = result.stdout + result.stderr
    print(output[output.find("fatal:") :][:3000])
    assert result.returncode != 0
    [host] = broken_deploy["restarted"]
    for worker in WORKERS[host]:
        assert f"worker '{worker['name']}' (node {node_name(worker, host)}): did not answer" in output
    assert "'celery_demo.misspelt' (celery_app_module) cannot be imported" in output
    assert "No module named 'celery_demo.misspelt'" in output


def test_a_failed_batch_stops_the_rollout_before_the_next_host_restarts(broken_deploy) -> None:
    print(f"main PIDs before {broken_deploy['before']}, after {broken_deploy['after']}")
    assert all(pid for pids in broken_deploy["before"].values() for pid in pids.values())
    # One batch of one host restarted (and failed); the other host's workers are the same processes.
    assert len(broken_deploy["restarted"]) == 1, broken_deploy["restarted"]


def test_restarts_not_done_or_not_verified_stay_recorded_for_the_next_run(broken_deploy) -> None:
    assert broken_deploy["records"] == dict.fromkeys(WORKERS, True)
