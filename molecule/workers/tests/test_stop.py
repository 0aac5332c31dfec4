"""Stopping a worker lets its running task finish (warm shutdown), whatever the process manager."""

from __future__ import annotations

import time

from conftest import WORKERS, service

WORKER = next(w for w in WORKERS if w["name"] == "low-priority")  # low_priority: where sleep_task goes
TASK_SECONDS = 20


def test_stop_with_running_task_lets_it_succeed(fleet, node):
    unit = service(WORKER["name"])
    since = node.now() if fleet.manager == "systemd" else None
    sent = fleet.workload(f"sleep --seconds {TASK_SECONDS} --queue low_priority --wait-started 15")
    assert sent["state"] == "STARTED", sent

    started = time.monotonic()
    stop = node.stop(unit)
    stop_seconds = time.monotonic() - started
    result = fleet.workload(f"--timeout 40 result {sent['id']}")
    print(
        f"stop of {unit} with a running {TASK_SECONDS} s task: {stop_seconds:.1f} s, task {result['state']}"
    )
    try:
        assert stop.returncode == 0, stop.stderr
        assert result["state"] == "SUCCESS", result
        assert "WorkerLostError" not in node.logs(unit, since=since)
    finally:
        node.start(unit)


def test_worker_is_back_after_the_stop_test(fleet, node):
    # A later test must not find the fleet short of a worker: wait (bounded) for its reply.
    node.inspect("ping", {fleet.node_name(WORKER)}, timeout=30)
