"""The operator's day-2 plays on the running fleet, run as the README tells operators to run them:

- playbooks/scale-worker.yml grows a prefork worker's pool live and shrinks it back, with no
  restart; a worker name that is not declared is refused before anything is sent;
- playbooks/drain-host.yml -l <host> -e drain_stop=false: the host's workers stop consuming, tasks
  for its queues wait in Redis, the services keep running;
- playbooks/rolling-restart.yml -l <host> brings the drained host back: its workers consume their
  declared queues again and every waiting task runs, none lost.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import (
    KEY_PREFIX,
    WORKERS,
    all_nodes,
    ansible_playbook,
    inspect,
    main_pid,
    named_node,
    node,
    node_name,
    probe,
    redis_admin,
    service,
    wait_until,
    workload,
)

# A prefork worker: scale-worker changes its process list.
SCALED_HOST, SCALED_WORKER = "fleet-worker-cpu", "datasets"
DRAINED = "fleet-worker-gpu"
# A queue consumed only on the drained host, and how many pings wait in it.
DRAINED_QUEUE, WAITING = "training", 12
# A queue of another host: a ping through it, sent after the drained host's, shows the fleet moved on.
ELSEWHERE_QUEUE = next(w["queues"][0] for h, ws in WORKERS.items() if h != DRAINED for w in ws)


def _processes(nodename: str) -> int:
    """How many pool processes a prefork worker runs now (max-concurrency keeps its start value)."""
    return len(inspect("stats", {nodename}, only=True)[nodename]["pool"]["processes"])


def _queues(nodes: set[str]) -> dict[str, list[str]]:
    replies = inspect("active_queues", nodes, only=True)
    return {node: sorted(q["name"] for q in replies[node]) for node in nodes}


@pytest.fixture(scope="module")
def scaled() -> dict[str, Any]:
    nodename = named_node(SCALED_HOST, SCALED_WORKER)
    declared = next(w for w in WORKERS[SCALED_HOST] if w["name"] == SCALED_WORKER)["concurrency"]
    pid = main_pid(SCALED_HOST, SCALED_WORKER)
    before = _processes(nodename)
    grow = ansible_playbook(
        "playbooks/scale-worker.yml", "-e", f"worker={SCALED_WORKER}", "-e", f"concurrency={declared + 2}"
    )
    _, grown_after = wait_until(
        lambda: _processes(nodename) == declared + 2,
        timeout=30,
        what=f"{nodename} running {declared + 2} pool processes",
    )
    grown = _processes(nodename)
    shrink = ansible_playbook(
        "playbooks/scale-worker.yml", "-e", f"worker={SCALED_WORKER}", "-e", f"concurrency={declared}"
    )
    _, shrunk_after = wait_until(
        lambda: _processes(nodename) == declared,
        timeout=30,
        what=f"{nodename} back to {declared} pool processes",
    )
    print(
        f"\nscale-worker {nodename}: {before} -> {grown} processes ({grown_after:.1f} s after the play), "
        f"back to {_processes(nodename)} ({shrunk_after:.1f} s)"
    )
    return {
        "declared": declared,
        "before": before,
        "grow": grow,
        "grown": grown,
        "shrink": shrink,
        "pid_before": pid,
        "pid_after": main_pid(SCALED_HOST, SCALED_WORKER),
    }


def test_scale_worker_grows_and_shrinks_a_pool_live(scaled) -> None:
    assert scaled["grow"].returncode == 0, scaled["grow"].stdout[-3000:]
    assert scaled["shrink"].returncode == 0, scaled["shrink"].stdout[-3000:]
    assert scaled["before"] == scaled["declared"]
    assert scaled["grown"] == scaled["declared"] + 2


def test_scale_worker_does_not_restart_the_worker(scaled) -> None:
    assert scaled["pid_after"] == scaled["pid_before"]


def test_scale_worker_refuses_a_worker_the_inventory_does_not_declare() -> None:
    play = ansible_playbook("playbooks/scale-worker.yml", "-e", "worker=nobody", "-e", "concurrency=3")
    output = play.stdout + play.stderr  # the failure's message goes to stderr
    assert play.returncode != 0
    assert "Set -e worker=<a worker name of celery_workers>" in output, output[-3000:]
    assert "Grow or shrink the pool" not in output


@pytest.fixture(scope="module")
def drained() -> dict[str, Any]:
    nodes = {node_name(w, DRAINED) for w in WORKERS[DRAINED]}
    pids = {w["name"]: main_pid(DRAINED, w["name"]) for w in WORKERS[DRAINED]}
    drain = ansible_playbook("playbooks/drain-host.yml", "--limit", DRAINED, "-e", "drain_stop=false")
    queues_drained = _queues(nodes) if drain.returncode == 0 else {}
    probe(f"send {DRAINED_QUEUE} {WAITING} /tmp/drained-ids.json")
    # Not a pause but positive signals that the fleet moved on after the pings were queued: a ping
    # sent later through another host's queue ran, and every node of the fleet answered which queues
    # it consumes. Only then does "still waiting in Redis" prove that nobody consumes the queue.
    later = workload(f"--timeout 30 queues --queue {ELSEWHERE_QUEUE}")
    consumers = [
        nodename
        for nodename, replies in inspect("active_queues", all_nodes()).items()
        if DRAINED_QUEUE in {q["name"] for q in replies}
    ]
    waiting = redis_admin(f"LLEN {KEY_PREFIX}{DRAINED_QUEUE}").strip()
    active = {w["name"]: node(DRAINED).is_running(service(w)) for w in WORKERS[DRAINED]}

    started = time.monotonic()
    restart = ansible_playbook("playbooks/rolling-restart.yml", "--limit", DRAINED)
    restart_seconds = time.monotonic() - started
    queues_back = _queues(nodes)
    collected = probe("collect /tmp/drained-ids.json --timeout 60")
    print(
        f"\ndrain-host {DRAINED}: queues after the drain {queues_drained}, {waiting} of {WAITING} "
        f"pings waiting in '{DRAINED_QUEUE}'; rolling-restart {restart_seconds:.1f} s, queues back "
        f"{queues_back}, results {collected['states']}"
    )
    return {
        "nodes": nodes,
        "drain": drain,
        "queues_drained": queues_drained,
        "waiting": waiting,
        "later": later,
        "consumers": consumers,
        "active": active,
        "pids": pids,
        "restart": restart,
        "queues_back": queues_back,
        "collected": collected,
        "pids_after": {w["name"]: main_pid(DRAINED, w["name"]) for w in WORKERS[DRAINED]},
        "windows": {w["name"]: _restart_window(DRAINED, w) for w in WORKERS[DRAINED]},
    }


def _restart_window(host: str, worker: dict[str, Any]) -> tuple[float, float]:
    """When the worker's unit last left the active state and when it became active again
    (systemd's monotonic clock, seconds)."""
    stamps = node(host).unit_stamps(service(worker))
    return stamps.stop_began, stamps.active_since


def test_drain_host_stops_every_consumer_of_the_host(drained) -> None:
    assert drained["drain"].returncode == 0, drained["drain"].stdout[-3000:]
    assert drained["queues_drained"] == {node: [] for node in drained["nodes"]}


def test_tasks_for_a_drained_host_wait_in_redis(drained) -> None:
    assert drained["later"]["ok"], drained["later"]
    assert drained["consumers"] == []
    assert drained["waiting"] == str(WAITING)


def test_drain_host_without_stop_keeps_the_services_running(drained) -> None:
    assert all(drained["active"].values()), drained["active"]


def test_rolling_restart_restarts_a_hosts_workers_that_share_no_queue_together(drained) -> None:
    # The drained host's workers share no queue: one `systemctl restart` for both, so every one
    # left the active state before any came back (one after the other, the second would leave it
    # only after the first was back).
    windows = drained["windows"]
    assert len({q for w in WORKERS[DRAINED] for q in w["queues"]}) == sum(
        len(w["queues"]) for w in WORKERS[DRAINED]
    )
    assert max(stop for stop, _ in windows.values()) < min(start for _, start in windows.values()), windows


def test_rolling_restart_brings_the_drained_host_back(drained) -> None:
    assert drained["restart"].returncode == 0, drained["restart"].stdout[-3000:]
    expected = {node_name(w, DRAINED): sorted(w["queues"]) for w in WORKERS[DRAINED]}
    assert drained["queues_back"] == expected
    # Every worker of the host got a new main process: a restart, not a re-subscription.
    assert all(drained["pids_after"][name] != pid for name, pid in drained["pids"].items()), (
        drained["pids"],
        drained["pids_after"],
    )


def test_no_task_sent_during_the_drain_is_lost(drained) -> None:
    assert drained["collected"]["total"] == WAITING
    assert drained["collected"]["not_success"] == [], drained["collected"]
    wait_until(
        lambda: redis_admin(f"LLEN {KEY_PREFIX}{DRAINED_QUEUE}").strip() == "0",
        timeout=30,
        what=f"queue {DRAINED_QUEUE} empty in Redis",
    )


def test_the_fleet_runs_as_declared_after_the_day2_plays() -> None:
    play = ansible_playbook("playbooks/verify.yml")
    assert play.returncode == 0, play.stdout[-3000:]
    assert "workers run as declared, every declared queue consumed" in play.stdout, play.stdout[-3000:]
