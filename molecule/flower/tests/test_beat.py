"""Beat: one scheduler whose periodic task runs on the workers; schedule file in the state dir."""

from __future__ import annotations

import contextlib
import re

from conftest import APP, BEAT_PROCESS, BEAT_SERVICE, Target
from fleetnode import wait_until

TASK = "celery_demo.tasks.ping_low_priority"
WORKER = f"{APP}-worker-fast"


def _executions(target: Target) -> int:
    return len(re.findall(rf"Task {re.escape(TASK)}\[[0-9a-f-]+\] succeeded", target.service_log(WORKER)))


def test_beat_runs_once_and_logs_its_start(target: Target) -> None:
    assert target.service_active(BEAT_SERVICE)
    processes = target.sh(f"pgrep -c -f '{BEAT_PROCESS}'").stdout.strip()
    assert processes == "1"
    assert "beat: Starting..." in target.service_log(BEAT_SERVICE)


def test_schedule_file_lives_in_the_state_directory(target: Target) -> None:
    files = target.sh(f"ls /var/lib/{APP}/beat").stdout.split()
    owner = target.sh(f"stat -c %U /var/lib/{APP}/beat/{files[0]}").stdout.strip()
    print(f"{target.container}: /var/lib/{APP}/beat: {files} ({owner})")
    assert any(name.startswith("celerybeat-schedule") for name in files)
    assert owner == APP


def test_periodic_task_is_executed_by_the_workers(target: Target) -> None:
    period = target.vars["celery_beat_schedule"]["ping-low-priority"]["schedule"]
    wanted = 3
    before = _executions(target)
    elapsed = float("nan")
    # The count is asserted below, with the number seen.
    with contextlib.suppress(AssertionError):
        _, elapsed = wait_until(
            lambda: _executions(target) - before >= wanted,
            timeout=wanted * period + 15,
            what=f"{wanted} more runs of {TASK}",
        )
    ran = _executions(target) - before
    print(f"{target.container}: {ran} runs of {TASK} in {elapsed:.1f} s (every {period} s scheduled)")
    assert ran >= wanted
