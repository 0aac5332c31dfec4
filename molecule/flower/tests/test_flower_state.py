"""Flower's persistent state: it survives a restart, and a corrupt db does not crash-loop it."""

from __future__ import annotations

import time

from conftest import APP, FLOWER_SERVICE, Target
from fleetnode import wait_until

STATE_DIR = f"/var/lib/{APP}/flower"


def _task_ids(target: Target) -> set[str]:
    return set(target.api("/api/tasks?limit=10000"))


def _wait_for_tasks(target: Target, minimum: int, timeout: float = 20.0) -> set[str]:
    def enough() -> set[str] | None:
        ids = _task_ids(target)
        return ids if len(ids) >= minimum else None

    return wait_until(
        enough,
        timeout=timeout,
        what=f"{target.container}: at least {minimum} tasks in Flower",
    )[0]


def test_flower_keeps_its_tasks_across_a_restart(target: Target) -> None:
    before = _wait_for_tasks(target, minimum=3)
    # The role's own restart (roles/celery_service: systemctl/supervisorctl restart), as a change of
    # flower_users makes it: the restart command's time plus the wait bound the UI's gap (README
    # "Rotating Flower's users").
    started = time.monotonic()
    target.restart(FLOWER_SERVICE)
    stopping = time.monotonic() - started
    seconds = target.wait_for_flower()
    after = _task_ids(target)
    kept = before & after
    files = target.sh(f"ls {STATE_DIR}").stdout.split()
    print(
        f"{target.container}: {len(before)} tasks before, {len(kept)} kept after a restart "
        f"(restart command {stopping:.1f} s, then up in {seconds:.1f} s: the UI answered nothing for "
        f"at most {stopping + seconds:.1f} s); {files}"
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
    # A positive signal instead of a pause: Flower has been up for 6 s in one run (a crash loop
    # restarts it sooner; supervisord's startsecs is 5), and it saved its state since the start.
    wait_until(
        lambda: target.node.up_for(FLOWER_SERVICE, 6),
        timeout=60,
        what=f"{target.container}: {FLOWER_SERVICE} up for 6 s without a restart",
    )
    restarts = _restarts(target)
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


def _restarts(target: Target) -> str:
    """systemd's count of automatic restarts of Flower (supervisord keeps none: "n/a")."""
    if target.manager != "systemd":
        return "n/a"
    return target.sh(f"systemctl show -p NRestarts --value {FLOWER_SERVICE}").stdout.strip()
