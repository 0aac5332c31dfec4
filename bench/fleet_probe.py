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

With Sentinel (benchmark 9, bench/b_sentinel.py; its producer is the scenarios' own,
molecule/fleet/tests/probe.py) it runs through the app's entry module, ``python -m
celery_fleet_app fleet_probe ...``, which gives the app ``master_name`` and the Sentinels'
password; the Sentinels' addresses and password are read from that configuration:

- ``master``: the master ``ip:port`` most Sentinels name, how many named it, and their
  ``down-after-milliseconds``.
- ``watch OLD --timeout T``: poll every Sentinel (0.1 s) until every one that answers names the
  same master and it is not OLD; print the epoch seconds of that poll and the new master.
- ``settle OLD --timeout T``: wait until every answering Sentinel lists OLD as a replica with no
  down flag and its link to the master up (the old master back in the topology).
- ``throughput MODE --n N --concurrency C --timeout T``: publish N no-ops to a queue of their own,
  then start a prefork worker (C processes) on it and time its drain (first to last ``date_done``,
  the worker's start excluded), as benchmark 4's drain. MODE ``sentinel``: the fleet's
  configuration as it is (sentinel://); ``direct``: the same configuration, credentials and host,
  with broker and result backend as ``redis://<user>:<pw>@<master>:6379/<db>`` (the master the
  Sentinels name now) for the producer and the worker alike. URLs stay in the environment.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.utils import uuid
from celery_demo.app import QUEUES, app
from celery_demo.tasks import PING_TASKS, noop, sleep_task

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


# --- Sentinel (benchmark 9) ----------------------------------------------------------------------


@functools.cache
def sentinel_config() -> tuple[list[tuple[str, int]], str, str | None]:
    """(Sentinel addresses, master name, Sentinels' password) from the app's configuration."""
    hosts = []
    for part in app.conf.broker_url.split(";"):
        url = urlsplit(part.strip())
        # Resolved once: a stopped container's name stops resolving, its address just stops answering.
        # A name that does not resolve now (its container is stopped) stays a name: it cannot answer.
        try:
            address = socket.gethostbyname(url.hostname or "")
        except OSError:
            address = url.hostname or ""
        hosts.append((address, url.port or 26379))
    options = app.conf.broker_transport_options
    return hosts, options["master_name"], (options.get("sentinel_kwargs") or {}).get("password")


def ask_sentinels(command: str, timeout: float = 0.3) -> dict[str, Any]:
    """Each Sentinel's reply to SENTINEL <command> <master name> (None: it did not answer).

    One try each: redis-py 8.1's default (ten retries, backoff up to 1 s) made one poll of a
    Sentinel whose container was stopped last about 7.6 s (eleven connect timeouts and the backoff),
    so ``watch`` stamped the election up to that late (measured: 13.0 s median while the clients'
    first task came after 6.7 s)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    hosts, name, password = sentinel_config()
    replies: dict[str, Any] = {}
    for host, port in hosts:
        client = redis.Redis(
            host, port, password=password, socket_timeout=timeout, socket_connect_timeout=timeout,
            decode_responses=True, retry=Retry(NoBackoff(), 0),
        )  # fmt: skip
        try:
            replies[f"{host}:{port}"] = client.execute_command("SENTINEL", command, name)
        except (redis.RedisError, OSError):
            replies[f"{host}:{port}"] = None
        finally:
            client.close()
    return replies


def fields(reply: Any) -> dict[str, Any]:
    """A Sentinel state (SENTINEL MASTER, an entry of SENTINEL REPLICAS) as a dict: a map under RESP3
    (redis-py 8's default), a flat list of names and values under RESP2."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def named_masters() -> list[str]:
    """The master ``ip:port`` each answering Sentinel names."""
    return [f"{r[0]}:{r[1]}" for r in ask_sentinels("GET-MASTER-ADDR-BY-NAME").values() if r]


def master() -> dict[str, Any]:
    """The master most Sentinels name, and the down-after-milliseconds they run with."""
    named = Counter(named_masters())
    if not named:
        return {"master": None, "named_by": 0}
    address, count = named.most_common(1)[0]
    states = [fields(r) for r in ask_sentinels("MASTER", timeout=1.0).values() if r]
    down_after = sorted({int(state["down-after-milliseconds"]) for state in states})
    return {"master": address, "named_by": count, "answers": sum(named.values()), "down_after_ms": down_after}


def watch(old: str, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    polls = 0
    while time.monotonic() - t0 < timeout:
        polls += 1
        named = set(named_masters())
        if len(named) == 1 and old not in named:
            return {"ok": True, "elected_at": round(time.time(), 3), "master": named.pop(), "polls": polls}
        time.sleep(0.1)
    return {"ok": False, "error": f"no new master named by every Sentinel within {timeout} s"}


def settle(old: str, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    seen: Any = None
    while time.monotonic() - t0 < timeout:
        replies = [r for r in ask_sentinels("REPLICAS", timeout=1.0).values() if r is not None]
        states = []
        for replicas in replies:
            for replica in map(fields, replicas):
                if f"{replica.get('ip')}:{replica.get('port')}" == old:
                    states.append((replica.get("flags"), replica.get("master-link-status")))
        seen = states
        if replies and len(states) == len(replies) and all(s == ("slave", "ok") for s in states):
            return {"ok": True, "seconds": round(time.monotonic() - t0, 1)}
        time.sleep(0.5)
    return {"ok": False, "error": f"{old} not back as a replica within {timeout} s: {seen}"}


def direct_url(url: str, address: str) -> str:
    """The first URL of a ``sentinel://...;sentinel://...`` list as ``redis://`` to ``address``."""
    first = urlsplit(url.split(";")[0].strip())
    userinfo = first.netloc.rpartition("@")[0]
    return f"redis://{userinfo + '@' if userinfo else ''}{address}{first.path}"


def throughput(mode: str, n: int, concurrency: int, timeout: float) -> dict[str, Any]:
    if mode == "direct":
        address = master()["master"]
        if address is None:
            return {"ok": False, "error": "no Sentinel named a master"}
        # Before the app makes its first connection; the worker below inherits the environment.
        for var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            os.environ[var] = direct_url(os.environ[var], address)
        for setting in ("broker_transport_options", "result_backend_transport_options"):
            app.conf[setting] = {
                k: v for k, v in app.conf[setting].items() if k not in ("master_name", "sentinel_kwargs")
            }
    if not app.conf.broker_url.startswith("sentinel://" if mode == "sentinel" else "redis://"):
        return {"ok": False, "error": f"mode {mode}: the broker URL is not what it should be"}
    queue = f"bench_sentinel_{mode}_{uuid()[:8]}"  # its own queue: nothing else consumes it
    t0 = time.perf_counter()
    ids = [noop.apply_async(queue=queue).id for _ in range(n)]
    published = time.perf_counter() - t0
    argv = [str(Path(sys.executable).parent / "celery"), "-A", "celery_fleet_app", "worker",
            "-P", "prefork", "-c", str(concurrency), "-Q", queue, "-n", f"bench-{mode}@%h",
            "--without-mingle", "--without-gossip", "--loglevel", "WARNING"]  # fmt: skip
    log = open(f"/tmp/bench-sentinel-{mode}.log", "ab")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    metas: dict[str, Any] = {}
    try:
        for task_id, meta in app.backend.get_many(set(ids), timeout=timeout, interval=0.2):
            metas[task_id] = meta
    except CeleryTimeoutError:
        pass
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)  # every result is in (or the wait is over)
        worker.wait(timeout=30)
        log.close()
    done = sorted(datetime.fromisoformat(str(m["date_done"])).timestamp() for m in metas.values())
    if len(done) < n:
        return {"ok": False, "error": f"{n - len(done)} of {n} results missing after {timeout} s"}
    span = done[-1] - done[0]
    return {
        "ok": True,
        "mode": mode,
        "n": n,
        "drain_seconds": round(span, 3),
        "tasks_per_s": round((n - 1) / span, 1),
        "published_per_s": round(n / published, 1),
    }


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
    sub.add_parser("master")
    for name in ("watch", "settle"):
        w = sub.add_parser(name)
        w.add_argument("old")
        w.add_argument("--timeout", type=float, default=90.0)
    t = sub.add_parser("throughput")
    t.add_argument("mode", choices=("sentinel", "direct"))
    t.add_argument("--n", type=int, default=2000)
    t.add_argument("--concurrency", type=int, default=2)
    t.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    if args.command == "stream":
        report = stream(args.out, args.stop, args.rate, args.min, args.max_seconds, args.sleep, args.started)
    elif args.command == "collect":
        report = collect(args.ids, args.timeout)
    elif args.command == "master":
        report = master()
    elif args.command == "watch":
        report = watch(args.old, args.timeout)
    elif args.command == "settle":
        report = settle(args.old, args.timeout)
    elif args.command == "throughput":
        report = throughput(args.mode, args.n, args.concurrency, args.timeout)
    else:
        report = ping(args.node, args.ready, args.go, args.timeout)
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
