"""The workers' live check (roles/celery_worker tasks/verify.yml), one process per check.

Run on a worker host by the app's virtualenv python, as the app's user, through the app's
environment wrapper (``<home>/bin/celery-env``): it loads the app as every service of the fleet
does (``celery_fleet_app``: the same broker URL, password, Sentinel and TLS settings, from the
environment file), connects once, and asks Celery's control API over that one connection:

1. ``active_queues`` (a broadcast to the expected nodes, or to every node, with a reply timeout),
   again and again, asking only the nodes still missing, until every expected node has answered
   with its expected queues or the deadline passes;
2. ``stats`` of the expected nodes, again for the nodes missing, until they answered or the
   deadline passes.

It replaces two cold ``celery inspect`` processes per check and one more per retry: each of them
imported Celery and the app again (seconds on a small host). It decides nothing: the controller
compares the replies with the inventory (lib/celery_fleet/live.py) and names what differs.

Request (JSON on stdin; names only, nothing secret)::

    {"nodes": {"<node>": ["<queue>", ...], ...}, "destination": true, "queues": ["<queue>", ...],
     "timeout": 2, "delay": 2, "deadline": 62}

``destination`` false broadcasts ``active_queues`` to every node (the fleet's queue coverage
needs the nodes of hosts not being verified too); then ``queues`` (optional: celery_queues when
the fleet's coverage is checked) must each be consumed by some node before the wait ends.

Result (one JSON object on stdout)::

    {"active_queues": {"<node>": [{"name": "<queue>"}, ...]},
     "stats": {"<node>": {"pool": {...}, "broker": {"transport_options": {...}}}},
     "rounds": 1, "seconds": 0.4, "error": null}

Only the fields the controller checks leave the host: the pool's implementation and
max-concurrency, and the broker's transport options with the secret ones (SECRET_OPTIONS, the
Sentinels' password in ``sentinel_kwargs``) reduced to their key names. ``error`` is the last
failure to reach the broker when some node is still missing.

Keep it free of anything but the standard library and Celery: it runs in the app's virtualenv.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# As lib/celery_fleet/broker.py SECRET_OPTIONS (tests/unit/test_live_check.py keeps them equal).
SECRET_OPTIONS = frozenset({"sentinel_kwargs"})
NOT_SHOWN = "<set, not shown>"

# ask(command, nodes or None, timeout) -> {node: reply}; raises on a broker failure.
Ask = Callable[[str, "list[str] | None", float], Mapping[str, Any]]


class RequestError(ValueError):
    """The request on stdin is not what tasks/verify.yml sends."""


def read_request(text: str) -> dict[str, Any]:
    """The request, checked: expected nodes with their queues and the three durations."""
    try:
        request = json.loads(text)
    except ValueError as exc:
        raise RequestError(f"the request is not JSON: {exc}") from exc
    if not isinstance(request, dict) or not isinstance(request.get("nodes"), dict):
        raise RequestError("the request must be a JSON object with 'nodes' (node name -> queues)")
    for node, queues in request["nodes"].items():
        if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
            raise RequestError(f"node {node!r}: queues must be a list of names")
    for key in ("timeout", "delay", "deadline"):
        value = request.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RequestError(f"'{key}' must be a number of seconds >= 0, not {value!r}")
    queues = request.setdefault("queues", [])
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        raise RequestError("'queues' must be a list of queue names")
    request["destination"] = bool(request.get("destination", True))
    return request


def queue_names(reply: Any) -> list[str]:
    """The queue names of one node's ``active_queues`` reply, sorted."""
    if not isinstance(reply, list):
        return []
    return sorted(str(q.get("name", "")) for q in reply if isinstance(q, Mapping))


def pending(expected: Mapping[str, Sequence[str]], replies: Mapping[str, Any]) -> list[str]:
    """The expected nodes that have not answered, or answered with other queues than expected."""
    return [
        node
        for node, queues in expected.items()
        if node not in replies or queue_names(replies[node]) != sorted(queues)
    ]


def hidden(value: Any) -> Any:
    """A secret option's value without the secret: its key names (a mapping) or a marker."""
    if isinstance(value, Mapping):
        return {str(key): NOT_SHOWN for key in value}
    return NOT_SHOWN if value else value


def reduced_stats(stats: Any) -> dict[str, Any]:
    """What the controller checks of a node's ``stats`` reply, and nothing else."""
    if not isinstance(stats, Mapping):
        return {}
    pool = stats.get("pool") if isinstance(stats.get("pool"), Mapping) else {}
    broker = stats.get("broker") if isinstance(stats.get("broker"), Mapping) else {}
    result: dict[str, Any] = {
        "pool": {key: pool[key] for key in ("implementation", "max-concurrency") if key in pool}
    }
    options = broker.get("transport_options")
    if isinstance(options, Mapping):
        result["broker"] = {
            "transport_options": {
                str(key): hidden(value) if key in SECRET_OPTIONS else value for key, value in options.items()
            }
        }
    return result


def uncovered(queues: Sequence[str], replies: Mapping[str, Any]) -> list[str]:
    """The queues of ``queues`` that no node consumes in ``replies``."""
    consumed = {name for reply in replies.values() for name in queue_names(reply)}
    return [q for q in queues if q not in consumed]


def check(
    request: Mapping[str, Any],
    ask: Ask,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Ask ``active_queues`` then ``stats`` until the expected nodes answered as expected (and,
    with ``queues``, every one of them is consumed) or the deadline passed, at least one round
    each; the result described in the module's docstring."""
    expected: dict[str, list[str]] = dict(request["nodes"])
    coverage: list[str] = list(request.get("queues") or [])
    everyone = not request["destination"]
    timeout = float(request["timeout"])
    delay = float(request["delay"])
    started = clock()
    deadline = started + float(request["deadline"])
    queues: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    error: str | None = None
    rounds = 0

    def missing_queues() -> list[str]:
        # Coverage is waited for only when every node is asked: with a destination, the other
        # nodes' queues are not asked, and the declared ones answered as declared.
        return pending(expected, queues) + (uncovered(coverage, queues) if everyone else [])

    def missing_stats() -> list[str]:
        return [node for node in expected if node not in stats]

    def ask_until(
        command: str, missing: Callable[[], list[str]], store: dict[str, Any], broadcast: bool
    ) -> None:
        nonlocal error, rounds
        first = True
        while first or missing():
            first = False
            round_started = clock()
            rounds += 1
            try:
                # Only the nodes still missing: the broadcast returns as soon as they all answered.
                nodes = None if broadcast else [node for node in expected if node in missing()]
                store.update(ask(command, nodes, timeout))
                error = None
            # Any failure to reach the broker (kombu, redis-py, OS errors): retried, then reported.
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if not missing() or clock() >= deadline:
                return
            sleep(max(0.0, min(delay - (clock() - round_started), deadline - clock())))

    if expected or everyone:
        ask_until("active_queues", missing_queues, queues, everyone)
    if expected:
        ask_until("stats", missing_stats, stats, False)
    return {
        "active_queues": {
            node: [{"name": name} for name in queue_names(reply)] for node, reply in queues.items()
        },
        "stats": {node: reduced_stats(reply) for node, reply in stats.items() if node in expected},
        "rounds": rounds,
        "seconds": round(clock() - started, 2),
        "error": error if missing_queues() or missing_stats() else None,
    }


def celery_ask(app: Any) -> Ask:
    """``ask`` as ``celery inspect --json --destination ... --timeout ...`` would, over one broker
    connection kept for every round (a new one only after a failure)."""
    held: list[Any] = []

    def release() -> None:
        if held:
            with contextlib.suppress(Exception):
                held.pop().release()

    def ask(command: str, nodes: list[str] | None, timeout: float) -> Mapping[str, Any]:
        if not held:
            held.append(app.connection_for_write())
        try:
            inspect = app.control.inspect(destination=nodes, timeout=timeout, connection=held[0])
            return getattr(inspect, command)() or {}
        except Exception:
            release()
            raise

    ask.release = release  # type: ignore[attr-defined]
    return ask


def main() -> int:
    out = sys.stdout
    # The app's import or Celery may print: only the result goes to stdout.
    sys.stdout = sys.stderr
    try:
        request = read_request(sys.stdin.read())
    except RequestError as exc:
        print(f"celery_fleet_live: {exc}", file=sys.stderr)
        return 2
    # The app as every service of the fleet loads it (CELERY_FLEET_CONFIG from the environment file).
    from celery_fleet_app import app

    ask = celery_ask(app)
    try:
        result = check(request, ask)
    finally:
        ask.release()  # type: ignore[attr-defined]
    out.write(json.dumps(result, sort_keys=True) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
