"""Measurements that run inside a benchmark container, next to the broker and the worker.

``run.py`` copies this file into the container and calls it once per repetition:
``/opt/bench/venv/bin/python /opt/bench/agent.py <command> [options]``. It prints one JSON object.
Broker URLs (they carry the bench-only passwords) are read from /opt/bench/brokers.json (0600),
never from argv. Each command starts its own worker, so one call is one independent sample, and
every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path("/opt/bench")
VENV = BENCH / "venv"
PREFIX = "cf:"


def brokers(name: str) -> dict[str, str]:
    return json.loads((BENCH / "brokers.json").read_text())[name]


def set_broker(name: str, role: str) -> dict[str, str]:
    """Point this process (and the worker's environment) at broker `name` as user `role`."""
    url = brokers(name)[role]
    env = {
        "CELERY_BROKER_URL": url,
        "CELERY_RESULT_BACKEND": url,
        "CELERY_FLEET_KEY_PREFIX": PREFIX,
        "CELERY_FLEET_VISIBILITY_TIMEOUT": "3600",
    }
    os.environ.update(env)
    return env


class Worker:
    """A celery worker child process: started on demand, stopped (TERM, then KILL) within bounds."""

    def __init__(
        self, broker: str, pool: str, concurrency: int, queues: str, venv: Path = VENV, prefetch: int = 0
    ) -> None:
        env = dict(os.environ)
        env.update(set_broker(broker, "worker"))
        env["PYTHONPATH"] = str(BENCH / "app")
        # -E like the fleet's workers (events on by default in celery_worker).
        argv = [
            str(VENV / "bin" / "celery"),
            "-A",
            "celery_demo.app",
            "worker",
            "-P",
            pool,
            "-c",
            str(concurrency),
        ]
        argv += ["-Q", queues, "-E", "-n", f"bench-{pool}-{concurrency}@%h", "--loglevel", "WARNING"]
        if prefetch:  # 0: the app's own setting (worker_prefetch_multiplier = 1)
            argv += ["--prefetch-multiplier", str(prefetch)]
        self.log = open(BENCH / "worker.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def _app():
    sys.path.insert(0, str(BENCH / "app"))
    from celery_demo.app import app

    return app


def purge(app: Any, queues: list[str]) -> None:
    client = app.backend.client
    # Results of earlier samples stay until result_expires; each sample reads only its own ids.
    for queue in queues:
        client.delete(f"{PREFIX}{queue}")


def wait_results(app: Any, ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """Poll the result backend until every id has a result; return the decoded metas."""
    client = app.backend.client
    keys = [f"{PREFIX}celery-task-meta-{i}" for i in ids]
    deadline = time.monotonic() + timeout
    while True:
        values: list[Any] = []
        for start in range(0, len(keys), 1000):
            values += client.mget(keys[start : start + 1000])
        # task_track_started writes a STARTED meta first: only a ready state counts.
        metas = [json.loads(v) if v is not None else None for v in values]
        missing = sum(m is None or m.get("status") not in ("SUCCESS", "FAILURE") for m in metas)
        if missing == 0:
            failed = sum(m["status"] == "FAILURE" for m in metas)
            if failed:
                raise RuntimeError(f"{failed} of {len(ids)} tasks failed")
            return metas
        if time.monotonic() > deadline:
            raise TimeoutError(f"{missing} of {len(ids)} results missing after {timeout} s")
        time.sleep(0.25)


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def cmd_drain(args: argparse.Namespace) -> dict[str, Any]:
    """Preload N no-ops, start a worker, time first to last task (worker start excluded)."""
    set_broker(args.broker, "producer")
    app = _app()
    from celery_demo.tasks import noop

    purge(app, ["high_priority"])
    t0 = time.perf_counter()
    ids = [noop.apply_async().id for _ in range(args.n)]
    publish = time.perf_counter() - t0
    worker = Worker(args.broker, args.pool, args.concurrency, "high_priority")
    try:
        metas = wait_results(app, ids, args.timeout)
    finally:
        worker.stop()
    done = sorted(_ts(m["date_done"]) for m in metas)
    span = done[-1] - done[0]
    return {
        "n": args.n,
        "drain_seconds": span,
        "tasks_per_s": (args.n - 1) / span,
        "published_per_s": args.n / publish,
    }


def _wait_ready(app: Any, task: Any, timeout: float, **options: Any) -> None:
    task.apply_async(**options).get(timeout=timeout)


def cmd_latency(args: argparse.Namespace) -> dict[str, Any]:
    """Round trips of one no-op at a time through a running worker: send -> result ready."""
    set_broker(args.broker, "producer")
    app = _app()
    from celery_demo.tasks import noop

    purge(app, ["high_priority"])
    worker = Worker(args.broker, args.pool, args.concurrency, "high_priority")
    try:
        _wait_ready(app, noop, 60)
        for _ in range(20):  # warm-up: connections, pool children
            noop.apply_async().get(timeout=10)
        samples = []
        for _ in range(args.n):
            t0 = time.perf_counter()
            noop.apply_async().get(timeout=10)
            samples.append((time.perf_counter() - t0) * 1000)
    finally:
        worker.stop()
    samples.sort()
    return {
        "n": args.n,
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, round(0.99 * len(samples)) - 1)],
    }


def cmd_chord(args: argparse.Namespace) -> dict[str, Any]:
    """Seed 000's chord (three parts of `seconds` and a callback) through one worker."""
    set_broker(args.broker, "producer")
    app = _app()
    from celery_demo.tasks import PING_TASKS
    from celery_demo.workload import run_chord

    queues = ["designer", "composer", "voice", "director"]
    purge(app, queues)
    worker = Worker(args.broker, args.pool, args.concurrency, ",".join(queues))
    try:
        _wait_ready(app, PING_TASKS["director"], 60)
        outcome = run_chord(args.seconds, timeout=args.seconds * 3 + 30)
    finally:
        worker.stop()
    if not outcome.get("ok"):
        raise RuntimeError(f"chord failed: {outcome}")
    return {
        "wall_seconds": outcome["wall_seconds"],
        "parts_span_seconds": outcome["parts_span_seconds"],
        "part_seconds": args.seconds,
    }


def cmd_sleeps(args: argparse.Namespace) -> dict[str, Any]:
    """Preload N sleeps of `seconds`, start a worker, time first start to last finish."""
    set_broker(args.broker, "producer")
    app = _app()
    from celery_demo.tasks import sleep_task

    purge(app, ["low_priority"])
    ids = [sleep_task.apply_async(kwargs={"seconds": args.seconds}).id for _ in range(args.n)]
    worker = Worker(args.broker, args.pool, args.concurrency, "low_priority", prefetch=args.prefetch)
    try:
        metas = wait_results(app, ids, args.timeout)
    finally:
        worker.stop()
    results = [m["result"] for m in metas]
    span = max(r["finished"] for r in results) - min(r["started"] for r in results)
    return {"n": args.n, "span_seconds": span, "tasks_per_s": args.n / span}


def cmd_first_start(args: argparse.Namespace) -> dict[str, Any]:
    """Launch a worker and time launch -> first task result (includes imports: bytecode matters)."""
    set_broker(args.broker, "producer")
    app = _app()
    from celery_demo.tasks import noop

    purge(app, ["high_priority"])
    result = noop.apply_async()
    t0 = time.perf_counter()
    worker = Worker(args.broker, args.pool, args.concurrency, "high_priority", venv=Path(args.venv))
    try:
        result.get(timeout=120)
        elapsed = time.perf_counter() - t0
    finally:
        worker.stop()
    return {"first_task_seconds": elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in {
        "drain": cmd_drain,
        "latency": cmd_latency,
        "chord": cmd_chord,
        "sleeps": cmd_sleeps,
        "first-start": cmd_first_start,
    }.items():
        p = sub.add_parser(name)
        p.set_defaults(func=func)
        p.add_argument("--broker", default="safe", choices=["safe", "bare"])
        p.add_argument("--pool", default="prefork")
        p.add_argument("-c", "--concurrency", type=int, default=2)
        p.add_argument("--n", type=int, default=5000)
        p.add_argument("--seconds", type=float, default=0.1)
        p.add_argument("--timeout", type=float, default=300.0)
        p.add_argument("--prefetch", type=int, default=0, help="--prefetch-multiplier; 0: the app's")
        p.add_argument("--venv", default=str(VENV), help="the venv whose celery runs the worker")
    args = parser.parse_args(argv)
    print(json.dumps(args.func(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
