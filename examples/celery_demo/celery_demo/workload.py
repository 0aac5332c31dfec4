"""Drive the demo fleet: ``python -m celery_demo.workload <command> [--json]``.

Commands (each bounded by ``--timeout``; exit status 1 when something did not finish in time):

- ``queues``: send a ping to every queue and report which worker ran each.
- ``chord``: run seed 000's chord (three ~2 s I/O-bound parts and a callback) and compare its wall
  time with the sum of the parts' times: parallel parts give a ratio near 1/3, a solo pool near 1.
- ``sleep``: send a long task (for the stop/restart tests), print its id, optionally wait for it to
  start. ``result ID``: wait for a task and print its state and result.
- ``noop``: send N no-op tasks, wait for all, print tasks per second.

The broker and backend come from CELERY_BROKER_URL / CELERY_RESULT_BACKEND, as for the workers;
nothing here prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from celery import chord, group
from celery.result import AsyncResult, ResultSet

from celery_demo.app import QUEUES, app
from celery_demo.tasks import (
    PING_TASKS,
    composer_task,
    designer_task,
    director_task,
    noop,
    sleep_task,
    voice_task,
)


def ping_queues(queues: Sequence[str], timeout: float) -> dict[str, Any]:
    """Send one ping per queue; {queue: {hostname, ...} or {error}} plus ok."""
    sent = {queue: PING_TASKS[queue].apply_async() for queue in queues}
    deadline = time.monotonic() + timeout
    results: dict[str, Any] = {}
    for queue, result in sent.items():
        try:
            results[queue] = result.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as exc:  # a timeout or a task error: report it per queue
            results[queue] = {"error": f"{type(exc).__name__}: {exc}"}
    ok = all("error" not in r and r.get("queue") == q for q, r in results.items())
    return {"command": "queues", "ok": ok, "results": results}


def run_chord(seconds: float, timeout: float) -> dict[str, Any]:
    """Seed 000's chord; wall time vs the sum of the three parts' own durations."""
    run_id = uuid.uuid4().hex[:8]
    started = time.monotonic()
    parts = group(
        designer_task.s(run_id, seconds=seconds),
        composer_task.s(run_id, seconds=seconds),
        voice_task.s(run_id, seconds=seconds),
    )
    result = chord(parts)(director_task.s(run_id))
    try:
        outcome = result.get(timeout=timeout)
    except Exception as exc:
        return {"command": "chord", "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    wall = time.monotonic() - started
    durations = [p["finished"] - p["started"] for p in outcome["parts"]]
    total = sum(durations)
    # First part start to last part finish: parallel parts span ~one part, sequential ones the sum.
    span = max(p["finished"] for p in outcome["parts"]) - min(p["started"] for p in outcome["parts"])
    return {
        "command": "chord",
        "ok": True,
        "run_id": run_id,
        "wall_seconds": round(wall, 3),
        "sum_of_parts_seconds": round(total, 3),
        "ratio": round(wall / total, 3) if total else None,
        "parts_span_seconds": round(span, 3),
        "parts": [
            {"task": p["task"], "hostname": p["hostname"], "seconds": round(d, 3)}
            for p, d in zip(outcome["parts"], durations, strict=True)
        ],
        "callback_hostname": outcome["hostname"],
    }


def send_sleep(seconds: float, queue: str | None, wait_started: float) -> dict[str, Any]:
    options = {"queue": queue} if queue else {}
    result = sleep_task.apply_async(kwargs={"seconds": seconds}, **options)
    state = result.state
    deadline = time.monotonic() + wait_started
    while state == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = result.state
    ok = wait_started <= 0 or state != "PENDING"
    return {"command": "sleep", "ok": ok, "id": result.id, "state": state}


def wait_result(task_id: str, timeout: float) -> dict[str, Any]:
    result = AsyncResult(task_id, app=app)
    try:
        value = result.get(timeout=timeout, propagate=False)
    except Exception as exc:
        return {"command": "result", "ok": False, "id": task_id, "state": result.state, "error": str(exc)}
    state = result.state
    shown = value if state == "SUCCESS" else repr(value)
    return {"command": "result", "ok": state == "SUCCESS", "id": task_id, "state": state, "result": shown}


def run_noops(count: int, queue: str | None, timeout: float) -> dict[str, Any]:
    options = {"queue": queue} if queue else {}
    started = time.monotonic()
    sent = [noop.apply_async(**options) for _ in range(count)]
    published = time.monotonic() - started
    results = ResultSet(sent, app=app)
    try:
        # One pass over the backend (Redis: pub/sub) instead of a round trip per task.
        if results.supports_native_join:
            results.join_native(timeout=timeout, propagate=False)
        else:
            results.join(timeout=timeout, propagate=False)
    except Exception:  # a timeout: count what finished
        pass
    done = results.completed_count()
    wall = time.monotonic() - started
    return {
        "command": "noop",
        "ok": done == count,
        "count": count,
        "done": done,
        "publish_seconds": round(published, 3),
        "wall_seconds": round(wall, 3),
        "tasks_per_second": round(done / wall, 1) if wall else None,
    }


def _human(report: dict[str, Any]) -> str:
    command = report["command"]
    if command == "queues":
        lines = []
        for queue, r in report["results"].items():
            lines.append(f"{queue:<15} {r.get('error') or r['hostname']}")
        return "\n".join(lines)
    if command == "chord" and report["ok"]:
        parts = ", ".join(
            f"{p['task'].rsplit('.', 1)[-1]}@{p['hostname']} {p['seconds']} s" for p in report["parts"]
        )
        return (
            f"chord wall {report['wall_seconds']} s, sum of parts {report['sum_of_parts_seconds']} s, "
            f"ratio {report['ratio']}, parts span {report['parts_span_seconds']} s "
            f"({parts}; callback on {report['callback_hostname']})"
        )
    return " ".join(f"{k}={v}" for k, v in report.items() if k != "command")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m celery_demo.workload", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait at most (default 60)")
    sub = parser.add_subparsers(dest="command", required=True)
    queues = sub.add_parser("queues", help="ping every queue, report which worker ran each")
    queues.add_argument("--queue", action="append", choices=QUEUES, help="only these queues (repeatable)")
    chord_cmd = sub.add_parser("chord", help="run seed 000's chord, compare wall time with the parts' sum")
    chord_cmd.add_argument("--seconds", type=float, default=2.0, help="duration of each part (default 2)")
    sleep = sub.add_parser("sleep", help="send a long task and print its id")
    sleep.add_argument("--seconds", type=float, default=20.0)
    sleep.add_argument("--queue", help="queue (default: its route, low_priority)")
    sleep.add_argument("--wait-started", type=float, default=0.0, help="wait up to S seconds for STARTED")
    result = sub.add_parser("result", help="wait for a task and print its state")
    result.add_argument("id")
    noops = sub.add_parser("noop", help="send N no-op tasks and measure tasks/s")
    noops.add_argument("--count", type=int, default=200)
    noops.add_argument("--queue", help="queue (default: its route, high_priority)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "queues":
        report = ping_queues(args.queue or QUEUES, args.timeout)
    elif args.command == "chord":
        report = run_chord(args.seconds, args.timeout)
    elif args.command == "sleep":
        report = send_sleep(args.seconds, args.queue, args.wait_started)
    elif args.command == "result":
        report = wait_result(args.id, args.timeout)
    else:
        report = run_noops(args.count, args.queue, args.timeout)
    print(json.dumps(report, sort_keys=True) if args.json else _human(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
