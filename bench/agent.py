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
# Key prefix of the bench's broker: none, celery-fleet's default (roles/redis, no key scoping).
PREFIX = ""


def brokers(name: str) -> dict[str, str]:
    return json.loads((BENCH / "brokers.json").read_text())[name]


def set_broker(name: str, role: str) -> dict[str, str]:
    """Point this process (and the worker's environment) at broker `name` as user `role`."""
    url = brokers(name)[role]
    env = {
        "CELERY_BROKER_URL": url,
        "CELERY_RESULT_BACKEND": url,
    }
    os.environ.update(env)
    return env


def broker_options_arg(environ: dict[str, str], max_connections: int) -> str:
    """The worker's command-line config that raises kombu's per-channel Redis connection limit.

    Celery reads ``key=value`` assignments after a bare ``--``; a dict needs the ``(json)`` cast
    (a bare ``{...}`` is refused: ``dict('{...}')`` is a ValueError). The value replaces the app's
    broker_transport_options (the example app sets none); the visibility timeout is kombu's default,
    as the fleet's entry module sets it when none is declared."""
    options = {"visibility_timeout": 3600, "max_connections": max_connections}
    return "broker_transport_options=(json)" + json.dumps(options, separators=(",", ":"))


# Celery reads a setting it has no declared type for only with a cast: (bool) is strtobool.
GREEN_POOL_BACKEND_ARG = "result_backend_thread_safe=(bool)true"


class Worker:
    """A celery worker child process: started on demand, stopped (TERM, then KILL) within bounds."""

    def __init__(
        self,
        broker: str,
        pool: str,
        concurrency: int,
        queues: str,
        venv: Path = VENV,
        prefetch: int = 0,
        max_connections: int = 0,
        mingle: bool = True,
        shared_backend: bool = True,
    ) -> None:
        env = dict(os.environ)
        env.update(set_broker(broker, "worker"))
        env["PYTHONPATH"] = str(BENCH / "app")
        # -E like the fleet's workers (events on by default in celery_worker).
        argv = [
            str(venv / "bin" / "celery"),
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
        if not mingle:  # mingle waits ~1 s for other workers' replies at start, before consuming
            argv += ["--without-mingle"]
        if max_connections:  # 0: kombu's default (10 per channel)
            # The fleet's green-pool settings, as its entry module sets them whenever the worker's
            # unit gives CELERY_FLEET_MAX_CONNECTIONS (roles/celery_app/files/celery_fleet_app.py,
            # green_pool_settings): also one result backend for all the greenlets (without it every
            # task built a backend and opened a Redis connection to store its result; shared_backend
            # False measures that, for comparison).
            argv += ["--", broker_options_arg(env, max_connections)]
            argv += [GREEN_POOL_BACKEND_ARG] if shared_backend else []
        self.log_path = BENCH / "worker.log"
        # Where this worker's lines start in the shared log, to count its own errors afterwards.
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        # Its own process group, so that stop(kill=True) reaches prefork's pool children too.
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, timeout: float = 30.0, kill: bool = False) -> None:
        """Warm shutdown (TERM, KILL after `timeout`), or with `kill` SIGKILL to the whole group at
        once: for samples whose results are all in, where a warm stop only costs wall time (up to
        4 s for gevent c=100). Messages whose ack failed then stay in the unacked hash, where
        in_broker() finds them."""
        if kill and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()

    def errors(self) -> dict[str, Any]:
        """This worker's failed acks and Redis pool exhaustions, from its part of the log."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            text = log.read().decode(errors="replace")
        lines = [line for line in text.splitlines() if "Error" in line or "CRITICAL" in line]
        return {
            "failed_acks": sum("Couldn't ack" in line for line in lines),
            "max_connections_errors": sum(
                line.startswith("redis.exceptions.MaxConnectionsError") for line in lines
            ),
            "last_error": next((line[-200:] for line in reversed(lines) if "Error" in line), ""),
        }


def _app():
    sys.path.insert(0, str(BENCH / "app"))
    from celery_demo.app import app

    return app


def purge(app: Any, queues: list[str]) -> None:
    client = app.backend.client
    # Results of earlier samples stay until result_expires; each sample reads only its own ids.
    for queue in queues:
        client.delete(f"{PREFIX}{queue}")


def in_broker(broker: str, queue: str) -> set[str]:
    """Ids of the tasks whose messages the broker still holds (queue list and unacked hash), read as
    the admin user (the fleet's users may not LRANGE/HVALS), then cleared so that no later sample
    sees them. After a sample, a task that has a result and is still here will run again (its ack
    failed); a task with no result that is not here was lost."""
    import redis

    client = redis.Redis.from_url(brokers(broker)["admin"])
    try:
        keys = [f"{PREFIX}{queue}", f"{PREFIX}unacked"]
        raw = [json.loads(m) for m in client.lrange(keys[0], 0, -1)]
        raw += [json.loads(v)[0] for v in client.hvals(keys[1])]
        client.delete(*keys, f"{PREFIX}unacked_index")
    finally:
        client.close()
    return {m["headers"]["id"] for m in raw}


def _accounting(app: Any, broker: str, queue: str, ids: list[str]) -> dict[str, int]:
    """After the worker stopped: results in, tasks that ran and will run again, tasks lost."""
    held = in_broker(broker, queue)
    metas = read_metas(app, ids)
    done = {i for i, m in zip(ids, metas, strict=True) if m and m["status"] in ("SUCCESS", "FAILURE")}
    return {"results": len(done), "ran_twice": len(held & done), "lost": len(set(ids) - done - held)}


def read_metas(app: Any, ids: list[str]) -> list[dict[str, Any] | None]:
    """The decoded result metas of `ids` as they are now (None: no result yet)."""
    client = app.backend.client
    keys = [f"{PREFIX}celery-task-meta-{i}" for i in ids]
    values: list[Any] = []
    for start in range(0, len(keys), 1000):
        values += client.mget(keys[start : start + 1000])
    return [json.loads(v) if v is not None else None for v in values]


def wait_results(app: Any, ids: list[str], timeout: float, cap: float = 0.0) -> list[dict[str, Any]]:
    """Poll the result backend until every id has a result; return the decoded metas.

    With `cap` (seconds, 0: none), return what is there after `cap` seconds instead: the metas
    of unfinished tasks are None or not ready (the caller counts what finished)."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        metas = read_metas(app, ids)
        # task_track_started writes a STARTED meta first: only a ready state counts.
        missing = sum(m is None or m.get("status") not in ("SUCCESS", "FAILURE") for m in metas)
        if missing == 0:
            failed = sum(m["status"] == "FAILURE" for m in metas)
            if failed:
                raise RuntimeError(f"{failed} of {len(ids)} tasks failed")
            return metas
        if cap and time.monotonic() - started > cap:
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
    in_broker(args.broker, "high_priority")
    t0 = time.perf_counter()
    ids = [noop.apply_async().id for _ in range(args.n)]
    publish = time.perf_counter() - t0
    worker = Worker(
        args.broker, args.pool, args.concurrency, "high_priority", prefetch=args.prefetch,
        max_connections=args.max_connections, mingle=args.mingle == "yes",
        shared_backend=args.shared_backend == "yes",
    )  # fmt: skip
    try:
        metas = wait_results(app, ids, args.timeout)
    finally:
        worker.stop(kill=args.stop == "kill")
    done = sorted(_ts(m["date_done"]) for m in metas)
    span = done[-1] - done[0]
    return {
        "n": args.n,
        "drain_seconds": span,
        "tasks_per_s": (args.n - 1) / span,
        "published_per_s": args.n / publish,
        **worker.errors(),
        **_accounting(app, args.broker, "high_priority", ids),
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


def _idle(results: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Stalls of the consumer: intervals of the run in which no task was running at all."""
    spans = sorted((r["started"], r["finished"]) for r in results)
    gaps = []
    end = spans[0][1]
    for start, finish in spans[1:]:
        if start > end:
            gaps.append(start - end)
        end = max(end, finish)
    stalls = [g for g in gaps if g > seconds]
    return {"stalls": len(stalls), "stall_seconds": sum(stalls), "longest_stall": max(gaps, default=0.0)}


def cmd_sleeps(args: argparse.Namespace) -> dict[str, Any]:
    """Preload N sleeps of `seconds`, start a worker, time first start to last finish."""
    set_broker(args.broker, "producer")
    app = _app()
    from celery_demo.tasks import sleep_task

    t0 = time.time()
    purge(app, ["low_priority"])
    in_broker(args.broker, "low_priority")
    ids = [sleep_task.apply_async(kwargs={"seconds": args.seconds}).id for _ in range(args.n)]
    t_launch = time.time()
    worker = Worker(
        args.broker, args.pool, args.concurrency, "low_priority", prefetch=args.prefetch,
        max_connections=args.max_connections, mingle=args.mingle == "yes",
        shared_backend=args.shared_backend == "yes",
    )  # fmt: skip
    error = None
    metas: list[dict[str, Any]] = []
    try:
        metas = wait_results(app, ids, args.timeout, cap=args.cap)
    except (TimeoutError, RuntimeError) as exc:
        error = exc
    finally:
        t_seen = time.time()
        worker.stop(kill=args.stop == "kill")
    finished = [m for m in metas if m is not None and m.get("status") == "SUCCESS"]
    out: dict[str, Any] = {
        "n": args.n,
        "finished": len(finished),
        "capped": error is None and len(finished) < args.n,
        "task_failures": sum(m is not None and m.get("status") == "FAILURE" for m in metas),
        **worker.errors(),
        # Counted after the stop (a task may finish between the last poll and the kill).
        **_accounting(app, args.broker, "low_priority", ids),
        # Where the wall time of the sample went (the measured span excludes start and stop).
        "wall": {"publish": t_launch - t0, "until_results": t_seen - t_launch, "stop": time.time() - t_seen},
    }
    if error is not None:  # the caller records the failure with its reason
        out["error"] = f"{type(error).__name__}: {error}"
        return out
    if len(finished) < 2:
        out["error"] = f"only {len(finished)} of {args.n} tasks finished within the {args.cap} s cap"
        return out
    results = [m["result"] for m in finished]
    first = min(r["started"] for r in results)
    # A capped sample counts the time up to the cap (the clock of the tasks is this host's): the
    # last finish would leave out the stall in progress and flatter the rate.
    span = (t_seen if out["capped"] else max(r["finished"] for r in results)) - first
    out["wall"]["start"] = first - t_launch
    rate = len(results) / span
    return {**out, "span_seconds": span, "tasks_per_s": rate, **_idle(results, args.seconds)}


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
        p.add_argument("--cap", type=float, default=0.0, help="sleeps: stop waiting after this many s")
        p.add_argument("--mingle", default="yes", choices=["yes", "no"], help="no: --without-mingle")
        p.add_argument("--stop", default="warm", choices=["warm", "kill"], help="how the worker is stopped")
        p.add_argument(
            "--max-connections",
            type=int,
            default=0,
            help="broker transport option max_connections; 0: kombu's",
        )
        p.add_argument(
            "--shared-backend",
            default="yes",
            choices=["yes", "no"],
            help="with --max-connections: result_backend_thread_safe as the fleet sets it (no: not set)",
        )
    args = parser.parse_args(argv)
    print(json.dumps(args.func(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
