"""Failovers under a stream of tasks, every client of the fleet through sentinel:// (issue 16).

A producer on the client host streams tasks to every queue (molecule/fleet/tests/probe.py, run
through the app's entry module, which gives it master_name and the Sentinel password) and sends a
task again with the same id while its publish raises. During the stream the master goes away:
``kill -9`` of its server (three times), then its whole container stopped, once the master was
moved to the host of the clients' first Sentinel (the case that took workers 46-70 s to resume
before the Sentinel clients lost redis-py's retries: bounded here), then a planned switchover
(playbooks/switchover.yml), which must lose no write (LOSS_ALLOWED says what kombu's delivery can
still drop) and leave every worker consuming. For each run the test
prints the time until every Sentinel names the new master, the time until the first task published
after the fault completed (a task can only have gone through the new master), and sent / executed
/ lost / duplicated, counted from the workers' journals. The workers, beat and Flower keep running
through all of it: same main pids, no restart. A run begins once what earlier runs left on the
queues is worked off (drained()), so that every run's figures are its own.

Runs after test_sentinel.py (file order), which leaves the master moved once already.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from celery_fleet.recap import changed_per_host, play_section  # lib/ is on sys.path through fleetnode
from conftest import (
    DATA_NODES,
    DATA_PORT,
    DOWN_AFTER_MS,
    MASTER_NAME,
    PROJECT_DIR,
    SENTINELS,
    address,
    admin,
    converge,
    master_by_sentinel,
    node,
    records,
    role,
    sentinel,
    wait_until,
)
from fleetnode import RETRIED_RECORD, Node
from scenario_inventory import inventory_vars

CLIENT = "sentinel-client"
APP = "celerydemo"
WORKERS = ("main", "assets")
QUEUES = inventory_vars(CLIENT)["celery_queues"]
PROBE = Path(__file__).resolve().parents[2] / "fleet" / "tests" / "probe.py"
RATE = 40  # tasks/s the producer streams
# Tasks a crashed master may take with it: writes it acknowledged but had not yet sent to a replica
# (asynchronous replication: a master whose replicas lag more than min-replicas-max-lag refuses
# writes, min-replicas-to-write, so such a task was published within that lag before the fault),
# and messages a worker had taken off a queue (BRPOP, replicated at once) whose record in kombu's
# unacked hash (a second command, sent once the reply arrived) had not reached the replica: such a
# task may have been published long before, when the workers lag behind the stream (a backlog on a
# busy machine). Either way it was published before the fault took effect; one published while the
# master was away or after the election must never be lost (a client that loses what it sends then
# fails here whatever the count).
LAG_WINDOW = inventory_vars("sentinel-redis-1").get("redis_min_replicas_max_lag", 10)
# How many, per fault:
# - kill -9 of the server: the kernel still delivers what the process had written to its replicas'
#   sockets; measured 0-4 per run (README "Broker high availability"): bounded at 10.
# - the master's container stopped at once: its network namespace goes, and whatever sat in the
#   replication link's buffers with it, which grows with the machine's load (the replica reads
#   late). Measured 0-2 per run on a quiet machine, 12 in a CI run, 45 at a load of 5 (about one
#   second of the stream): no count bound beyond the window's, LAG_WINDOW x RATE.
# - a planned switchover (playbooks/switchover.yml): none. The old master's writers wait until every
#   replica has every write and the old master follows the new one (its module renews the pause
#   until then: a chain of tasks once outlived the pause, and the 519 tasks the producer sent in the
#   gap went with the old master's resync). kombu's two-command delivery lost one more (1 of 1130:
#   a message the lagging gevent worker took off a queue just before the pause, whose unacked
#   record, held by the pause, was cut off with its connection) until the entry module retried that
#   record on the new master (celery_fleet_app.deliveries_survive_a_failover; its retries are
#   counted in each run's line).
LOSS_ALLOWED = {"kill -9": 10, "container stop": LAG_WINDOW * RATE, "switchover": 0}
# A task runs twice only when its acknowledgement was lost with the old master: it was in flight,
# so at most what the workers hold at once (main: 4 processes, assets: 10 greenlets, with prefetch).
IN_FLIGHT = 4 * 4 + 10 * 4
# How a worker exited during a failover with Celery 5.7 / kombu 5.7 (measured: 1 run in 15 in the
# lab, 1-3 times per scenario run here) until the fleet's entry module guarded against it.
KOMBU_CRASH = "Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")"
RESULTS: list[dict[str, Any]] = []
# What a run records for settle() and the assertions, not shown with its figures.
HIDDEN = ("ids", "since", "fault_at", "sent_at", "lost_ids")
# What a worker logs that says where a task went, or why the consumer dropped what it held: the
# lines of a lost task's id, and the warnings and errors of the client's services around the fault.
TRAIL = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|NOREPLICAS|restore|Connection to broker lost", re.I)


def lost_trail(r: dict[str, Any], late: list[float]) -> str:
    """The client's journal about a task lost after the fault (for the failure message): every line
    naming a late lost task's id (received? by which worker?), and the warnings and errors of the
    Celery services from a second before the fault to 15 s after the last late loss."""
    start = r["fault_at"] - 1
    end = r["fault_at"] + max(late) + 15
    out = client().check(
        f"journalctl --no-pager -o short-unix --since @{int(start)} --until @{int(end) + 1} "
        f"-u '{client().layout['worker_service_prefix']}*' -u {client().layout['beat_service']}"
    )
    ids = [i for i, s in r.get("lost_ids", {}).items() if s in late]
    named = [line for line in out.splitlines() if any(i in line for i in ids)]
    errors = [line for line in out.splitlines() if TRAIL.search(line)][:60]
    # Executed after all, its journal line dropped? Its result (the backend: the broker's db + 1).
    master = current_master()
    results = [f"{i}: {admin(master, f'-n 1 GET celery-task-meta-{i}')[:200] or '(no result)'}" for i in ids]
    # journald drops lines of a unit that logs faster than its rate limit, and says so in its own.
    dropped = client().check(
        f"journalctl --no-pager -u systemd-journald --since @{int(start)} | grep -i suppress || true"
    )
    lines = [f"lost after the fault: {ids}", "lines naming them:", *(named or ["(none)"])]
    lines += ["their results:", *results, "journald:", dropped or "(nothing suppressed)"]
    return "\n".join([*lines, "warnings and errors:", *errors])


def client() -> Node:
    return Node(CLIENT, app=APP)


def service(worker: str) -> str:
    return client().layout["worker_service_prefix"] + worker


def probe(args: str, timeout: float = 600) -> dict[str, Any]:
    """probe.py through the app's entry module (python -m celery_fleet_app), as the app's user."""
    c = client()
    command = c.python(f"-m celery_fleet_app probe {args}", pythonpath=f"/tmp:{c.layout['code_dir']}")
    return c.json(command, timeout=timeout)


def successes(since: float) -> dict[str, list[float]]:
    """Task id -> the times (epoch) a worker logged it succeeded, from the client's journal."""
    prefix = client().layout["worker_service_prefix"]
    out = client().check(f"journalctl --no-pager -o short-unix -u '{prefix}*' --since @{int(since) - 1}")
    found: dict[str, list[float]] = {}
    for stamp, task_id in re.findall(r"^(\d+\.\d+) .*Task [\w.]+\[([0-9a-f-]{36})\] succeeded", out, re.M):
        found.setdefault(task_id, []).append(float(stamp))
    return found


def main_pids() -> dict[str, str]:
    """Service -> "<main pid> <restarts>" of the client's workers, beat and Flower."""
    c = client()
    names = [service(w) for w in WORKERS] + [c.layout["beat_service"], c.layout["flower_service"]]
    show = "systemctl show -p MainPID -p NRestarts --value"
    return {n: " ".join(c.check(f"{show} {n}").split()) for n in names}


def current_master() -> str:
    masters = [n for n in DATA_NODES if node(n).run("true").returncode == 0 and role(n) == "master"]
    assert len(masters) == 1, f"masters: {masters}"
    return masters[0]


def agreed_master(old_address: str) -> str | None:
    """The data node every answering Sentinel names, once it is not the old master."""
    named = set()
    for s in SENTINELS:
        try:
            named.add(master_by_sentinel(s))
        except AssertionError as error:
            # Its container is stopped: docker exec says so (one exec per Sentinel and poll).
            if "is not running" in str(error):
                continue
            return None
    if len(named) != 1 or old_address in named:
        return None
    return next(n for n in DATA_NODES if f"{address_of[n]}:{DATA_PORT}" in named)


def sentinel_logs(lines: int = 40) -> str:
    """The last lines of every reachable Sentinel's log file, for a failure message."""
    parts = []
    for s in SENTINELS:
        out = node(s).run(f"tail -n {lines} /var/log/*/*-sentinel.log")
        parts.append(f"--- {s} (rc {out.returncode}):\n{out.stdout}{out.stderr}")
    return "\n".join(parts)


address_of: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def producer_script() -> None:
    address_of.update({n: address(n) for n in DATA_NODES})
    # Earlier tests provoke denials on purpose; from here on the log must stay empty.
    for n in DATA_NODES:
        admin(n, "ACL LOG RESET")
    # Through stdin: `docker cp` cannot write into the container's /tmp, a tmpfs.
    client().check("cat > /tmp/probe.py && chmod 0644 /tmp/probe.py", stdin=PROBE.read_text())


# The keys the scripts below read in one go (one atomic read): every queue and kombu's unacked hash.
BROKER_KEYS = [*QUEUES, "unacked"]


def read_broker(master: str, script: str) -> str:
    """Run the Lua ``script`` over BROKER_KEYS on ``master``; its reply."""
    return admin(master, f'EVAL "{script}" {len(BROKER_KEYS)} {" ".join(BROKER_KEYS)}')


# Every queue's length and the unacked hash's, in one script.
BACKLOG = (
    "local out = {} "
    "for _, key in ipairs(KEYS) do "
    "out[#out + 1] = key == 'unacked' and redis.call('HLEN', key) or redis.call('LLEN', key) "
    "end "
    "return out"
)
# How long the earlier runs' backlog may take to drain before the next fault (measured: the gevent
# worker drained the ~90 tasks the producer's catch-up burst left on its four queues in 25-30 s on
# a busy machine). The unacked hash is not waited for: its records are on every replica, so no fault
# loses them, and kombu 5.7 scans for records to restore on one in `unacked_restore_throttle` (10)
# of its restore ticks (`unacked_restore_interval`, 10 s), the first 10 s after a connection is set
# up: a record a failover orphaned (its task in flight, the acknowledgement lost with the old master;
# two a run, the duplicated ones) becomes restorable after the visibility timeout (30 s) and is
# restored at the first scan after that, on a reconnection after a later fault or ~100 s later.
# Until 2026-12-06 the drain also waited up to 45 s for those records: every run that had any waited
# the whole 45 s and found them still there (3 x ~46 s of each scenario run).
DRAIN_S = 150


def backlog() -> dict[str, int]:
    """What the master still holds of earlier runs: tasks queued or taken and not acknowledged."""
    counts = read_broker(current_master(), BACKLOG).split()
    return {k: int(n) for k, n in zip(BROKER_KEYS, counts, strict=True) if int(n)}


def drained() -> tuple[float, int]:
    """Wait until the earlier runs left no task on a queue; the seconds it took, and the records
    still in kombu's unacked hash (not waited for: see DRAIN_S).

    Each run's figures must be its own. After a fault the producer catches up at once (it keeps its
    average rate), and the workers work that burst off for tens of seconds. A task of that backlog
    a worker takes off a queue just as the next fault strikes, before kombu's unacked record of it
    reached a replica, is lost at that fault; counted with the run that sent it, it looked like a
    task lost seconds after its own run's election (seen in runs and in CI as a "late loss"; the
    data nodes' append-only files showed its LPUSH on the new master, then, at the next run's
    kill -9, an RPOP with no HSET of the unacked record after it).
    """
    left: dict[str, int] = {}

    def done() -> bool:
        left.clear()
        left.update(backlog())
        return not set(left) - {"unacked"}

    _, took = wait_until(
        done,
        timeout=DRAIN_S,
        what="the earlier runs' tasks worked off (every queue empty)",
        interval=2,
    )
    return took, left.get("unacked", 0)


def fail_over(fault: str) -> dict[str, Any]:
    """One failover under the stream; what it cost."""
    c = client()
    drain_s, unacked_left = drained()
    c.check("rm -f /tmp/stream-stop /tmp/stream-ids.json /tmp/stream-started")
    old = current_master()
    old_address = f"{address_of[old]}:{DATA_PORT}"
    since = time.time()
    producer: dict[str, Any] = {}

    def produce() -> None:
        producer["report"] = probe(
            f"stream /tmp/stream-ids.json /tmp/stream-stop --min 500 --rate {RATE} "
            "--started /tmp/stream-started --retry-publish 60"
        )

    thread = threading.Thread(target=produce)
    thread.start()
    wait_until(lambda: c.exists("/tmp/stream-started"), timeout=90, what="the producer's first task sent")
    time.sleep(3)  # steady flow before the fault

    fault_at = time.time()
    if fault == "kill -9":
        # Debian's unit restarts a killed server within 100 ms (Restart=always): masked, the server
        # stays down as on a crashed host.
        node(old).check("systemctl mask --runtime redis-server")
        node(old).check("systemctl kill --signal=SIGKILL --kill-whom=main redis-server")
    elif fault == "container stop":
        subprocess.run(["docker", "stop", "--time", "0", old], check=True, capture_output=True, timeout=60)
    else:
        # The operator's playbook, as the README gives it; what its module measured is printed.
        played = converge(PROJECT_DIR / "playbooks" / "switchover.yml")
        assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-2000:]
        said = re.search(r"The master moved from .*?\(steps, s from the pause: [^)]*\)", played.stdout, re.S)
        print(f"\nswitchover.yml: {' '.join(said.group(0).split()) if said else played.stdout[-1500:]}")
    dead_at = time.time()  # the old master is gone by now (fault_at: when the fault began)
    try:
        new, _ = wait_until(lambda: agreed_master(old_address), timeout=90, what="a new master", interval=0.2)
    except AssertionError as error:
        # Seen once (a clean-clone run at a load of 5-7): no election within 90 s of the second
        # kill -9. What the Sentinels logged (votes, -failover-abort-*, TILT, "Next failover delay")
        # is the only record of why: the containers are gone after the run.
        raise AssertionError(f"{error}\n{sentinel_logs()}") from None
    elected_after = time.time() - fault_at

    # The stream goes on against the new master until tasks went through it: more done after the
    # election than the workers can hold from before the fault (IN_FLIGHT, prefetch included), so at
    # least one was taken from the new master. A signal instead of a fixed 12 s; the producer still
    # sends at least --min 500. Bounded: after 60 s without it the stream stops all the same, and the
    # figures and assertions below say what ran.
    elected_at = time.time()
    with contextlib.suppress(AssertionError):
        wait_until(
            lambda: sum(t > elected_at for runs in successes(since).values() for t in runs) > IN_FLIGHT,
            timeout=60,
            what="tasks done through the new master",
        )
    c.check("touch /tmp/stream-stop")
    thread.join(timeout=180)
    assert "report" in producer, "the producer did not finish"
    sent = json.loads(c.read("/tmp/stream-ids.json"))

    # Bring the old master back; Sentinel makes it a replica of the new one.
    if fault == "kill -9":
        node(old).check("systemctl unmask --runtime redis-server && systemctl start redis-server")
    elif fault == "container stop":
        subprocess.run(["docker", "start", old], check=True, capture_output=True, timeout=60)
        assert address(old) == address_of[old], f"{old} came back with another address"
    wait_until(
        lambda: role(old) == "slave" and "master_link_status:up" in admin(old, "INFO replication"),
        timeout=120,
        what=f"{old} back as a replica",
    )
    # Tasks sent after the fault queue behind the stream's catch-up (its publishes retried during
    # the fault, then its burst at the election; every queue is FIFO): on a busy machine none of
    # them may be done yet when the stream stops (seen once in a clean-clone run, after the
    # switchover: "no task done on the new master"). Wait for the first of them, bounded: resumed_s
    # keeps its meaning (the first done of them, whenever), and after the bound "none" means none.
    later = {entry["id"] for entry in sent if entry["t"] > dead_at}
    waiting: dict[str, Any] = {}
    try:
        _, took = wait_until(
            lambda: later & successes(since).keys(),
            timeout=60,
            what="a task sent after the fault done",
            interval=2,
        )
        waiting["s"] = round(took, 1)
    except AssertionError:
        waiting["backlog"] = backlog()  # where the tasks sent after the fault still are (the message)

    ids = [entry["id"] for entry in sent]
    # What the stream saw, from the tasks done so far: the first task done on the new master (the
    # first done of those whose publish returned once the old master was gone: none of them can
    # have gone through it; tasks in flight at the fault can finish well after it on a busy machine,
    # so "the first one done after the fault" would say nothing), and the longest time without any
    # task done from the fault to the stream's last publish: what the queues' users saw (later,
    # redeliveries after the visibility timeout would open gaps of their own).
    done = successes(since)
    stamps = sorted(t for runs in done.values() for t in runs)
    after = [min(done[e["id"]]) for e in sent if e["t"] > dead_at and e["id"] in done]
    resumed = min(after) - fault_at if after else None
    last_sent = max(entry["t"] for entry in sent)
    window = [t for t in stamps if fault_at - 1.0 <= t <= last_sent]
    outage = max((b - a for a, b in pairwise(window)), default=None)
    result = {
        "fault": fault,
        "old": old,
        "new": new,
        "elected_s": round(elected_after, 1),
        # How long the fault's command took (kill -9: two docker exec calls, over 1 s on a busy machine).
        "dead_s": round(dead_at - fault_at, 2),
        # How long the earlier runs' backlog took to drain before this run began.
        "drained_s": round(drain_s, 1),
        "unacked_at_start": unacked_left,
        "resumed_s": round(resumed, 1) if resumed is not None else None,
        "outage_s": round(outage, 1) if outage is not None else None,
        "sent": len(ids),
        # How long the first task sent after the fault took to be done once the stream stopped (or,
        # when none was within the bound, what each queue still held).
        "waited": waiting,
        "producer": producer["report"],
        # Counted by settle() once every fault is over: executed, lost, duplicated.
        "ids": ids,
        "since": since,
        "fault_at": fault_at,
        "sent_at": {entry["id"]: entry["t"] for entry in sent},
    }
    RESULTS.append(result)
    shown = {k: v for k, v in result.items() if k not in HIDDEN}
    print(f"\n{fault}: {json.dumps(shown, sort_keys=True)}")
    return result


def settle() -> list[dict[str, Any]]:
    """Executed / lost / duplicated of every run so far, counted once (the first call waits).

    Everything sent is executed within the visibility timeout (30 s, molecule.yml) or never: a task a
    crashed master took with it never comes, so waiting for it always lasts the whole bound. One
    bounded wait after the last fault covers every run (their task ids are distinct; a redelivery of
    an earlier run's task during a later failover still counts for its own run) instead of one per run.
    """
    pending = [r for r in RESULTS if "lost" not in r]
    if pending:
        ids = [i for r in pending for i in r["ids"]]
        since = min(r["since"] for r in pending)

        def settled() -> dict[str, list[float]] | None:
            done = successes(since)
            return done if all(i in done for i in ids) else None

        try:
            done, _ = wait_until(settled, timeout=45, what="every task executed", interval=3)
            held: dict[str, str] = {}
        except AssertionError:
            done = successes(since)
            done, held = accounted([i for i in ids if i not in done], since)
            # A task between two places when they were read (taken off a queue, its unacked record
            # not yet written; acknowledged, its "succeeded" line not yet in the journal) is looked
            # for again a moment later: lost is what is still nowhere then.
            if any(i not in done and i not in held for i in ids):
                time.sleep(5)
                done, held = accounted([i for i in ids if i not in done], since)
        retried = retried_records(since)
        for n, r in enumerate(pending):
            until = pending[n + 1]["fault_at"] if n + 1 < len(pending) else time.time()
            # The entry module's retries of a delivery's unacked record (deliveries_survive_a_failover).
            r["records_retried"] = sum(r["fault_at"] - 1 <= t < until for t in retried)
            not_done = [i for i in r["ids"] if i not in done]
            lost = [i for i in not_done if i not in held]
            r["executed"] = len(r["ids"]) - len(not_done)
            r["queued"] = sum(held.get(i, "").startswith("queue") for i in not_done)
            r["unacked"] = sum(held.get(i) == "unacked" for i in not_done)
            r["lost"] = len(lost)
            # When each lost task was published, in seconds relative to the fault.
            r["lost_sent_s"] = sorted(round(r["sent_at"][i] - r["fault_at"], 2) for i in lost)
            r["lost_ids"] = {i: round(r["sent_at"][i] - r["fault_at"], 2) for i in lost}
            r["duplicated"] = sum(len(done.get(i, [])) > 1 for i in r["ids"])
            when = f" (sent {r['lost_sent_s'][0]} to {r['lost_sent_s'][-1]} s from the fault)" if lost else ""
            print(
                f"\n{r['fault']} ({r['old']} -> {r['new']}): sent {r['sent']}, executed {r['executed']}, "
                f"still queued {r['queued']}, in kombu's unacked hash {r['unacked']}, "
                f"lost {r['lost']}{when}, duplicated {r['duplicated']}, "
                f"unacked records retried by the entry module {r['records_retried']}"
            )
    return RESULTS


def retried_records(since: float) -> list[float]:
    """When (epoch) a worker retried recording a delivery as unacknowledged after losing the
    broker (celery_fleet_app.deliveries_survive_a_failover logs each retry)."""
    c = client()
    out = c.check(
        f"journalctl --no-pager -o short-unix -u '{c.layout['worker_service_prefix']}*' "
        f"--since @{int(since) - 1} | grep -F '{RETRIED_RECORD}' || true"
    )
    return [float(line.split()[0]) for line in out.splitlines() if line[:1].isdigit()]


def accounted(ids: list[str], since: float) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Every task done (the journal) and, of ``ids`` (not done when last looked), those the broker
    holds.

    The broker is read first, then the journal: a task that leaves the broker between the two
    (taken and executed) is then found in the journal instead of in neither.
    """
    held = still_on_the_broker(ids)
    done = successes(since)
    return done, {i: where for i, where in held.items() if i not in done}


# Every queue's messages and the unacked hash's, read in one script: one atomic snapshot (read one
# after the other, a task restored from the hash to its queue between the two reads is in neither).
SNAPSHOT = (
    "local out = {} "
    "for _, key in ipairs(KEYS) do "
    "out[#out + 1] = '@' .. key "
    "local items = key == 'unacked' and redis.call('HVALS', key) or redis.call('LRANGE', key, 0, -1) "
    "for _, item in ipairs(items) do out[#out + 1] = item end "
    "end "
    "return out"
)


def still_on_the_broker(ids: list[str]) -> dict[str, str]:
    """Of tasks not executed, those the master still holds, and where: a queue, or kombu's unacked
    hash (taken by a worker that went away; restored after the visibility timeout unless a stale
    restore mutex, printed with its TTL, holds that back). The others are lost."""
    master = current_master()
    reply = read_broker(master, SNAPSHOT)
    places: dict[str, list[str]] = {}
    for line in reply.splitlines():
        if line.startswith("@"):
            key = line[1:]
            places[key if key == "unacked" else f"queue {key}"] = []
        elif places:
            places[next(reversed(places))].append(line)
    mutex_ttl = admin(master, "TTL unacked_mutex")
    print(f"\nnot executed after the wait: {len(ids)}; unacked_mutex TTL: {mutex_ttl}")
    found = {}
    for i in ids:
        where = next((place for place, items in places.items() if any(i in item for item in items)), None)
        if where:
            found[i] = where
    return found


STARTED = time.time()


@pytest.fixture(scope="module")
def before() -> dict[str, str]:
    return main_pids()


@pytest.mark.parametrize("run", [1, 2, 3])
def test_kill_9_of_the_master_under_load(before, run) -> None:
    result = fail_over("kill -9")

    assert result["sent"] >= 500
    assert result["resumed_s"] is not None, ("no task done on the new master", result["waited"])


def replica_priorities(asked: str) -> dict[str, int]:
    """``ip:port`` -> replica-priority of each replica, as the Sentinel ``asked`` last read it."""
    replicas = records(sentinel(asked, f"SENTINEL REPLICAS {MASTER_NAME}"))
    return {r["name"]: int(r["slave-priority"]) for r in replicas}


def master_on_the_first_sentinels_host() -> str:
    """Move the master to the host of the clients' first Sentinel, before the stream starts.

    The clients' list is the redis_sentinel group in inventory order (molecule.yml), so its first
    Sentinel runs on DATA_NODES[0]. A planned SENTINEL FAILOVER with the other data nodes at
    replica-priority 0 promotes that node; their priority is set back (and persisted, as Sentinel
    persists replicaof) whatever happens. The workers then answer a ping: they are on the new master
    before the fault, so what the fault costs is measured alone.
    """
    first = DATA_NODES[0]
    if current_master() == first:
        return first
    others = [n for n in DATA_NODES if n != first]
    try:
        for n in others:
            admin(n, "CONFIG SET replica-priority 0")
        # Sentinel reads its replicas' INFO every 10 s: wait until it saw the new priorities.
        wait_until(
            lambda: all(
                p == 0
                for a, p in replica_priorities(first).items()
                if a != f"{address_of[first]}:{DATA_PORT}"
            ),
            timeout=30,
            what="the Sentinel reading replica-priority 0",
        )
        sentinel(first, f"SENTINEL FAILOVER {MASTER_NAME}")
        wait_until(
            lambda: (
                role(first) == "master"
                and {master_by_sentinel(s) for s in SENTINELS} == {f"{address_of[first]}:{DATA_PORT}"}
            ),
            timeout=60,
            what=f"{first} master, named by every Sentinel",
        )
    finally:
        for n in others:
            admin(n, "CONFIG SET replica-priority 100")
            admin(n, "CONFIG REWRITE")
    c = client()
    c.inspect("ping", {f"worker-{w}@{c.hostname()}" for w in WORKERS})
    return first


# The first task done on the new master after the master's host vanished with the clients' first
# Sentinel, in seconds from the fault, at worst:
# - the election: down-after-milliseconds, then the Sentinels' vote and the promotion (elected_s
#   6.9-9.2 s with 5 s, measured): down-after + 4 s;
# - the worker noticing: its BRPOP's socket_timeout (5 s) or the health check (2 s), during the
#   election;
# - its reconnect: kombu's ensure_connection tries again after 2, 4, 6 s (not configurable in
#   Celery 5.7): an election that ends just after an attempt waits up to 6 s for the next; that
#   attempt's discovery costs the gone first Sentinel one connect timeout (1 s, no redis-py retry:
#   lib/celery_fleet/broker.py) and a connection to the master, 1 s more;
# down-after + 4 + 6 + 2 = 17 s on this machine; x 1.3 for a slower CI machine, plus one more
# reconnect step (6 s) for a busy one: 28 s. Before the fix the workers took 46-70 s (a discovery
# that waits out redis-py's eleven tries of the gone Sentinel costs 11 s and more each time).
RESUME_AFTER_FIRST_SENTINEL_HOST_S = round(1.3 * (DOWN_AFTER_MS / 1000 + 4 + 6 + 2) + 6)


def test_stopping_the_masters_container_with_the_first_sentinel_under_load(before) -> None:
    master_on_the_first_sentinels_host()

    result = fail_over("container stop")

    assert result["old"] == DATA_NODES[0]
    assert result["resumed_s"] is not None, ("no task done on the new master", result["waited"])
    assert result["resumed_s"] <= RESUME_AFTER_FIRST_SENTINEL_HOST_S, result


def test_a_planned_switchover_under_load(before) -> None:
    result = fail_over("switchover")

    assert result["new"] != result["old"]
    assert result["resumed_s"] is not None, ("no task done on the new master", result["waited"])


def test_every_failover_lost_and_duplicated_within_bounds() -> None:
    results = settle()
    assert [r["fault"] for r in results] == ["kill -9"] * 3 + ["container stop", "switchover"]
    for r in results:
        shown = {k: v for k, v in r.items() if k not in HIDDEN}
        # Lost only from before the fault, never what was sent later (LOSS_ALLOWED's comment):
        # a lost task's publish returned before the fault's command did (dead_s; the kill may take
        # effect at its very end), with 0.5 s for the producer to stamp it. (A fixed 1 s failed a
        # kill -9 run whose task was stamped 1.05 s after the command began.) No publish returns
        # through the new master before the election, 6 s and more after the fault.
        # Each run begins once the earlier runs' backlog is worked off (drained()): a task lost at
        # a later run's fault is not counted here as this run's.
        # (The lost tasks' publish times lead the message: pytest's summary line cuts it short.)
        late = [t for t in r["lost_sent_s"] if t > r["dead_s"] + 0.5]
        assert not late, (f"{r['fault']}: lost {late} s after the fault began", shown, lost_trail(r, late))
        assert r["lost"] <= LOSS_ALLOWED[r["fault"]], (f"{r['fault']}: lost {r['lost']}", shown)
        # Still in the unacked hash long after the visibility timeout: a restore that did not
        # happen (not lost: at least once still holds); at most what the workers held at once.
        # Still queued is the backlog of a worker that resumed late (printed, not a loss).
        assert r["unacked"] <= IN_FLIGHT, shown
        assert r["duplicated"] <= IN_FLIGHT, shown


def test_beat_and_flower_ride_out_every_failover_and_every_worker_answers_again(before) -> None:
    after = main_pids()
    c = client()
    for name in after:
        restarts = int(after[name].split()[1]) - int(before[name].split()[1])
        log = c.check(f"journalctl --no-pager -o cat -u {name} --since @{int(STARTED) - 1}")
        why = sorted({line.strip()[-160:] for line in log.splitlines() if "Unrecoverable error" in line})
        crashes = log.count(KOMBU_CRASH)
        print(f"\n{name}: {restarts} restart(s) by the service manager; {crashes} by kombu's crash; {why}")
        # The first crash's traceback (where kombu meets the closed connection), for the README.
        lines = log.splitlines()
        first = next((i for i, line in enumerate(lines) if "Unrecoverable error" in line), None)
        if first is not None:
            print("\n".join(lines[first : first + 60]))
        # KOMBU_CRASH stopped a worker 1-3 times per run (3 of 4 runs) before the fleet's entry
        # module guarded kombu's channels (celery_fleet_app.closed_connections_fail_as_such): none
        # now. NOREPLICAS (a just-promoted master with no replica in sync refusing the BRPOP)
        # stopped both workers once: the entry module makes it a lost connection
        # (celery_fleet_app.refused_writes_fail_as_lost_connections). Any other exit is printed
        # above; its service manager starts it again. Beat and Flower never restarted in any run.
        assert crashes == 0, why
        assert not [line for line in why if "ResponseError" in line or "NoReplicasError" in line], why
        if name.endswith(("-beat", "-flower")):
            assert after[name] == before[name], name
        assert c.is_running(name), name
    c = client()
    nodes = {f"worker-{w}@{c.hostname()}" for w in WORKERS}
    assert set(c.inspect("ping", nodes)) >= nodes
    # Beat: its 2-second ping ran again on a worker after the last failover.
    recent = c.check(f"journalctl --no-pager -o cat -u '{c.layout['worker_service_prefix']}*' --since -20s")
    assert re.search(r"Task celery_demo[.]tasks[.]ping_low_priority\[[0-9a-f-]{36}\] succeeded", recent)
    # Flower: its API lists both workers online (credentials on curl's stdin, not argv).
    user = inventory_vars(CLIENT)["flower_users"][0]  # TEST ONLY (molecule.yml, group celery_workers)
    reply = c.check(
        "curl -sf -K - 'http://127.0.0.1:5555/api/workers?refresh=1&status=1'",
        stdin=f'user = "{user["name"]}:{user["password"]}"\n',
    )
    assert all(json.loads(reply).get(n) for n in nodes), reply


def test_no_denial_in_any_acl_log() -> None:
    for n in DATA_NODES:
        entries = admin(n, "ACL LOG")
        assert entries == "", f"{n}: {entries}"


def test_failover_summary() -> None:
    """The figures of every run, one line each (pytest -s / the scenario log shows them)."""
    assert RESULTS
    settle()
    print(
        "\nfault            elected  resumed   outage  sent  executed  queued  unacked  lost  duplicated"
        "  records retried"
    )
    for r in RESULTS:
        print(
            f"{r['fault']:<16} {r['elected_s']:>6} s {r['resumed_s']!s:>6} s {r['outage_s']!s:>6} s "
            f"{r['sent']:>5} {r['executed']:>9} {r['queued']:>7} {r['unacked']:>8} {r['lost']:>5} "
            f"{r['duplicated']:>11} {r['records_retried']:>16}"
        )


def test_site_yml_after_the_failovers_changes_nothing_and_keeps_the_master() -> None:
    master = current_master()

    result = converge()

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    changed = {h: n for h, n in changed_per_host(result.stdout).items() if h.startswith("sentinel-")}
    assert len(changed) == len(DATA_NODES) + 1, result.stdout[-2000:]
    assert set(changed.values()) == {0}, changed
    assert current_master() == master
    assert {master_by_sentinel(s) for s in SENTINELS} == {f"{address_of[master]}:{DATA_PORT}"}
    # The client host runs workers, beat and Flower: the worker play found its app as the last
    # converge left it, so neither beat's nor Flower's play converges the app again.
    for play in ("PLAY [Deploy Celery beat]", "PLAY [Deploy Flower]"):
        section = play_section(result.stdout, play)
        assert "TASK [celery_app : Reuse the app" in section, section[-2000:]
        assert "TASK [celery_app : user |" not in section, section[-3000:]
