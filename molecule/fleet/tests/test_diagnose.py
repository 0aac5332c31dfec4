"""A worker that does not come up makes the deploy say why, and stops the rollout there.

The app module is made unimportable on every worker host (celery_app_module misspelt, as a typo in
the inventory would): the first restart batch (fleet-worker-gpu) crash-loops, and deploy-workers.yml
fails naming its workers, showing their log and the hint for an import error. The second host is
never restarted (its workers keep running the good module, its restarts stay recorded). The fleet
is then deployed as declared: both hosts restart and answer, and the records go.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from conftest import LAYOUT, WORKERS, ansible_playbook, inspect, main_pid, node, node_name

HOST = "fleet-worker-gpu"  # the first worker host of the inventory: the first restart batch
SECOND = "fleet-worker-cpu"


def _pids(host: str) -> dict[str, int]:
    return {w["name"]: main_pid(host, w["name"]) for w in WORKERS[host]}


@pytest.fixture(scope="module")
def broken_deploy() -> dict[str, Any]:
    second_before = _pids(SECOND)
    result = ansible_playbook(
        "playbooks/deploy-workers.yml",
        "-e",
        "celery_app_module=celery_demo.misspelt",
        "-e",
        "celery_worker_verify_retries=5",
    )
    outcome = {
        "result": result,
        "second_before": second_before,
        "second_after": _pids(SECOND),
        "records": {name: node(name).exists(LAYOUT["worker_restart_file"]) for name in WORKERS},
    }
    yield outcome
    restored = ansible_playbook("playbooks/deploy-workers.yml")
    output = restored.stdout + restored.stderr
    assert restored.returncode == 0, output[output.find("fatal:") :][:3000] or output[-2000:]
    nodes = {node_name(w, h) for h in WORKERS for w in WORKERS[h]}
    inspect("ping", nodes)
    assert not any(node(name).exists(LAYOUT["worker_restart_file"]) for name in WORKERS)


def test_the_deploy_fails_naming_each_worker_with_its_log_and_the_cause(broken_deploy) -> None:
    result: subprocess.CompletedProcess[str] = broken_deploy["result"]
    output = result.stdout + result.stderr
    print(output[output.find("fatal:") :][:3000])
    assert result.returncode != 0
    for worker in WORKERS[HOST]:
        assert f"worker '{worker['name']}' (node {node_name(worker, HOST)}): did not answer" in output
    assert "'celery_demo.misspelt' (celery_app_module) cannot be imported" in output
    assert "No module named 'celery_demo.misspelt'" in output


def test_a_failed_batch_stops_the_rollout_before_the_next_host_restarts(broken_deploy) -> None:
    print(
        f"{SECOND} main PIDs before {broken_deploy['second_before']}, after {broken_deploy['second_after']}"
    )
    assert all(broken_deploy["second_before"].values())
    assert broken_deploy["second_after"] == broken_deploy["second_before"]


def test_restarts_not_done_or_not_verified_stay_recorded_for_the_next_run(broken_deploy) -> None:
    assert broken_deploy["records"] == dict.fromkeys(WORKERS, True)
