"""Nothing stale across hosts: celery_beat moved from the ops host to a worker host in the inventory,
then `site.yml` as an operator runs it (the same run deploys the worker hosts test_diagnose left
with a misspelt app module as declared again: one full run instead of two). Afterwards beat runs on
the new host only, the ops host's unit is gone, and the periodic task runs once per period, counted
through the runs the workers execute (two beats would interleave their runs). Then
`site.yml --tags beat` with the scenario's own inventory moves beat back, and the fleet is as the
other tests expect it.

The moved inventory is a copy of the one Molecule wrote (same hosts, connection and variables)
with another `celery_beat` group: group membership cannot be changed with -e.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    APP,
    GROUP_VARS,
    LAYOUT,
    LEFT_BROKEN,
    OPS,
    WORKER_HOSTS,
    WORKERS,
    ansible_playbook,
    inspect,
    node,
    node_name,
    wait_until,
)

NEW_BEAT = "fleet-worker-gpu"
TASK = "celery_demo.tasks.ping_low_priority"
SCHEDULE = yaml.safe_load((GROUP_VARS / "celery_beat" / "celery_beat.yml").read_text())[
    "celery_beat_schedule"
]
PERIOD = float(SCHEDULE["ping-low-priority"]["schedule"])
# Runs counted after the move: three give two gaps, and two beats of one period always leave a gap
# of at most half a period between two of three consecutive runs.
RUNS = 3
# Bounded: the first run comes within a period of the new beat's start, then one per period.
WAIT = PERIOD * (RUNS + 1) + 30
BEAT_PROCESS = "bin/[c]elery -A [^ ]+ beat"
HOSTS = [OPS, *WORKER_HOSTS]
# Set by the last test once beat is back on the ops host; otherwise the fixture moves it back.
RESTORED: dict[str, bool] = {}


def _inventory_with_beat_on(beat_host: str, directory: Path) -> Path:
    """A copy of the scenario's inventory in which only beat_host is in celery_beat."""
    source = Path(os.environ["MOLECULE_INVENTORY_FILE"])
    inventory = yaml.safe_load(source.read_text())
    assert OPS in inventory["celery_beat"]["hosts"], inventory.get("celery_beat")
    inventory["celery_beat"] = {"hosts": {beat_host: {}}}
    (directory / source.name).write_text(yaml.safe_dump(inventory, sort_keys=False))
    for linked in ("group_vars", "host_vars"):
        if (source.parent / linked).exists():
            (directory / linked).symlink_to((source.parent / linked).resolve())
    return directory


def _beats() -> dict[str, int]:
    """Beat processes per host."""
    counts = {}
    for name in HOSTS:
        out = node(name).run(f"pgrep -c -f '{BEAT_PROCESS}'").stdout.strip()
        counts[name] = int(out or 0)
    return counts


def _runs(since: float) -> list[float]:
    """When the workers finished each run of the periodic task since `since` (journal timestamps)."""
    pattern = re.compile(rf"^(\d+\.\d+) .*Task {re.escape(TASK)}\[[0-9a-f-]{{36}}\] succeeded", re.M)
    stamps: list[float] = []
    for name in WORKER_HOSTS:
        out = (
            node(name)
            .run(f"journalctl -o short-unix --no-pager -u '{APP}-worker-*' --since @{int(since)}")
            .stdout
        )
        stamps += [float(stamp) for stamp in pattern.findall(out) if float(stamp) >= since]
    return sorted(stamps)


def _beat_started(name: str) -> float:
    """When the beat service of a host last became active (seconds since the epoch, whole seconds);
    0 if it never did."""
    shown = node(name).check(f"systemctl show -p ActiveEnterTimestamp --value {APP}-beat").strip()
    return float(node(name).check(f"date -d {shlex.quote(shown)} +%s")) if shown else 0.0


def _unit_state(name: str) -> tuple[bool, str]:
    """(unit file present, ActiveState) of the beat service on a host."""
    present = node(name).exists(node(name).service_file(f"{APP}-beat"))
    state = node(name).state(f"{APP}-beat")
    return present, state


def _back() -> subprocess.CompletedProcess[str]:
    return ansible_playbook("site.yml", "--tags", "beat")


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    inventory = _inventory_with_beat_on(NEW_BEAT, tmp_path_factory.mktemp("beat-moved"))
    before = _beats()
    # Hosts an earlier module left off the inventory: this run deploys them as declared too.
    restoring = sorted(LEFT_BROKEN)
    started = time.monotonic()
    result = ansible_playbook("site.yml", inventory=inventory)
    print(
        f"\nsite.yml with beat on {NEW_BEAT} (also bringing back {restoring or 'nothing'}): "
        f"rc {result.returncode} in {time.monotonic() - started:.0f} s"
    )
    if result.returncode == 0:
        LEFT_BROKEN.difference_update(restoring)
    runs: list[float] = []
    since = time.time()
    if result.returncode == 0:
        # Counted from the new beat's start, after the old one was retired (site.yml goes on with
        # Flower and verify for a while): runs during the rest of the play count, so the wait below
        # is about a period shorter. A beat left running elsewhere would still interleave its runs.
        since = _beat_started(NEW_BEAT) or since

        def counted() -> bool:
            """the workers ran the periodic task RUNS times after the move"""
            runs[:] = _runs(since)
            return len(runs) >= RUNS

        # The test below says how many ran.
        with contextlib.suppress(AssertionError):
            what = f"{RUNS} runs of {TASK} after the move"
            _, waited = wait_until(counted, timeout=WAIT, interval=2, what=what)
            print(f"{RUNS} runs of {TASK} since beat started on {NEW_BEAT}: {waited:.0f} s after the run")
    yield {
        "result": result,
        "before": before,
        "after": _beats(),
        "runs": runs,
        "since": since,
        "restoring": restoring,
    }
    if not RESTORED:
        _back()


def test_site_yml_moves_beat(moved: dict[str, Any]) -> None:
    result = moved["result"]
    assert moved["before"] == {name: int(name == OPS) for name in HOSTS}
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"Retiring {APP}-beat under systemd" in " ".join(result.stdout.split())


def test_the_same_run_brings_back_a_worker_host_left_broken(moved: dict[str, Any]) -> None:
    # test_diagnose's host (its app module misspelt): deployed as declared, every worker answering.
    if not moved["restoring"]:
        pytest.skip("no worker host was left broken (test_diagnose did not run)")
    assert moved["result"].returncode == 0
    nodes = {node_name(w, host) for host in moved["restoring"] for w in WORKERS[host]}
    assert nodes <= inspect("ping", nodes, only=True).keys()
    # Their restarts were verified, so their records (deploy-workers.yml's first play) are gone.
    assert not any(node(host).exists(LAYOUT["worker_restart_file"]) for host in moved["restoring"])


def test_beat_runs_on_the_new_host_only(moved: dict[str, Any]) -> None:
    print(f"beat processes per host after the move: {moved['after']}")
    assert moved["after"] == {name: int(name == NEW_BEAT) for name in HOSTS}
    assert _unit_state(OPS) == (False, "inactive")
    assert _unit_state(NEW_BEAT) == (True, "active")


def test_the_periodic_task_runs_once_per_period(moved: dict[str, Any]) -> None:
    runs = moved["runs"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    shown = [round(gap, 1) for gap in gaps]
    print(f"{TASK} after the move: {len(runs)} runs, gaps {shown} s (every {PERIOD:.0f} s)")
    assert len(runs) >= RUNS, f"only {len(runs)} runs within {WAIT:.0f} s"
    # One beat: consecutive runs one period apart (the worker's own delay varies by far less).
    assert min(gaps) > 0.75 * PERIOD, f"two runs {min(gaps):.1f} s apart: more than one beat"
    assert max(gaps) < 1.25 * PERIOD


def test_site_yml_tags_beat_moves_it_back(moved: dict[str, Any]) -> None:
    started = time.monotonic()
    result = _back()
    elapsed = time.monotonic() - started
    print(f"site.yml --tags beat with beat back on {OPS}: rc {result.returncode} in {elapsed:.0f} s")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"Retiring {APP}-beat under systemd" in " ".join(result.stdout.split())
    # Only beat moved: no worker, Redis or Flower task ran (their argument checks are tagged always;
    # roles/celery_worker's app_current and app_record compare and record the ops host's app, which
    # beat's play converges).
    worker_or_other = (
        r"TASK \[(celery_worker|redis|flower) : (?!Validating arguments|app_current \||app_record \|)"
    )
    assert not re.search(worker_or_other, result.stdout)
    assert _beats() == {name: int(name == OPS) for name in HOSTS}
    assert _unit_state(NEW_BEAT) == (False, "inactive")
    assert _unit_state(OPS) == (True, "active")
    RESTORED["ops"] = True
