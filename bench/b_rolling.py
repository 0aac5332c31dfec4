"""Benchmark 8: rolling restart (playbooks/rolling-restart.yml) while a producer streams tasks.

Once: four fresh containers (bench/fleet.py) and a first converge of site.yml with the shipped
ansible.cfg. Then per repetition, for serial 1 and serial 2 (the order alternates between
repetitions), one window:

1. bench/fleet_probe.py starts streaming from cf-ops (pings to every queue and short sleeps);
2. the baseline: a bare ``systemctl restart`` of one worker unit on its host, timed until the
   worker answers a control ping again (the client is warm before the restart);
3. ``playbooks/rolling-restart.yml -e celery_fleet_serial=N``; each batch's duration comes from
   the profile_tasks timestamps (first task of the batch to first task of the next, or the end);
4. the producer stops (at least the minimum sent), every sent task is awaited (bounded), and the
   task ids are counted in the workers' journals ("Task ...[id] succeeded") for executions and
   duplicates, with the result backend's states beside them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from benchlib import Sample, Target, bar_chart, table, targets_table
from common import BENCH, Context, log
from fleet import PREFIX, Fleet

# The scenarios' test library: the app's commands and node names are built there once (from
# lib/celery_fleet's layout and node-name functions), for the tests and this benchmark alike.
sys.path.insert(0, str(BENCH.parent / "molecule" / "resources"))
from fleetnode import Node, worker_node

SANDBOX_VARS = Path(__file__).resolve().parent.parent / "inventories" / "sandbox" / "group_vars"
WORKER_HOSTS = {"cf-worker-gpu": "gpu_workers", "cf-worker-cpu": "cpu_workers"}
OPS = "cf-ops"
# The unit of the baseline: a prefork worker that takes the stream's sleeps.
BASELINE = ("cf-worker-cpu", "processing")
# The longest task the producer sends (seconds); the stream is the fleet's only load besides beat's
# 15 s pings, so no worker runs anything longer when the restart comes.
SLEEP = 0.5
SLACK = 10.0
RATE = 30.0  # tasks per second
PROBE = "/tmp/fleet_probe.py"
HOST_HEADER = ["Serial", "Batch (hosts)", "Workers restarted", "Per host (batch), s",
               "Of which restart loop, s", "Of which verify, s", "Over the limit, s",
               "Per host ÷ limit"]  # fmt: skip
RUN_HEADER = ["Serial", "Rep", "Play", "Play wall, s", "Baseline, s (systemctl)", "Sent", "Sent during play",
              "Executed", "Lost", "Duplicated", "Backend states"]  # fmt: skip


def _vars(group: str, role: str) -> dict[str, Any]:
    return yaml.safe_load((SANDBOX_VARS / group / f"{role}.yml").read_text())


APP = _vars("all", "celery_app")["celery_app_name"]

WORKERS = {h: _vars(g, "celery_worker")["celery_workers"] for h, g in WORKER_HOSTS.items()}


def node(host: str, worker: str) -> str:
    """The Celery node name of a declared worker, as the roles compute it (the container's host name)."""
    return worker_node(next(w for w in WORKERS[host] if w["name"] == worker), PREFIX + host)


def probe(host: str, args: str) -> str:
    """The shell command that runs fleet_probe.py on a host as the app's user, with its environment."""
    target = Node(PREFIX + host, app=APP)
    return target.python(f"{PROBE} {args}", pythonpath=target.layout["code_dir"])


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON in: {text[-500:]}")


# --- The playbook's batches ----------------------------------------------------------------------

PLAY_RE = re.compile(r"^PLAY \[.*\] \*+\s*$")
TASK_RE = re.compile(r"^TASK \[(.*)\] \*+\s*$")
STAMP_RE = re.compile(r"\)\s+(\d+):(\d\d):(\d\d(?:\.\d+)?) \*+\s*$")
HOST_RE = re.compile(r"^(?:ok|changed|skipping|failed|fatal): \[([\w.-]+)\]|^included: \S+ for ([\w., -]+)$")
RESTART_TASK = "Restart the host's workers, one wave at a time"


@dataclass
class Batch:
    hosts: list[str] = field(default_factory=list)
    start: float = 0.0
    seconds: float = 0.0
    restart: float = 0.0  # of which the restart loop (RESTART_TASK)
    verify: float = 0.0  # of which the role's `celery inspect` checks (tasks named "verify | ...")


def batches(output: str) -> list[Batch]:
    """Each batch of a serial play, from the profile_tasks stamps (elapsed time at each task start).

    A batch starts at the first task stamp after its PLAY banner (Ansible prints one per batch)
    and ends at the first stamp of the next batch, or at the final stamp after the recap; a task
    lasts until the next stamp."""
    found: list[Batch] = []
    current: Batch | None = None
    new_play = False
    task = previous_task = ""
    task_start = 0.0
    for line in output.splitlines():
        if PLAY_RE.match(line) and not line.startswith("PLAY RECAP"):
            new_play = True
            continue
        if m := TASK_RE.match(line):
            task = m[1]
            continue
        if stamp := STAMP_RE.search(line):
            now = int(stamp[1]) * 3600 + int(stamp[2]) * 60 + float(stamp[3])
            if current is not None:
                if previous_task == RESTART_TASK:
                    current.restart += now - task_start
                elif "verify | " in previous_task:
                    current.verify += now - task_start
                current.seconds = now - current.start
            if new_play or current is None:
                current = Batch(start=now)
                found.append(current)
                new_play = False
            previous_task, task_start = task, now
            continue
        if (match := HOST_RE.match(line)) and current is not None:
            for h in (match[1] or match[2]).replace(",", " ").split():
                if h not in current.hosts:
                    current.hosts.append(h)
    return [b for b in found if b.hosts]


# --- One window: producer + baseline + rolling restart ----------------------------------------------


def install_probe() -> None:
    text = (BENCH / "fleet_probe.py").read_text()
    for host in (OPS, *WORKER_HOSTS):
        # Through stdin: `docker cp` cannot write into the container's /tmp, a tmpfs.
        subprocess.run(
            ["docker", "exec", "-i", PREFIX + host, "sh", "-c", f"cat > {PROBE} && chmod 0644 {PROBE}"],
            input=text, text=True, check=True, timeout=60,
        )  # fmt: skip


def baseline(fleet: Fleet) -> dict[str, float]:
    """A bare `systemctl restart` of one worker unit, until the new worker answers a control ping."""
    host, worker = BASELINE
    script = f"""
rm -f /tmp/rolling-ready /tmp/rolling-go /tmp/rolling-ping.json
{probe(host, f"ping {node(host, worker)} --ready /tmp/rolling-ready --go /tmp/rolling-go --timeout 90")} \
    > /tmp/rolling-ping.json &
waiter=$!
for _ in $(seq 600); do [ -e /tmp/rolling-ready ] || [ -s /tmp/rolling-ping.json ] && break; sleep 0.1; done
if [ ! -e /tmp/rolling-ready ]; then kill $waiter 2>/dev/null || true; cat /tmp/rolling-ping.json; exit 1; fi
# As the play does before its restarts: the repetitions' back-to-back restarts would hit the start limit.
systemctl reset-failed {APP}-worker-{worker}
t0=$(date +%s.%N)
systemctl restart {APP}-worker-{worker}
t1=$(date +%s.%N)
touch /tmp/rolling-go
wait $waiter || true
echo "$t0 $t1"
cat /tmp/rolling-ping.json
"""
    out = fleet.exec(host, script, timeout=180)
    reply = last_json(out)
    if not reply.get("ok"):
        raise RuntimeError(f"baseline: {reply}")
    t0, t1 = (float(x) for x in out.strip().splitlines()[-2].split())
    return {"total": reply["answered"] - t0, "systemctl": t1 - t0}


def journal_successes(fleet: Fleet, since: float) -> dict[str, int]:
    """Task id -> how many times a worker logged it succeeded, over both worker hosts' journals."""
    counts: dict[str, int] = {}
    for host in WORKER_HOSTS:
        out = fleet.exec(
            host,
            f"journalctl -o cat --no-pager -u '{APP}-worker-*' --since @{int(since) - 2}"
            r" | grep -oE '\[[0-9a-f-]{36}\] succeeded' | cut -c2-37 || true",
            timeout=120,
        )
        for task_id in out.split():
            counts[task_id] = counts.get(task_id, 0) + 1
    return counts


def journal_lines(fleet: Fleet, since: float, task_ids: list[str]) -> list[str]:
    """Every journal line of the workers naming these tasks (received, succeeded, warnings), in time
    order: what the report shows for a task that was lost or ran twice."""
    pattern = "|".join(task_ids)
    lines: list[str] = []
    for host in WORKER_HOSTS:
        out = fleet.exec(
            host,
            f"journalctl -o short-precise --no-pager -u '{APP}-worker-*' --since @{int(since) - 2}"
            f" | grep -E '{pattern}' || true",
            timeout=120,
        )
        lines += [line.strip()[:300] for line in out.splitlines() if line.strip()]
    return sorted(lines)


def stop_producer(fleet: Fleet, producer: subprocess.Popen[str], stop: str) -> tuple[str, str]:
    """Tell a streaming producer on cf-ops to stop (the file ``stop``) and wait for it, bounded:
    its stdout and stderr."""
    fleet.exec(OPS, f"touch {stop}", check=False)
    try:
        return producer.communicate(timeout=660)
    except subprocess.TimeoutExpired:
        producer.kill()
        return producer.communicate(timeout=30)


def window(
    fleet: Fleet, facts: Path, serial: int, rep: int, minimum: int, extra: list[str]
) -> dict[str, Any]:
    fleet.exec(OPS, "rm -f /tmp/rolling-stop /tmp/rolling-ids.json /tmp/rolling-started")
    since = time.time()
    producer = subprocess.Popen(
        ["docker", "exec", PREFIX + OPS, "bash", "-ec",
         probe(OPS, f"stream /tmp/rolling-ids.json /tmp/rolling-stop --rate {RATE:g} --min {minimum}"
                    f" --max-seconds 600 --sleep {SLEEP:g} --started /tmp/rolling-started")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # The baseline restart comes with the stream running: wait for its first task, not a guess.
        fleet.exec(
            OPS,
            "for _ in $(seq 600); do [ -e /tmp/rolling-started ] && exit 0; sleep 0.1; done;"
            " echo 'the producer sent nothing within 60 s' >&2; exit 1",
            timeout=90,
        )
        base = baseline(fleet)
        play_start = time.time()
        run = fleet.playbook(
            "playbooks/rolling-restart.yml", "-e", f"celery_fleet_serial={serial}", *extra,
            facts=facts, name=f"rolling-serial{serial}-rep{rep}", timeout=900,
        )  # fmt: skip
        play_end = time.time()
    finally:
        out, err = stop_producer(fleet, producer, "/tmp/rolling-stop")
    if producer.returncode != 0:
        raise RuntimeError(f"producer exit {producer.returncode}: {err[-1500:]}")
    stream = last_json(out)
    records = json.loads(fleet.exec(OPS, "cat /tmp/rolling-ids.json", timeout=60))
    collected = last_json(
        fleet.exec(OPS, probe(OPS, "collect /tmp/rolling-ids.json --timeout 180"), timeout=300)
    )
    ran = journal_successes(fleet, since)
    # The backend can report SUCCESS before the worker's "succeeded" line reaches the journal: wait
    # (bounded) until the journals show every task the backend calls successful.
    successful = {r["id"] for r in records} - set(collected["not_success"])
    deadline = time.monotonic() + 15
    while not successful <= ran.keys() and time.monotonic() < deadline:
        time.sleep(0.5)
        ran = journal_successes(fleet, since)
    ids = [r["id"] for r in records]
    queue = {r["id"]: r["queue"] for r in records}
    not_success = set(collected["not_success"])
    executed = [i for i in ids if ran.get(i, 0) > 0 or i not in not_success]
    twice = [i for i in ids if ran.get(i, 0) > 1]
    # The journal lines of (at most 5) tasks that ran twice or were lost, for the report.
    done = set(executed)
    odd = (twice + [i for i in ids if i not in done])[:5]
    return {
        "serial": serial,
        "rep": rep,
        "returncode": run.returncode,
        "log": str(fleet.log_path(f"rolling-serial{serial}-rep{rep}")),
        "wall": play_end - play_start,
        "batches": batches(run.output),
        "baseline": base,
        "stream": stream,
        "sent": len(ids),
        "sent_during_play": sum(1 for r in records if play_start <= r["t"] <= play_end),
        "executed": len(executed),
        "lost": len(ids) - len(executed),
        "duplicated": len(twice),
        "odd": {
            "queues": {i: queue[i] for i in odd},
            "journal": journal_lines(fleet, since, odd) if odd else [],
        },
        "journal_missing": sum(1 for i in ids if ran.get(i, 0) == 0 and i not in not_success),
        "states": collected["states"],
    }


# --- The benchmark -------------------------------------------------------------------------------


def bench_rolling(ctx: Context) -> str:
    """(8) Rolling restart: per-host duration and lost tasks under a stream, serial 1 and 2."""
    fleet = Fleet(keep=ctx.sandbox.keep)  # run.py --keep leaves the fleet up as well
    facts = fleet.tmp / "facts"
    # --quick restarts one worker per host (the two that take the stream's sleeps) and streams at
    # least 300 tasks; the full run restarts every worker and streams at least 500.
    if ctx.quick:
        restart = ["extraction", "processing"]
        minimum = 300
    else:
        restart = [w["name"] for ws in WORKERS.values() for w in ws]
        minimum = 500
    extra = ["-e", json.dumps({"celery_fleet_restart_workers": restart})] if ctx.quick else []
    try:
        log("rolling: fresh fleet (bench-cf-*)")
        fleet.recreate()
        log("rolling: converge site.yml (shipped ansible.cfg)")
        converge = fleet.playbook("site.yml", facts=facts, name="converge", timeout=1800)
        if converge.returncode != 0:
            raise RuntimeError(f"converge failed (exit {converge.returncode}): {converge.output[-1500:]}")
        log(f"rolling: converged in {converge.wall:.0f} s")
        install_probe()
        runs: list[dict[str, Any]] = []
        for rep in range(ctx.reps):
            for serial in (1, 2) if rep % 2 == 0 else (2, 1):
                log(f"rolling: serial {serial}, rep {rep + 1}")
                r = window(fleet, facts, serial, rep + 1, minimum, extra)
                log(
                    f"rolling: serial {serial} rep {rep + 1}: play {r['wall']:.1f} s, batches "
                    f"{[(b.hosts, round(b.seconds, 1)) for b in r['batches']]}, "
                    f"baseline {r['baseline']['total']:.1f} s, "
                    f"sent {r['sent']} ({r['sent_during_play']} during the play), lost {r['lost']}, "
                    f"duplicated {r['duplicated']}"
                )
                runs.append(r)
    finally:
        fleet.down()
    return report(ctx, runs, restart, minimum, converge.wall)


def report(
    ctx: Context, runs: list[dict[str, Any]], restart: list[str], minimum: int, converge: float
) -> str:
    per_host_workers = {h: [w["name"] for w in ws if w["name"] in restart] for h, ws in WORKERS.items()}
    base = Sample([r["baseline"]["total"] for r in runs])
    limits = Sample([r["baseline"]["total"] + SLEEP + SLACK for r in runs])
    # (serial, hosts of the batch) -> the batch's duration, of which the restart loop, and the
    # duration ÷ that window's limit. With serial 2 both worker hosts restart in one batch: each
    # host's duration is that batch's.
    keys: list[tuple[int, tuple[str, ...]]] = []
    dur: dict[tuple[int, tuple[str, ...]], Sample] = {}
    loop: dict[tuple[int, tuple[str, ...]], Sample] = {}
    check: dict[tuple[int, tuple[str, ...]], Sample] = {}
    over: dict[tuple[int, tuple[str, ...]], Sample] = {}
    ratio: dict[tuple[int, tuple[str, ...]], Sample] = {}
    for r in sorted(runs, key=lambda r: r["serial"]):
        limit = r["baseline"]["total"] + SLEEP + SLACK
        for b in r["batches"]:
            key = (r["serial"], tuple(h for h in WORKER_HOSTS if h in b.hosts))
            if key not in keys:
                keys.append(key)
            dur.setdefault(key, Sample()).add(b.seconds)
            loop.setdefault(key, Sample()).add(b.restart)
            check.setdefault(key, Sample()).add(b.verify)
            over.setdefault(key, Sample()).add(b.seconds - limit)
            ratio.setdefault(key, Sample()).add(b.seconds / limit)
    rows = []
    targets = []
    for key in keys:
        serial, hosts = key
        workers = sum(len(per_host_workers.get(h, [])) for h in hosts)
        rows.append([
            str(serial), ", ".join(hosts), str(workers), dur[key].show(1), loop[key].show(1),
            check[key].show(1), over[key].show(1), ratio[key].show(),
        ])  # fmt: skip
        targets.append(
            Target(f"serial {serial}, batch {' + '.join(h.removeprefix('cf-') for h in hosts)}: per host ÷ "
                   f"(baseline + {SLEEP:g} s + {SLACK:g} s)", ratio[key].median, 1.0, False)
        )  # fmt: skip
    lost = sum(r["lost"] for r in runs)
    targets.append(Target("Tasks lost, all windows (sum)", lost, 0, False))
    twice = sum(r["duplicated"] for r in runs)
    targets.append(Target("Tasks run twice, all windows (sum)", twice, 0, False, gated=False))
    targets.append(
        Target(f"Fewest tasks sent during one rolling restart (workload, ≥ {minimum})",
               min(r["sent_during_play"] for r in runs), minimum, True, gated=False)
    )  # fmt: skip
    run_rows = [
        [
            str(r["serial"]), str(r["rep"]), "ok" if r["returncode"] == 0 else f"FAILED ({r['returncode']})",
            f"{r['wall']:.1f}", f"{r['baseline']['total']:.2f} ({r['baseline']['systemctl']:.2f})",
            str(r["sent"]), str(r["sent_during_play"]), str(r["executed"]), str(r["lost"]),
            str(r["duplicated"]), ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items())),
        ]
        for r in runs
    ]  # fmt: skip
    labels = ["baseline"] + [f"s{s}: {'+'.join(h.removeprefix('cf-worker-') for h in hs)}" for s, hs in keys]
    labels.append("limit")
    path, img = ctx.chart("rolling")
    bar_chart(path, "Rolling restart: time per host batch vs one bare systemctl restart", labels,
              [base, *(dur[k] for k in keys), limits], "seconds")  # fmt: skip
    failed = [r for r in runs if r["returncode"] != 0]
    missing = sum(r["journal_missing"] for r in runs)
    scope = (
        f"`--quick`: only the workers {', '.join(restart)} (one per host) are restarted, and the "
        f"producer sends at least {minimum} tasks per window"
        if ctx.quick
        else f"every worker of the sandbox is restarted ({', '.join(restart)}), and the producer sends at "
        f"least {minimum} tasks per window"
    )
    notes = [
        f"Fleet: the sandbox inventory on four fresh `bench-cf-*` containers, first converge of `site.yml` "
        f"{converge:.0f} s (not part of any figure). {ctx.reps} repetitions of serial 1 and serial 2, "
        f"order alternating; {scope}. Workers per host: "
        + "; ".join(f"{h} {len(ws)} ({', '.join(w['name'] for w in ws)})" for h, ws in WORKERS.items())
        + ".",
        f"Producer (`bench/fleet_probe.py stream` on cf-ops, as the app's user through `celery-env`): "
        f"{RATE:g} tasks/s round-robin, a ping to each of the app's 10 queues and a {SLEEP:g} s sleep to "
        "`processing` and `extraction`, from before the baseline until the playbook has finished. Lost = "
        "sent tasks never logged `succeeded` by a worker and not SUCCESS in the result backend; duplicated "
        "= logged `succeeded` more than once (workers' journals).",
        f"Baseline, in every window while the stream runs: `systemctl restart {APP}-worker-{BASELINE[1]}` "
        f"on {BASELINE[0]} until that worker answers a control ping again "
        "(in parentheses: `systemctl restart` alone). "
        f"Limit per window = baseline + longest task ({SLEEP:g} s, the stream's sleep; beat's pings are "
        f"shorter; the units' stop timeout is 60 s, never reached by such tasks) + {SLACK:g} s.",
        "Per host = the time of the host's batch, from the profile_tasks stamps (first task of the "
        "batch to the first task of the next batch or the end of the play): the restart loop (one "
        "`systemctl restart` per wave: workers that share no queue together, one that shares a queue "
        "with another after it), then the role's verification "
        "(`celery inspect active_queues` retried until every worker of the batch answers, then "
        "`inspect stats`). With serial 2 both worker hosts are one batch, "
        "so each host's figure is that batch's.",
    ]
    if failed:
        notes.append(
            f"{len(failed)} playbook run(s) failed: "
            + "; ".join(f"serial {r['serial']} rep {r['rep']}" for r in failed)
        )
    odd_lines = []
    for r in runs:
        for task_id, q in r["odd"]["queues"].items():
            odd_lines.append(f"serial {r['serial']} rep {r['rep']}: task {task_id} (queue {q})")
        odd_lines += [f"    {line}" for line in r["odd"]["journal"]]
    if missing:
        notes.append(f"{missing} task(s) SUCCESS in the backend had no `succeeded` line in the journals.")
    return "\n\n".join(
        [
            "## 8. Rolling restart",
            "`playbooks/rolling-restart.yml` with `-e celery_fleet_serial=1` and `=2` while a producer "
            "streams, against a bare `systemctl restart` of one worker unit in the same window.",
            *notes,
            table(HOST_HEADER, rows),
            f"Baseline (bare restart → ping): {base.show()} s; limit {limits.show(1)} s.",
            table(RUN_HEADER, run_rows),
            targets_table(targets),
            *(
                [
                    "Tasks that ran twice or were lost, with the workers' journal lines naming them:",
                    "```text\n" + "\n".join(odd_lines) + "\n```",
                ]
                if odd_lines
                else []
            ),
            img,
        ]
    )
