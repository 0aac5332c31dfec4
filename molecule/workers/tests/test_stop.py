"""Stopping a worker lets its running task finish (warm shutdown), whatever the process manager."""

from __future__ import annotations

import time

from conftest import WORKLOAD, inspect, run_json

WORKER = "low-priority"  # consumes low_priority, where sleep_task is routed
TASK_SECONDS = 20


def test_stop_with_running_task_lets_it_succeed(host, fleet):
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    sent = run_json(host, f"{WORKLOAD} sleep --seconds {TASK_SECONDS} --queue low_priority --wait-started 15")
    assert sent["state"] == "STARTED", sent

    started = time.monotonic()
    stop = fleet.stop(WORKER)
    stop_seconds = time.monotonic() - started
    result = run_json(host, f"{WORKLOAD} --timeout 40 result {sent['id']}")
    print(
        f"stop of {WORKER} with a running {TASK_SECONDS} s task: {stop_seconds:.1f} s, task {result['state']}"
    )
    try:
        assert stop.rc == 0, stop.stderr
        assert result["state"] == "SUCCESS", result
        assert "WorkerLostError" not in fleet.logs(WORKER, since=since)
    finally:
        fleet.start(WORKER)


def test_worker_is_back_after_the_stop_test(host, fleet):
    # A later test must not find the fleet short of a worker: wait (bounded) for its first reply.
    node = f"worker-low-priority@{fleet.hostname}"
    deadline = time.monotonic() + 30
    while node not in inspect(host, "ping") and time.monotonic() < deadline:
        time.sleep(1)
    assert node in inspect(host, "ping")
