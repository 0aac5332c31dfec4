"""Stopping a worker lets its running task finish (warm shutdown), whatever the process manager."""

from __future__ import annotations

import time

import pytest
from conftest import WORKERS, service
from fleetnode import wait_until

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


# A worker cut off from its broker must still stop at once when it has no task (issue 18: after a
# password change the gevent worker's warm stop waited out its 600 s stop timeout). Celery's event
# heartbeat retried its publish forever inside the event dispatcher's lock, which a green pool's
# warm shutdown waits for; the fleet's entry module makes that retry end at shutdown
# (roles/celery_app/files/celery_fleet_app.py bounded_event_retries).
CUT_OFF = [
    next(w for w in WORKERS if w["name"] == name) for name in ("assets", "low-priority")
]  # gevent, prefork
# Stop of an idle worker on a healthy broker: 0.6-4 s (FACTS.md); the stop timeout is 600 s.
PROMPT_STOP_SECONDS = 30
# What a worker logs once it lost the broker (consumer or pidbox, whichever notices first).
LOST_BROKER = (
    "invalid username-password pair",
    "Cannot connect to redis",
    "Connection refused",
    "Error 111",
    "Connection to broker lost",
)
# The heartbeat (every 2 s, silent) must have tried the broker during the outage for the stop to
# meet the retry it used to wait for: the outage lasts at least this long before the stop.
OUTAGE_SECONDS = 6
HEARTBEAT_SECONDS = 2  # Celery's worker heartbeat interval (celery.worker.heartbeat.Heart)


def _break_password(fleet) -> None:
    # The worker's password as if the inventory had changed it and this host not yet been updated:
    # the ACL user gets another password (a hash: no secret in argv) and its connections are cut.
    fleet.redis("ACL SETUSER worker resetpass #" + "0" * 64)
    fleet.redis("CLIENT KILL USER worker")


def _restore_password(fleet) -> None:
    fleet.redis("ACL LOAD")  # roles/redis' users.acl, the inventory's password


REDIS_PID = "$(systemctl show --property=MainPID --value redis-server)"


def _stop_mid_heartbeat(fleet) -> None:
    # Redis stops answering long enough for every worker's heartbeat (every 2 s) to be waiting for
    # its reply, then shuts down: the heartbeat meets the lost connection before the consumer does,
    # as when it was waiting while Redis saved its data at shutdown. The prefork worker's heartbeat
    # runs in its event loop, which used to retry with it, silent, for the whole outage (seen once
    # in CI with a plain stop; bounded_event_retries in roles/celery_app/files/celery_fleet_app.py).
    freeze = HEARTBEAT_SECONDS + 1
    fleet.node.check(f"kill -STOP {REDIS_PID} && sleep {freeze} && systemctl stop redis-server")


def _refuse_writes(fleet) -> None:
    # Redis refuses every write, BRPOP included, as a Sentinel master does while fewer replicas than
    # min-replicas-to-write are in sync (down, or lagging): this Redis has none, so 1 is too many.
    # The worker used to stop ("Unrecoverable error: ResponseError('NOREPLICAS ...')") and, started
    # again, meet the refusal again until its unit failed for good (start limit); the entry module
    # makes the refusal a lost connection (refused_writes_fail_as_lost_connections).
    fleet.redis("CONFIG SET min-replicas-to-write 1")


def _accept_writes(fleet) -> None:
    fleet.redis("CONFIG SET min-replicas-to-write 0")  # roles/redis without Sentinel: 0


def _start_redis(fleet) -> None:
    # A Redis still frozen (the fault's stop failed) is thawed first: `start` would leave it so.
    fleet.node.check(f'pid={REDIS_PID}; [ "$pid" -gt 0 ] && kill -CONT "$pid"; systemctl start redis-server')


BROKER_FAULTS = {
    "wrong-password": (_break_password, _restore_password),
    "broker-down": (lambda fleet: fleet.node.check("systemctl stop redis-server"), _start_redis),
    "broker-down-mid-heartbeat": (_stop_mid_heartbeat, _start_redis),
    "writes-refused": (_refuse_writes, _accept_writes),
}


def _watch(fleet, node) -> tuple[list[str], str | None, dict[str, str], dict[str, int]]:
    """The CUT_OFF workers' units, where their new log lines start (a time under systemd, else
    each log as it is now) and their main processes, once both answer."""
    node.inspect("ping", fleet.nodes(CUT_OFF), timeout=60)
    units = [service(w["name"]) for w in CUT_OFF]
    since = node.now() if fleet.manager == "systemd" else None
    before = {unit: "" if since else node.logs(unit) for unit in units}
    return units, since, before, {unit: node.main_pid(unit) for unit in units}


def _new_log(fleet, node, unit: str, since: str | None, before: str) -> str:
    if fleet.manager == "systemd":
        return node.logs(unit, since=since)
    return node.logs(unit)[len(before) :]


@pytest.mark.parametrize("fault", sorted(BROKER_FAULTS))
def test_worker_cut_off_from_the_broker_stops_promptly(fleet, node, fault):
    # Arrange: both workers answer, then the broker refuses (or stops answering) them.
    brk, restore = BROKER_FAULTS[fault]
    units, since, before, pids = _watch(fleet, node)
    stops: dict[str, float] = {}
    noticed: dict[str, float] = {}
    tool = "systemctl" if fleet.manager == "systemd" else "supervisorctl"
    try:
        brk(fleet)
        broke = time.monotonic()
        for unit in units:
            wait_until(
                lambda unit=unit: any(
                    m in _new_log(fleet, node, unit, since, before[unit]) for m in LOST_BROKER
                ),
                timeout=60,
                what=f"{unit} logging that it lost the broker ({fault})",
            )
            noticed[unit] = time.monotonic() - broke
        wait_until(
            lambda: time.monotonic() - broke >= OUTAGE_SECONDS, timeout=30, what="the outage's minimum length"
        )
        # Each worker rode out the outage in the process it had: none stopped, none was restarted.
        now = {unit: node.main_pid(unit) for unit in units}
        assert now == pids, f"main process changed during the outage ({fault}): was {pids}, now {now}"

        # Act
        for unit in units:
            started = time.monotonic()
            result = node.run(
                f"timeout {PROMPT_STOP_SECONDS * 4} {tool} stop {unit}",
                timeout=PROMPT_STOP_SECONDS * 5,
            )
            stops[unit] = time.monotonic() - started
            assert result.returncode == 0, f"{unit}: {result.stdout} {result.stderr}"
    finally:
        restore(fleet)
        for unit in units:
            node.start(unit)
    print(
        f"{fault}: lost broker logged after "
        + ", ".join(f"{u} {s:.1f} s" for u, s in noticed.items())
        + "; stop of workers cut off from the broker: "
        + ", ".join(f"{u} {s:.1f} s" for u, s in stops.items())
    )

    # Assert: prompt, and warm (no kill after the stop timeout).
    for unit, seconds in stops.items():
        assert seconds < PROMPT_STOP_SECONDS, (
            f"{unit} took {seconds:.1f} s to stop without a broker ({fault})"
        )
    node.inspect("ping", fleet.nodes(), timeout=90)


# What a worker's consumer logs each time it waits for a broker that refuses writes
# (roles/celery_app/files/celery_fleet_app.py reconnects_back_off_refused_writes).
REFUSED_WAIT = "the broker refuses writes (NOREPLICAS"
REFUSED_AFTER_WAITS = 2  # writes accepted again after the consumer's 1 s and 2 s waits


def test_a_worker_takes_tasks_again_in_the_same_process_once_writes_are_accepted(fleet, node):
    # Arrange: the workers answer; their main processes.
    units, since, before, pids = _watch(fleet, node)

    # Act: Redis refuses writes until each consumer waited twice, then takes them again.
    try:
        _refuse_writes(fleet)
        refused = time.monotonic()
        for unit in units:
            wait_until(
                lambda unit=unit: (
                    _new_log(fleet, node, unit, since, before[unit]).count(REFUSED_WAIT)
                    >= REFUSED_AFTER_WAITS
                ),
                timeout=60,
                what=f"{unit} waiting {REFUSED_AFTER_WAITS} times for writes",
            )
        refused_for = time.monotonic() - refused
    finally:
        _accept_writes(fleet)
    accepted = time.monotonic()
    queues = sorted({w["queues"][0] for w in CUT_OFF})
    report = fleet.workload("--timeout 60 queues " + " ".join(f"--queue {q}" for q in queues))
    resumed = time.monotonic() - accepted
    print(
        f"writes refused {refused_for:.1f} s; a task on each of {queues} done {resumed:.1f} s after "
        f"they were accepted again: {report['results']}"
    )

    # Assert: each queue's task ran, on the worker that ran before, in the same process.
    for worker in CUT_OFF:
        assert report["results"][worker["queues"][0]].get("hostname") == fleet.node_name(worker), report
    assert {unit: node.main_pid(unit) for unit in units} == pids
    assert all("Unrecoverable error" not in _new_log(fleet, node, u, since, before[u]) for u in units)
