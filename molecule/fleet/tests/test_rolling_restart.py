"""The worker rollout (playbooks/deploy-workers.yml): zero loss under a rolling restart. site.yml
--tags workers re-runs with a changed worker setting while a producer keeps sending; every task is
executed, none lost, the new setting is live, only the changed workers restarted, and the two hosts
one batch after the other. (test_rerun checks that a re-run that changes nothing never enters the
restart batches.)"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    LAYOUT,
    WORKER_PLAY,
    WORKERS,
    ansible_playbook,
    converged,
    executions,
    inspect,
    node,
    node_name,
    play_section,
    probe,
    streaming,
    task_section,
    unit_timestamps,
)

# The changed setting: one worker per host gets another concurrency, so both host batches restart.
CHANGES = {"fleet-worker-gpu": ("extraction", 3), "fleet-worker-cpu": ("processing", 3)}


def _override_inventory(directory: Path) -> Path:
    """An extra inventory source giving each worker host its changed worker list (host vars of an
    inventory file outrank group_vars)."""
    hosts: dict[str, Any] = {}
    for name, (worker_name, concurrency) in CHANGES.items():
        workers = [dict(w, concurrency=concurrency) if w["name"] == worker_name else w for w in WORKERS[name]]
        hosts[name] = {"celery_workers": workers}
    path = directory / "changed-concurrency.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


@pytest.fixture(scope="module")
def rolling() -> dict[str, Any]:
    """Act once: producer + rolling re-deploy; what the tests below check."""
    since = time.time()
    before = unit_timestamps()

    # The restart must happen under load: from the producer's first task on.
    with streaming("stream") as producer, tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        play = ansible_playbook("site.yml", "-i", str(_override_inventory(Path(tmp))), "--tags", "workers")
        play_seconds = time.monotonic() - started
    assert play.returncode == 0, play.stdout[-3000:]

    sent = producer["sent"]
    collected = probe("collect /tmp/stream-ids.json --timeout 180")
    ran = executions(since)
    ids = [entry["id"] for entry in sent]
    lost = [i for i in ids if ran.get(i, 0) == 0]
    duplicated = {i: ran[i] for i in ids if ran.get(i, 0) > 1}
    after = unit_timestamps()
    print(
        f"\nrolling restart: site.yml --tags workers {play_seconds:.0f} s; "
        f"producer {producer.get('report')}; "
        f"sent {len(ids)}, executed {len(ids) - len(lost)}, lost {len(lost)}, duplicated {len(duplicated)} "
        f"{duplicated or ''}; result states {collected['states']}"
    )
    for (name, worker_name), stamp in sorted(after.items()):
        if stamp.active_since != before[(name, worker_name)].active_since:
            print(
                f"  restarted {worker_name}@{name}: warm stop {stamp.stop_seconds:.2f} s, "
                f"stop to running again {stamp.active_since - stamp.stop_began:.2f} s"
            )
    records = {name: node(name).exists(LAYOUT["worker_restart_file"]) for name in WORKERS}
    return {
        "play": play,
        "ids": ids,
        "lost": lost,
        "collected": collected,
        "before": before,
        "after": after,
        "records": records,
    }


def test_hosts_whose_workers_alone_changed_skip_the_apps_role(rolling) -> None:
    """A worker's concurrency is none of roles/celery_app's inputs: both hosts converge their workers
    only (the record said the app is as its last converge left it)."""
    why = converged(rolling["play"])
    print(why)
    assert set(why) == set(CHANGES), why
    assert all("only the workers converge" in text for text in why.values()), why
    section = play_section(rolling["play"].stdout, WORKER_PLAY)
    assert "TASK [celery_app : configure |" not in section, section[-3000:]
    assert "TASK [celery_app : install |" not in section, section[-3000:]
    # The live check lies in the app's home and counts among the app's inputs: left as it is.
    live_check = task_section(section, "TASK [celery_worker : install | Install the workers' live check]")
    assert not re.search(r"^(ok|changed): ", live_check, re.M), live_check


def test_rolling_restart_sends_at_least_500_tasks_during_the_restart(rolling) -> None:
    assert len(rolling["ids"]) >= 500


def test_rolling_restart_loses_no_task(rolling) -> None:
    assert rolling["lost"] == [], f"{len(rolling['lost'])} tasks never executed: {rolling['lost'][:20]}"
    assert rolling["collected"]["not_success"] == [], rolling["collected"]


def test_changed_setting_is_live_after_the_rolling_restart(rolling) -> None:
    expected = {
        node_name(next(w for w in WORKERS[n] if w["name"] == worker_name), n): concurrency
        for n, (worker_name, concurrency) in CHANGES.items()
    }
    stats = inspect("stats", set(expected), only=True)
    live = {node: stats[node]["pool"]["max-concurrency"] for node in expected}
    print(f"concurrency after the restart: {live}")
    assert live == expected


def test_only_the_changed_workers_restarted(rolling) -> None:
    restarted = {
        key
        for key, stamp in rolling["after"].items()
        if stamp.active_since != rolling["before"][key].active_since
    }
    assert restarted == {(name, worker_name) for name, (worker_name, _) in CHANGES.items()}


def test_hosts_restart_one_batch_after_the_other(rolling) -> None:
    # celery_fleet_serial 1: the second host's worker stops only once the first host's is back.
    spans = sorted(
        (
            rolling["after"][(name, worker_name)].stop_began,
            rolling["after"][(name, worker_name)].active_since,
            name,
        )
        for name, (worker_name, _) in CHANGES.items()
    )
    (_, first_back, first), (second_stop, _, second) = spans
    print(f"{first} back {second_stop - first_back:.2f} s before {second} stopped")
    assert first_back < second_stop


def test_restarts_done_and_verified_leave_no_record(rolling) -> None:
    assert rolling["records"] == dict.fromkeys(WORKERS, False)
