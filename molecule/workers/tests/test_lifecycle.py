"""Re-deploys: one changed worker restarts alone, a broken worker ends failed/FATAL and is named by
the deploy's live check, and workers dropped from the list lose their service and leave the fleet.

Runs the scenario's converge three more times (workers only): (1) the fleet plus a spare worker, a
worker that cannot start (it must import a module that does not exist) and one changed worker
(datasets at loglevel DEBUG); (2) the broken worker repaired and spare marked `state: absent`;
(3) the declared fleet, which drops the formerly broken worker from the list.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import WORKERS, ansible_playbook, service
from fleetnode import wait_until

CHANGED = "datasets"
SPARE = {"name": "spare", "queues": ["low_priority"], "concurrency": 1}
# Celery imports worker_consumer at start: a module that does not import, as after a bad deploy.
BROKEN = {
    "name": "broken",
    "queues": ["training"],
    "concurrency": 1,
    "extra_args": ["--", "worker_consumer=celery_demo.missing:Consumer"],
}
FAIL_WITHIN = 60  # seconds after the deploy; StartLimitIntervalSec / startretries bound it


def _fleet_with_extras() -> list[dict[str, Any]]:
    workers = copy.deepcopy(WORKERS)
    for worker in workers:
        if worker["name"] == CHANGED:
            worker["loglevel"] = "DEBUG"
    return [*workers, SPARE, BROKEN]


@pytest.fixture(scope="module")
def pids_before(node) -> dict[str, int]:
    return {w["name"]: node.main_pid(service(w["name"])) for w in WORKERS}


@pytest.fixture(scope="module")
def extended(node, pids_before, tmp_path_factory) -> dict[str, Any]:
    assert all(pids_before.values()), pids_before
    # Only the workers change: --tags celery_worker skips the app's role (half the run).
    rc, output = ansible_playbook(
        "--tags",
        "celery_worker",
        extra_vars={"celery_workers": _fleet_with_extras(), "celery_worker_verify_retries": 2},
        tmp_path=tmp_path_factory.mktemp("extended"),
        profile=True,
    )
    try:
        _, seconds = wait_until(
            lambda: node.state(service("broken")) == node.failed_state,
            timeout=FAIL_WITHIN,
            what=f"{service('broken')} in state {node.failed_state}",
        )
        print(f"broken worker {node.failed_state} {seconds:.1f} s after the deploy ended")
    except AssertionError as error:
        print(error)
    return {"rc": rc, "output": output, "broken_state": node.state(service("broken"))}


@pytest.fixture(scope="module")
def repaired(fleet, extended, tmp_path_factory) -> dict[str, Any]:
    workers = [*WORKERS, {**SPARE, "state": "absent"}, {k: v for k, v in BROKEN.items() if k != "extra_args"}]
    rc, output = ansible_playbook(
        "--tags",
        "celery_worker",
        extra_vars={"celery_workers": workers},
        tmp_path=tmp_path_factory.mktemp("repaired"),
        profile=True,
    )
    return {"rc": rc, "output": output}


@pytest.fixture(scope="module")
def restored(fleet, repaired, tmp_path_factory) -> dict[str, Any]:
    rc, output = ansible_playbook(
        "--tags", "celery_worker", tmp_path=tmp_path_factory.mktemp("restored"), profile=True
    )
    return {"rc": rc, "output": output}


def test_changed_worker_restarts_alone(node, pids_before, extended):
    after = {w["name"]: node.main_pid(service(w["name"])) for w in WORKERS}
    restarted = sorted(name for name in after if after[name] != pids_before[name])
    print(f"restarted by the deploy: {restarted}")
    assert restarted == [CHANGED]


def test_broken_worker_ends_failed(node, extended):
    assert extended["broken_state"] == node.failed_state


def test_deploy_with_broken_worker_fails_naming_it(extended):
    assert extended["rc"] != 0
    assert "worker 'broken'" in extended["output"]
    assert "worker 'spare'" not in extended["output"]


def test_added_worker_joins_the_fleet(fleet, node, extended):
    node.inspect("ping", {fleet.node_name(SPARE)}, timeout=30)


def test_repaired_worker_starts_again_after_failing(fleet, node, repaired):
    assert repaired["rc"] == 0, repaired["output"][-3000:]
    node.inspect("ping", {fleet.node_name(BROKEN)}, timeout=30)


def test_worker_marked_absent_loses_its_service(node, repaired):
    _assert_service_gone(node, "spare")


def test_redeploy_of_declared_fleet_succeeds(restored):
    assert restored["rc"] == 0, restored["output"][-3000:]


def test_worker_dropped_from_the_list_loses_its_service(node, restored):
    _assert_service_gone(node, "broken")


@pytest.mark.parametrize("worker", [SPARE, BROKEN], ids=lambda w: w["name"])
def test_removed_worker_leaves_the_fleet(fleet, node, restored, worker):
    # Every declared node answers (the broadcast reached the whole fleet), the removed one is not among them.
    replies = node.inspect("ping", fleet.nodes())
    assert fleet.node_name(worker) not in replies


def test_deploy_output_never_shows_the_password(fleet, extended, repaired, restored):
    for secret in fleet.secrets:
        for run in (extended, repaired, restored):
            assert secret not in run["output"]


def _assert_service_gone(node, worker: str) -> None:
    assert not node.exists(node.service_file(service(worker)))
    assert not node.known(service(worker))


def test_deploy_warns_about_a_granted_device_node_missing_on_the_host(fleet, restored):
    # converge.yml grants /dev/nvidiactl, which the container does not have: systemd skips it
    # silently, the deploy says so (the wording may wrap in the output: look for its words).
    if fleet.manager != "systemd":
        pytest.skip("supervisord grants no device")
    output = restored["output"]
    assert "Warn about granted device nodes missing on the host" in output
    assert "/dev/nvidiactl" in output
    assert "nvidia-persistenced" in output
