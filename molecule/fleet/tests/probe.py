"""Producer side of the fleet tests, run inside the ops container with the app's virtualenv.

    conftest.probe("<command> ...")  # <venv>/bin/python probe.py <command> ... as the app's user,
                                     # with its environment (fleetnode.Node.python)

- ``stream OUT STOP --min N --rate R [--started FILE] [--retry-publish S]``: send tasks round-robin
  (a ping to every queue, a 0.3 s sleep to `processing` and `extraction`) at R per second until the
  file STOP exists and at least N were sent; write [{id, task, queue, t}] to OUT (t: when its
  publish returned, seconds since the epoch); print a JSON summary.
  FILE is created once the first task is sent (the caller waits on it instead of guessing the
  start-up time). With --retry-publish, a publish that raises (the broker is failing over) is sent
  again with the same task id for up to S seconds, as a producer that must not drop a task would;
  the summary counts those errors and the longest time a publish took.
- ``collect IDS --timeout T``: wait (bounded) until every task of IDS is ready; print the states.
- ``send QUEUE N OUT``: send N pings to QUEUE without waiting; write their ids to OUT.
- ``await ID --timeout T``: poll until the task is SUCCESS (a requeued task may pass through other
  states first); print its final state and the seconds it took.

Each prints one JSON object. The broker credentials come from the environment file, as for the
services.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from celery.result import AsyncResult
from celery.utils import uuid
from celery_demo.app import QUEUES, app
from celery_demo.tasks import PING_TASKS, sleep_task

SLEEP_QUEUES = ("processing", "extraction")


def publish(task: Any, options: dict[str, Any], retry_for: float, errors: list[str]) -> str:
    """Send one task; with ``retry_for`` > 0, send it again with the same id while publishing raises."""
    task_id = uuid()
    deadline = time.monotonic() + retry_for
    while True:
        try:
            return task.apply_async(task_id=task_id, **options).id
        except Exception as exc:  # any publish error: sent again, then re-raised
            errors.append(type(exc).__name__)
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def stream(
    out: Path,
    stop: Path,
    minimum: int,
    rate: float,
    started_file: Path | None = None,
    retry_for: float = 0.0,
) -> dict[str, Any]:
    plan: list[tuple[str, Any, dict[str, Any]]] = [(q, PING_TASKS[q], {}) for q in QUEUES]
    plan += [(q, sleep_task, {"kwargs": {"seconds": 0.3}, "queue": q}) for q in SLEEP_QUEUES]
    sent: list[dict[str, str]] = []
    errors: list[str] = []
    slowest = 0.0
    started = time.monotonic()
    while len(sent) < minimum or not stop.exists():
        queue, task, options = plan[len(sent) % len(plan)]
        began = time.monotonic()
        task_id = publish(task, options, retry_for, errors)
        slowest = max(slowest, time.monotonic() - began)
        sent.append({"id": task_id, "task": task.name, "queue": queue, "t": round(time.time(), 3)})
        if started_file is not None and len(sent) == 1:
            started_file.touch()
        time.sleep(max(0.0, started + len(sent) / rate - time.monotonic()))
        if time.monotonic() - started > 900:  # bounded even if STOP never comes
            break
    out.write_text(json.dumps(sent))
    report: dict[str, Any] = {"sent": len(sent), "seconds": round(time.monotonic() - started, 1)}
    if retry_for > 0:
        report.update(publish_errors=len(errors), slowest_publish=round(slowest, 2))
    return report


def collect(ids_file: Path, timeout: float) -> dict[str, Any]:
    ids = [entry["id"] for entry in json.loads(ids_file.read_text())]
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        still = []
        for task_id in pending:
            state = AsyncResult(task_id, app=app).state
            if state in ("SUCCESS", "FAILURE", "REVOKED"):
                states[task_id] = state
            else:
                still.append(task_id)
        pending = still
        if pending:
            time.sleep(1)
    for task_id in pending:
        states[task_id] = AsyncResult(task_id, app=app).state
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return {
        "total": len(ids),
        "states": counts,
        "not_success": sorted(i for i, s in states.items() if s != "SUCCESS"),
    }


def send(queue: str, count: int, out: Path) -> dict[str, Any]:
    sent = [
        {"id": PING_TASKS[queue].apply_async().id, "task": PING_TASKS[queue].name, "queue": queue}
        for _ in range(count)
    ]
    out.write_text(json.dumps(sent))
    return {"sent": len(sent), "queue": queue}


def await_success(task_id: str, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    seen: list[str] = []
    state = "PENDING"
    while time.monotonic() - started < timeout:
        state = AsyncResult(task_id, app=app).state
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == "SUCCESS":
            break
        time.sleep(0.5)
    return {
        "id": task_id,
        "state": state,
        "states_seen": seen,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stream")
    s.add_argument("out", type=Path)
    s.add_argument("stop", type=Path)
    s.add_argument("--min", type=int, default=500)
    s.add_argument("--rate", type=float, default=8.0)
    s.add_argument("--started", type=Path, default=None)
    s.add_argument("--retry-publish", type=float, default=0.0)
    c = sub.add_parser("collect")
    c.add_argument("ids", type=Path)
    c.add_argument("--timeout", type=float, default=120.0)
    n = sub.add_parser("send")
    n.add_argument("queue", choices=QUEUES)
    n.add_argument("count", type=int)
    n.add_argument("out", type=Path)
    a = sub.add_parser("await")
    a.add_argument("id")
    a.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if args.command == "stream":
        report = stream(args.out, args.stop, args.min, args.rate, args.started, args.retry_publish)
    elif args.command == "collect":
        report = collect(args.ids, args.timeout)
    elif args.command == "send":
        report = send(args.queue, args.count, args.out)
    else:
        report = await_success(args.id, args.timeout)
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
