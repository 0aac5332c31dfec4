"""The Celery client side of benchmark 8 (rolling restart), run inside a fleet container.

Copied into the container by bench/b_rolling.py and run as the app's service user through the app's
environment wrapper (``b_rolling.probe``, built by the test library's ``Node.python``), so the broker
password travels in the environment, never in argv.

Commands (each prints one JSON object on its last line; every wait is bounded):

- ``stream OUT STOP --rate R --min N --max-seconds S --sleep SECONDS [--started FILE]``: publish
  at R tasks per second, round-robin over a ping to every queue of the app and a SECONDS sleep to
  each of SLEEP_QUEUES, until the file STOP exists and at least N were sent (or S seconds passed);
  write ``[{"id", "queue", "t"}]`` (t: epoch seconds of the publish) to OUT. FILE is created once
  the first task is published (the caller waits on it rather than guessing the start-up time).
- ``collect IDS --timeout T``: wait until every task of the file IDS is ready; print the
  backend's state counts and the ids that did not end SUCCESS.
- ``ping NODE --ready FILE --go FILE --timeout T``: answer once NODE replies to a control ping
  (client warm), create READY, wait for GO, then ping NODE until it answers again and print the
  epoch seconds of that reply (the restart baseline: GO is created once ``systemctl restart``
  has returned, so a reply after it comes from the new worker).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery_demo.app import QUEUES, app
from celery_demo.tasks import PING_TASKS, sleep_task

# Short sleeps go to two prefork queues on different hosts (the longest task the stream sends).
SLEEP_QUEUES = ("processing", "extraction")


def stream(
    out: Path,
    stop: Path,
    rate: float,
    minimum: int,
    max_seconds: float,
    sleep: float,
    started: Path | None = None,
) -> dict[str, Any]:
    # Interleave the sleeps among the pings, so no queue sees a burst.
    plan: list[tuple[str, bool]] = [(queue, False) for queue in QUEUES]
    for i, queue in enumerate(SLEEP_QUEUES):
        plan.insert((i + 1) * len(plan) // (len(SLEEP_QUEUES) + 1), (queue, True))
    records: list[dict[str, Any]] = []
    t0 = time.monotonic()
    n = 0
    while (n < minimum or not stop.exists()) and time.monotonic() - t0 < max_seconds:
        queue, is_sleep = plan[n % len(plan)]
        if is_sleep:
            result = sleep_task.apply_async(kwargs={"seconds": sleep}, queue=queue)
        else:
            result = PING_TASKS[queue].apply_async()
        records.append({"id": result.id, "queue": queue, "t": round(time.time(), 3)})
        n += 1
        if started is not None and n == 1:
            started.touch()
        # A fixed schedule (not a fixed pause), so a slow publish does not lower the rate.
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - t0
    out.write_text(json.dumps(records))
    return {"sent": n, "seconds": round(elapsed, 2), "rate": round(n / elapsed, 1) if elapsed else None}


def collect(ids_file: Path, timeout: float) -> dict[str, Any]:
    ids = [record["id"] for record in json.loads(ids_file.read_text())]
    ready: dict[str, str] = {}
    t0 = time.monotonic()
    try:
        # One MGET per round over the ids not ready yet; yields each task as it reaches a ready state.
        for task_id, meta in app.backend.get_many(set(ids), timeout=timeout, interval=0.5):
            ready[task_id] = meta["status"]
    except CeleryTimeoutError:
        pass  # what never became ready is reported below, never waited for longer
    states = Counter(ready.values())
    unready = [i for i in ids if i not in ready]
    if unready:
        states["not ready"] = len(unready)
    return {
        "total": len(ids),
        "states": dict(states),
        "seconds": round(time.monotonic() - t0, 1),
        "not_success": sorted({i for i in ids if ready.get(i) != "SUCCESS"}),
    }


def answers(node: str) -> bool:
    return any(node in reply for reply in app.control.ping(destination=[node], timeout=0.5) or [])


def ping(node: str, ready: Path, go: Path, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    while not answers(node):
        if time.monotonic() - t0 > timeout:
            return {"ok": False, "error": f"{node} did not answer before the restart"}
    ready.touch()
    while not go.exists():
        if time.monotonic() - t0 > timeout:
            return {"ok": False, "error": "no go signal"}
        time.sleep(0.02)
    attempts = 0
    while time.monotonic() - t0 < timeout:
        attempts += 1
        if answers(node):
            return {"ok": True, "answered": round(time.time(), 3), "attempts": attempts}
    return {"ok": False, "error": f"{node} did not answer within {timeout} s after the restart"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stream")
    s.add_argument("out", type=Path)
    s.add_argument("stop", type=Path)
    s.add_argument("--rate", type=float, default=25.0)
    s.add_argument("--min", type=int, default=500)
    s.add_argument("--max-seconds", type=float, default=600.0)
    s.add_argument("--sleep", type=float, default=0.5)
    s.add_argument("--started", type=Path, default=None)
    c = sub.add_parser("collect")
    c.add_argument("ids", type=Path)
    c.add_argument("--timeout", type=float, default=120.0)
    p = sub.add_parser("ping")
    p.add_argument("node")
    p.add_argument("--ready", type=Path, required=True)
    p.add_argument("--go", type=Path, required=True)
    p.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    if args.command == "stream":
        report = stream(args.out, args.stop, args.rate, args.min, args.max_seconds, args.sleep, args.started)
    elif args.command == "collect":
        report = collect(args.ids, args.timeout)
    else:
        report = ping(args.node, args.ready, args.go, args.timeout)
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
