"""Benchmark 9: Redis Sentinel failover under a bounded producer load, and throughput through Sentinel.

Once: the sandbox fleet with its Sentinel topology (``SENTINEL=1 make demo``'s inventory:
inventories/sandbox plus inventories/sandbox/sentinel.cfg) on six fresh containers of the
benchmark's own (bench/fleet.py: ``bench-cf-redis``, ``-redis-2``, ``-redis-3`` with a Sentinel each,
``-worker-gpu``, ``-worker-cpu``, ``-ops``), and a first converge of site.yml. Then per repetition:

1. **Throughput**, sentinel:// and direct redis:// side by side (order alternating): on
   cf-worker-cpu, as the app's worker user through its environment, ``fleet_probe.py throughput``
   publishes N no-ops to a queue of their own, starts a prefork worker (c=2) on it and times the
   drain (first to last ``date_done``). Direct = the same configuration, user and password with
   ``redis://<the master the Sentinels name>:6379`` for producer and worker.
2. **Two failovers and a planned switchover** under a stream (order alternating): ``kill -9`` of
   the master's redis-server (its unit masked first: Debian's unit would restart it within 100 ms,
   and no failover would happen), ``docker stop --time 0`` of the master's container, and
   ``playbooks/switchover.yml`` (the issue asks it to lose no task). The sentinel scenario's
   producer (molecule/fleet/tests/probe.py, through the app's entry module) streams 40 tasks/s
   from cf-ops (pings to the app's 10 queues, 0.3 s sleeps), resending a publish that raised with
   the same id; a watcher (bench/fleet_probe.py) polls every Sentinel each 0.1 s. Measured: time
   until every answering Sentinel names a new master (÷ the Sentinels'
   ``down-after-milliseconds``), time until the first task completes on the new master (the first
   ``succeeded`` in the workers' journals more than 1 s after the fault: tasks running at the fault
   are over by then), sent / executed / lost / duplicated (journals and result backend, as
   benchmark 8), the workers' restarts. The old master is then brought back and waited for as a
   replica before the next window.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from b_rolling import APP, OPS, WORKER_HOSTS, install_probe, last_json, stop_producer
from benchlib import Sample, Target, bar_chart, paired_ratio, table, targets_table
from common import BENCH, Context, log
from fleet import HOSTS, INVENTORY, PREFIX, Fleet
from fleetnode import Node

DATA_NODES = ["cf-redis", "cf-redis-2", "cf-redis-3"]
SENTINEL_HOSTS = [*HOSTS, *DATA_NODES[1:]]
SOURCES = (INVENTORY / "sentinel.cfg",)
FAULTS = ("kill -9", "container stop", "switchover")
# Unplanned failovers: their election is timed against down-after; a switchover needs no detection.
CRASHES = FAULTS[:2]
RATE = 40.0  # tasks per second, the sentinel scenario's stream
SLEEP = 0.3  # seconds, the sleeps probe.py sends
# The scenarios' producer: resends a publish that raised (--retry-publish), as the sentinel scenario runs it.
SCENARIO_PROBE = BENCH.parent / "molecule" / "fleet" / "tests" / "probe.py"
THROUGHPUT_HOST = "cf-worker-cpu"  # its environment has the worker ACL user: it may publish and consume
# The target: elected within 1.5 x down-after, plus 2 s of absolute slack on 2 cores.
FACTOR, SLACK = 1.5, 2.0
WINDOW_HEADER = ["Fault", "Rep", "Old → new master", "Elected, s", "÷ down-after",
                 "First task on the new master, s", "Sent", "Executed", "Lost", "Duplicated",
                 "Publish errors (slowest publish, s)", "Worker restarts"]  # fmt: skip
THROUGHPUT_HEADER = ["Rep", "Order", "Sentinel drain, tasks/s", "Direct drain, tasks/s", "Ratio",
                     "Sentinel publish, tasks/s", "Direct publish, tasks/s"]  # fmt: skip


def probe(host: str, args: str, module: str = "fleet_probe") -> str:
    """/tmp/<module>.py through the app's entry module (master_name and the Sentinels' password)."""
    target = Node(PREFIX + host, app=APP)
    return target.python(
        f"-m celery_fleet_app {module} {args}", pythonpath=f"/tmp:{target.layout['code_dir']}"
    )


def run_probe(
    fleet: Fleet, host: str, args: str, timeout: float = 300, module: str = "fleet_probe"
) -> dict[str, Any]:
    return reply(
        f"{module} {args.split()[0]} on {host}", fleet.exec(host, probe(host, args, module), timeout=timeout)
    )


def reply(what: str, out: str, err: str = "") -> dict[str, Any]:
    """The JSON a probe printed last; the error names the probe and shows its stderr."""
    try:
        return last_json(out)
    except RuntimeError:
        raise RuntimeError(f"{what} printed no JSON: stdout {out[-500:]!r}, stderr {err[-1500:]!r}") from None


def install_scenario_probe() -> None:
    # Through stdin: `docker cp` cannot write into the container's /tmp, a tmpfs.
    subprocess.run(
        ["docker", "exec", "-i", PREFIX + OPS, "sh", "-c", "cat > /tmp/probe.py && chmod 0644 /tmp/probe.py"],
        input=SCENARIO_PROBE.read_text(), text=True, check=True, timeout=60,
    )  # fmt: skip


def restarts(fleet: Fleet) -> int:
    """Restarts by systemd of the app's services on the worker and ops hosts, summed."""
    total = 0
    for host in (*WORKER_HOSTS, OPS):
        out = fleet.exec(
            host,
            f"for u in $(systemctl list-units --plain --no-legend '{APP}-*.service' | cut -d' ' -f1); do"
            " systemctl show -p NRestarts --value $u; done",
            timeout=60,
        )
        total += sum(int(x) for x in out.split())
    return total


def journal_stamps(fleet: Fleet, since: float) -> dict[str, list[float]]:
    """Task id -> the epoch times a worker logged it succeeded, over both worker hosts' journals."""
    found: dict[str, list[float]] = {}
    for host in WORKER_HOSTS:
        out = fleet.exec(
            host,
            f"journalctl --no-pager -o short-unix -u '{APP}-worker-*' --since @{int(since) - 2}",
            timeout=120,
        )
        for stamp, task_id in re.findall(r"^(\d+\.\d+) .*\[([0-9a-f-]{36})\] succeeded", out, re.M):
            found.setdefault(task_id, []).append(float(stamp))
    return found


def window(
    fleet: Fleet,
    fault: str,
    rep: int,
    minimum: int,
    after: float,
    addresses: dict[str, str],
    facts: Path,
) -> dict[str, Any]:
    old = run_probe(fleet, OPS, "master", timeout=120)["master"]
    old_host = next(h for h, a in addresses.items() if f"{a}:6379" == old)
    fleet.exec(OPS, "rm -f /tmp/sentinel-stop /tmp/sentinel-ids.json /tmp/sentinel-started")
    restarts_before = restarts(fleet)
    since = time.time()
    producer = subprocess.Popen(
        ["docker", "exec", PREFIX + OPS, "bash", "-ec",
         probe(OPS, f"stream /tmp/sentinel-ids.json /tmp/sentinel-stop --rate {RATE:g} --min {minimum}"
                    " --started /tmp/sentinel-started --retry-publish 60", module="probe")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watcher = None
    try:
        fleet.exec(
            OPS,
            "for _ in $(seq 600); do [ -e /tmp/sentinel-started ] && exit 0; sleep 0.1; done;"
            " echo 'the producer sent nothing within 60 s' >&2; exit 1",
            timeout=90,
        )
        time.sleep(3)  # a steady flow before the fault
        # The watcher reports an absolute time, so its own start-up does not count.
        watcher = subprocess.Popen(
            ["docker", "exec", PREFIX + OPS, "bash", "-ec", probe(OPS, f"watch {old} --timeout 90")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        if fault == "kill -9":
            fleet.exec(old_host, "systemctl mask --runtime redis-server")
            out = fleet.exec(
                old_host, "date +%s.%N; systemctl kill --signal=SIGKILL --kill-whom=main redis-server"
            )
            fault_at = float(out.split()[0])
        elif fault == "container stop":
            fault_at = time.time()
            stop = ["docker", "stop", "--time", "0", PREFIX + old_host]
            subprocess.run(stop, check=True, capture_output=True, timeout=60)
        else:
            fault_at = time.time()
            played = fleet.playbook(
                "playbooks/switchover.yml", facts=facts, name=f"switchover-{rep}", timeout=300
            )
            if played.returncode != 0:
                raise RuntimeError(
                    f"switchover.yml failed (exit {played.returncode}), log "
                    f"{fleet.log_path(f'switchover-{rep}')}: {played.output[-1500:]}"
                )
        out, err = watcher.communicate(timeout=150)
        watch = reply("the watcher", out, err)
        if not watch.get("ok"):
            raise RuntimeError(f"{fault}: {watch} {err[-500:]}")
        time.sleep(after)  # the stream goes on against the new master
    finally:
        out, err = stop_producer(fleet, producer, "/tmp/sentinel-stop")
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
        # The old master back: Sentinel makes it a replica of the new one (the switchover did).
        if fault == "kill -9":
            fleet.exec(
                old_host,
                "systemctl unmask --runtime redis-server && systemctl start redis-server",
                check=False,
            )
        elif fault == "container stop":
            subprocess.run(
                ["docker", "start", PREFIX + old_host], check=False, capture_output=True, timeout=120
            )
            fleet.exec(old_host, "systemctl is-system-running --wait || true", timeout=180, check=False)
    if producer.returncode != 0:
        raise RuntimeError(f"producer exit {producer.returncode}: {err[-1500:]}")
    if fleet.address(old_host) != addresses[old_host]:
        raise RuntimeError(f"{old_host} came back with another address: the topology announces the old one")
    stream = reply("the producer", out, err)
    settled = run_probe(fleet, OPS, f"settle {old} --timeout 180", timeout=240)
    if not settled.get("ok"):
        raise RuntimeError(f"{fault}: {settled}")
    records = json.loads(fleet.exec(OPS, "cat /tmp/sentinel-ids.json", timeout=60))
    collected = run_probe(
        fleet, OPS, "collect /tmp/sentinel-ids.json --timeout 60", timeout=180, module="probe"
    )
    ids = [r["id"] for r in records]
    not_success = set(collected["not_success"])
    ran = journal_stamps(fleet, since)
    deadline = time.monotonic() + 15  # the journal may lag the backend by a moment
    while not (set(ids) - not_success) <= ran.keys() and time.monotonic() < deadline:
        time.sleep(0.5)
        ran = journal_stamps(fleet, since)
    executed = [i for i in ids if i in ran or i not in not_success]
    stamps = sorted(t for i in ids for t in ran.get(i, []))
    # A switchover's old master serves until its pause, late in the play: its first task on the new
    # master is the first one done after every Sentinel names it.
    first_new = watch["elected_at"] if fault == "switchover" else fault_at + 1.0
    resumed = next((t - fault_at for t in stamps if t > first_new), None)
    new_host = next(h for h, a in addresses.items() if f"{a}:6379" == watch["master"])
    return {
        "fault": fault,
        "rep": rep,
        "old": old_host,
        "new": new_host,
        "elected": watch["elected_at"] - fault_at,
        "resumed": resumed,
        "sent": len(ids),
        "executed": len(executed),
        "lost": len(ids) - len(executed),
        "duplicated": sum(1 for i in ids if len(ran.get(i, [])) > 1),
        "publish_errors": stream.get("publish_errors", 0),
        "slowest_publish": stream.get("slowest_publish", 0.0),
        "restarts": restarts(fleet) - restarts_before,
        "states": collected["states"],
    }


def bench_sentinel(ctx: Context) -> str:
    """(9) Sentinel: failover time, first task on the new master, lost tasks; throughput via Sentinel."""
    fleet = Fleet(keep=ctx.sandbox.keep, hosts=SENTINEL_HOSTS, sources=SOURCES)
    facts = fleet.tmp / "facts"
    minimum, after, n = (300, 8.0, 2000) if ctx.quick else (500, 12.0, 5000)
    windows: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    try:
        if os.environ.get("CELERY_FLEET_BENCH_SENTINEL_REUSE") == "1":
            # A debugging aid: the fleet a `--keep` run left, converged already (not for reports).
            fleet.acquire()
            converge_wall = float("nan")
            addresses = {h: fleet.address(h) for h in DATA_NODES}
        else:
            log("sentinel: fresh fleet (bench-cf-*, three data nodes)")
            fleet.recreate()
            # What the data nodes and Sentinels announce: an IP (sandbox group_vars/redis asks Docker
            # for the demo's network; here the benchmark's).
            addresses = {h: fleet.address(h) for h in DATA_NODES}
            for h, a in addresses.items():
                fleet.set_host_vars(h, {"redis_announce_address": a})
            log("sentinel: converge site.yml (sandbox + sentinel.cfg)")
            converge = fleet.playbook("site.yml", facts=facts, name="converge", timeout=2400)
            if converge.returncode != 0:
                raise RuntimeError(
                    f"converge failed (exit {converge.returncode}), log {fleet.log_path('converge')}: "
                    f"{converge.output[-1500:]}"
                )
            converge_wall = converge.wall
            log(f"sentinel: converged in {converge_wall:.0f} s")
        install_probe()
        install_scenario_probe()
        topology = run_probe(fleet, OPS, "master", timeout=120)
        if len(set(topology["down_after_ms"])) != 1:
            raise RuntimeError(f"the Sentinels disagree on down-after-milliseconds: {topology}")
        down_after = topology["down_after_ms"][0] / 1000
        for rep in range(ctx.reps):
            order = ("sentinel", "direct") if rep % 2 == 0 else ("direct", "sentinel")
            pair: dict[str, Any] = {"rep": rep + 1, "order": order}
            for mode in order:
                r = run_probe(
                    fleet, THROUGHPUT_HOST, f"throughput {mode} --n {n} --concurrency 2", timeout=600
                )
                if not r.get("ok"):
                    raise RuntimeError(f"throughput {mode}: {r}")
                pair[mode] = r
            log(
                f"sentinel: throughput rep {rep + 1}: sentinel {pair['sentinel']['tasks_per_s']}/s, "
                f"direct {pair['direct']['tasks_per_s']}/s"
            )
            pairs.append(pair)
            for fault in FAULTS if rep % 2 == 0 else FAULTS[::-1]:
                log(f"sentinel: {fault}, rep {rep + 1}")
                w = window(fleet, fault, rep + 1, minimum, after, addresses, facts)
                log(
                    f"sentinel: {fault} rep {rep + 1}: {w['old']} -> {w['new']}, "
                    f"elected {w['elected']:.1f} s, "
                    f"first task {w['resumed']} s, sent {w['sent']}, lost {w['lost']}, "
                    f"duplicated {w['duplicated']}, restarts {w['restarts']}"
                )
                windows.append(w)
    finally:
        fleet.down()
    return report(ctx, windows, pairs, down_after, minimum, after, n, converge_wall)


def report(
    ctx: Context,
    windows: list[dict[str, Any]],
    pairs: list[dict[str, Any]],
    down_after: float,
    minimum: int,
    after: float,
    n: int,
    converge: float,
) -> str:
    elected = {f: Sample([w["elected"] for w in windows if w["fault"] == f]) for f in FAULTS}
    ratio = {f: Sample([w["elected"] / down_after for w in windows if w["fault"] == f]) for f in FAULTS}
    resumed = {f: Sample([w["resumed"] for w in windows if w["fault"] == f and w["resumed"] is not None])
               for f in FAULTS}  # fmt: skip
    lost = {f: Sample([w["lost"] for w in windows if w["fault"] == f]) for f in FAULTS}
    drain = paired_ratio(
        [p["sentinel"]["tasks_per_s"] for p in pairs], [p["direct"]["tasks_per_s"] for p in pairs]
    )
    publish = paired_ratio(
        [p["sentinel"]["published_per_s"] for p in pairs], [p["direct"]["published_per_s"] for p in pairs]
    )
    limit = FACTOR + SLACK / down_after
    targets = []
    for f in CRASHES:
        targets.append(Target(f"{f}: elected ÷ down-after ({down_after:g} s), limit {FACTOR:g} + {SLACK:g} s",
                              ratio[f].median, limit, False))  # fmt: skip
        targets.append(Target(f"{f}: tasks lost per failover (median)", lost[f].median, 0, False))
    # The issue: a planned switchover loses no task, in every run (not only the median).
    most = max(lost["switchover"].values, default=0)
    targets.append(Target("switchover: tasks lost, most in any run", most, 0, False))
    targets.append(Target("Drain through sentinel:// ÷ direct redis://", drain.median, 0.95, True))
    targets.append(
        Target("Publish through sentinel:// ÷ direct redis://", publish.median, 0.95, True, gated=False)
    )
    window_rows = [
        [
            w["fault"], str(w["rep"]), f"{w['old']} → {w['new']}", f"{w['elected']:.1f}",
            f"{w['elected'] / down_after:.2f}" if w["fault"] in CRASHES else "n/a",
            "n/a" if w["resumed"] is None else f"{w['resumed']:.1f}",
            str(w["sent"]), str(w["executed"]), str(w["lost"]), str(w["duplicated"]),
            f"{w['publish_errors']} ({w['slowest_publish']:.1f})", str(w["restarts"]),
        ]
        for w in windows
    ]  # fmt: skip
    pair_rows = [
        [
            str(p["rep"]), " then ".join(p["order"]), f"{p['sentinel']['tasks_per_s']:.0f}",
            f"{p['direct']['tasks_per_s']:.0f}",
            f"{p['sentinel']['tasks_per_s'] / p['direct']['tasks_per_s']:.2f}",
            f"{p['sentinel']['published_per_s']:.0f}", f"{p['direct']['published_per_s']:.0f}",
        ]
        for p in pairs
    ]  # fmt: skip
    summary_rows = [
        [f, elected[f].show(1), ratio[f].show() if f in CRASHES else "n/a", resumed[f].show(1),
         lost[f].show(0), Sample([w["duplicated"] for w in windows if w["fault"] == f]).show(0)]
        for f in FAULTS
    ]  # fmt: skip
    path, img = ctx.chart("sentinel")
    labels = [f"elected ({f})" for f in FAULTS] + [f"first task ({f})" for f in FAULTS] + ["limit"]
    bars = [*elected.values(), *resumed.values(), Sample([FACTOR * down_after + SLACK])]
    shown = [(label, bar) for label, bar in zip(labels, bars, strict=True) if bar.values]
    bar_chart(
        path, "Sentinel failover: seconds after the fault", *map(list, zip(*shown, strict=True)), "seconds"
    )
    fleet_origin = (
        f"first converge of `site.yml` {converge:.0f} s (not part of any figure)"
        if converge == converge  # NaN: CELERY_FLEET_BENCH_SENTINEL_REUSE=1
        else "converged by an earlier `--keep` run and reused (`CELERY_FLEET_BENCH_SENTINEL_REUSE=1`)"
    )
    notes = [
        f"Fleet: the sandbox inventory with `inventories/sandbox/sentinel.cfg` (`SENTINEL=1 make demo`'s "
        f"topology) on six fresh `bench-cf-*` containers: three data nodes with a Sentinel each "
        f"(down-after-milliseconds {down_after * 1000:.0f}, as the Sentinels report it), two worker "
        f"hosts, cf-ops (beat, Flower, the producer); {fleet_origin}. "
        f"{ctx.reps} repetitions; in each, the throughput pair, then "
        "`kill -9`, `docker stop` and `playbooks/switchover.yml` (orders alternating).",
        f"Producer (the sentinel scenario's, `molecule/fleet/tests/probe.py stream`, on cf-ops through "
        f"the app's entry module, as the app's user): {RATE:g} tasks/s, pings to the 10 queues and "
        f"{SLEEP:g} s sleeps, a publish that raised sent again with the same id for up to 60 s; it runs "
        f"from 3 s before the fault until {after:g} s after the election and at least {minimum} were "
        "sent. Elected = until every Sentinel that answers names the same new master (polled every "
        "0.1 s from cf-ops). First task on the new master = the first `succeeded` in the workers' "
        "journals more than 1 s after the fault (for the switchover, whose fault time is the play's "
        "start, the first after the election). Lost = never logged `succeeded` and not SUCCESS in the "
        "result backend 60 s after the stream; duplicated = logged `succeeded` more than once. Worker "
        "restarts = systemd restarts of the app's services during the window (kombu 5.7's crash, README).",
        f"Throughput: {n} no-ops published, then drained by a fresh prefork worker (c=2) on "
        f"{THROUGHPUT_HOST} (first to last `date_done`, its start excluded); sentinel:// = the fleet's "
        "configuration; direct = the same user, password and settings with `redis://<master>:6379` "
        "(kombu's plain Redis transport ignores `master_name`/`sentinel_kwargs`).",
    ]
    return "\n\n".join(
        [
            "## 9. Redis Sentinel failover",
            "Failovers of the Sentinel topology under a producer's stream (`kill -9` of the master's "
            "redis-server, its container stopped, a planned `playbooks/switchover.yml`), and the drain "
            "through `sentinel://` against a direct "
            "`redis://` to the same master, side by side.",
            *notes,
            table(
                [
                    "Fault",
                    "Elected, s",
                    "÷ down-after",
                    "First task on the new master, s",
                    "Lost",
                    "Duplicated",
                ],
                summary_rows,
            ),
            table(WINDOW_HEADER, window_rows),
            table(THROUGHPUT_HEADER, pair_rows),
            f"Drain sentinel ÷ direct: {drain.show()}; publish: {publish.show()}.",
            targets_table(targets),
            img,
        ]
    )
