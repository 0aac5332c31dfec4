"""Flower's persistent state: it survives a restart, and a corrupt db does not crash-loop it."""

from __future__ import annotations

import time

from conftest import APP, FLOWER_SERVICE, Target

STATE_DIR = f"/var/lib/{APP}/flower"


def _task_ids(target: Target) -> set[str]:
    return set(target.api("/api/tasks?limit=10000"))


def _wait_for_tasks(target: Target, minimum: int, timeout: float = 20.0) -> set[str]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        ids = _task_ids(target)
        if len(ids) >= minimum:
            return ids
        time.sleep(1)
    raise AssertionError(f"{target.container}: fewer than {minimum} tasks in Flower after {timeout} s")


def test_flower_keeps_its_tasks_across_a_restart(target: Target) -> None:
    before = _wait_for_tasks(target, minimum=3)
    target.restart(FLOWER_SERVICE)
    seconds = target.wait_for_flower()
    after = _task_ids(target)
    kept = before & after
    files = target.sh(f"ls {STATE_DIR}").stdout.split()
    print(
        f"{target.container}: {len(before)} tasks before, {len(kept)} kept after a restart "
        f"(up in {seconds:.1f} s); {files}"
    )
    assert kept == before


def test_a_corrupt_db_is_moved_aside_and_flower_starts_fresh(target: Target) -> None:
    stop = "systemctl stop" if target.manager == "systemd" else "supervisorctl stop"
    start = "systemctl start" if target.manager == "systemd" else "supervisorctl start"
    target.sh(f"{stop} {FLOWER_SERVICE}")
    db_files = target.sh(f"ls {STATE_DIR} | grep -v corrupt").stdout.split()
    assert db_files, "no db file to corrupt"
    for name in db_files:
        target.sh(f"head -c 4096 /dev/urandom > {STATE_DIR}/{name}; chown {APP}: {STATE_DIR}/{name}")
    target.sh(f"rm -f {STATE_DIR}/*.corrupt; {start} {FLOWER_SERVICE}")
    seconds = target.wait_for_flower()
    time.sleep(6)  # a crash loop would show within this window (supervisord: startsecs=5)
    assert target.service_active(FLOWER_SERVICE)
    restarts = (
        target.sh(f"systemctl show -p NRestarts --value {FLOWER_SERVICE}").stdout.strip()
        if target.manager == "systemd"
        else "n/a"
    )
    moved = target.sh(f"ls {STATE_DIR}").stdout.split()
    log = target.service_log(FLOWER_SERVICE)
    print(
        f"{target.container}: up in {seconds:.1f} s after corrupting {db_files}; "
        f"restarts {restarts}; now {moved}"
    )
    assert any(name.endswith(".corrupt") for name in moved)
    assert "moving it aside and starting fresh" in log
    assert restarts in ("0", "n/a")
    assert target.api("/api/workers?refresh=1")
