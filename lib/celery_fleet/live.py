"""Compare what the running fleet reports through Celery's control API with what was declared.

Input is what Celery's ``active_queues`` and ``stats`` replies hold (node name -> reply), as the
live check's process prints them (roles/celery_worker files/celery_fleet_live.py; ``celery inspect
--json`` prints the same shape), the declared workers per inventory host and each host's node name
(its ``ansible_facts['nodename']``). Output is a list of messages, one per difference, each naming the
host, the worker and what differs; an empty list means the fleet runs as declared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from celery_fleet.broker import expected_broker_options, option_errors
from celery_fleet.workers import declared_concurrency, green_max_connections, node_name, normalize_worker

__all__ = [
    "check_errors",
    "declared_concurrency",
    "live_check_reply",
    "live_check_request",
    "live_errors",
    "pool_name",
    "silent_services",
    "verify_errors",
    "verify_nodes",
]


def pool_name(implementation: str) -> str:
    """``celery.concurrency.prefork:TaskPool`` -> ``prefork`` (the threads pool's module is ``thread``)."""
    module = implementation.split(":", 1)[0].rsplit(".", 1)[-1]
    return "threads" if module == "thread" else module


def _worker_errors(
    host: str,
    worker: Mapping[str, Any],
    node: str,
    queues: Sequence[Mapping[str, Any]] | None,
    stats: Any,
    options: Mapping[str, Any] | None,
) -> list[str]:
    where = f"host '{host}', worker '{worker['name']}' (node {node})"
    if queues is None or not isinstance(stats, Mapping):
        return [f"{where}: did not answer the control API (is its service running?)"]
    live_pool = pool_name(str(stats.get("pool", {}).get("implementation", "")))
    live_concurrency = stats.get("pool", {}).get("max-concurrency")
    live_queues = sorted(q.get("name", "") for q in queues)
    errors = []
    if live_pool != worker["pool"]:
        errors.append(f"{where}: declared pool {worker['pool']}, running pool {live_pool}")
    wanted_concurrency = declared_concurrency(worker)
    if live_concurrency != wanted_concurrency:
        errors.append(
            f"{where}: declared concurrency {wanted_concurrency}, running concurrency {live_concurrency}"
        )
    wanted_queues = sorted(worker["queues"])
    if live_queues != wanted_queues:
        errors.append(
            f"{where}: declared queues {','.join(wanted_queues)}, consuming {','.join(live_queues)}"
        )
    if options is not None:
        # What the worker's broker connection really uses (stats' broker info, password removed by
        # Celery): the fleet's options must have reached it through the entry module.
        expected = dict(options)
        limit = green_max_connections(worker)
        if limit is not None:
            expected["max_connections"] = limit
        running = stats.get("broker", {})
        errors.extend(
            option_errors(
                where, expected, running.get("transport_options") if isinstance(running, Mapping) else None
            )
        )
    return errors


def live_errors(
    workers_by_host: Mapping[str, Sequence[Mapping[str, Any]] | None],
    nodename_by_host: Mapping[str, str],
    active_queues: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    stats: Mapping[str, Any] | None,
    queues: Sequence[str] | None = None,
    visibility_by_host: Mapping[str, Any] | None = None,
    prefix_by_host: Mapping[str, Any] | None = None,
    sentinel_by_host: Mapping[str, Any] | None = None,
) -> list[str]:
    """Every difference between the declared workers and the running fleet.

    ``queues`` (the app's ``celery_queues``) adds one message per queue that no running node
    consumes; ``None`` skips that check (for a partial run such as ``--limit``). ``visibility_by_host`` and
    ``prefix_by_host``: each host's ``celery_broker_visibility_timeout`` (None: the default) and
    ``celery_broker_key_prefix``; each worker's running connection must carry the options the fleet
    derives from them (broker.transport_options) and a green pool's ``max_connections``. Without
    ``visibility_by_host`` the options are not checked. ``sentinel_by_host``: each host's
    ``{"sentinels": celery_broker_sentinels, "master_name": celery_broker_master_name, "tls": the
    client's TLS switch}``; with Sentinels the connection must also carry ``master_name``, the
    failover settings and a ``sentinel_kwargs`` (checked without its value, never printed:
    broker.option_errors), with TLS one that has the TLS keys.
    """
    active_queues = active_queues or {}
    stats = stats or {}
    errors: list[str] = []
    for host, workers in workers_by_host.items():
        for raw in workers or []:
            worker = normalize_worker(raw)
            if worker["state"] != "present":
                continue
            node = node_name(worker["hostname"], nodename_by_host.get(host, host))
            options = None
            if visibility_by_host is not None:
                sentinel = (sentinel_by_host or {}).get(host) or {}
                options = expected_broker_options(
                    visibility_by_host.get(host),
                    (prefix_by_host or {}).get(host, ""),
                    sentinel.get("sentinels"),
                    sentinel.get("master_name"),
                    sentinel.get("tls") is True,
                )
            errors.extend(
                _worker_errors(host, worker, node, active_queues.get(node), stats.get(node), options)
            )
    if queues is not None:
        consumed = {q.get("name") for replies in active_queues.values() for q in replies or []}
        missing = [q for q in queues if q not in consumed]
        if missing:
            errors.append(f"celery_queues: no running worker consumes {', '.join(missing)}")
    return errors


# --- One verification over several hosts (roles/celery_worker tasks/verify.yml) -------------------
# Each host of the batch (or of the fleet, for playbooks/verify.yml) contributes one entry: what it
# declares and how its services are named; one `celery inspect` then answers for all of them.


def verify_nodes(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every node name the hosts of ``entries`` must run, in host order."""
    return [node for entry in entries for node in entry.get("nodes") or []]


def verify_errors(
    entries: Sequence[Mapping[str, Any]],
    active_queues: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    stats: Mapping[str, Any] | None,
    queues: Sequence[str] | None = None,
) -> list[str]:
    """``live_errors`` for the hosts of ``entries`` (keys: host, nodename, workers,
    visibility_timeout, key_prefix, sentinels, master_name, tls)."""
    return live_errors(
        {e["host"]: e.get("workers") for e in entries},
        {e["host"]: e.get("nodename") or e["host"] for e in entries},
        active_queues,
        stats,
        queues,
        {e["host"]: e.get("visibility_timeout") for e in entries},
        {e["host"]: e.get("key_prefix") or "" for e in entries},
        {
            e["host"]: {
                "sentinels": e.get("sentinels"),
                "master_name": e.get("master_name"),
                "tls": e.get("tls"),
            }
            for e in entries
        },
    )


def silent_services(
    entries: Sequence[Mapping[str, Any]], active_queues: Mapping[str, Any] | None
) -> list[dict[str, str]]:
    """The services whose node did not answer, with the host that runs them and its process manager
    (keys: host, service, manager), so their logs can be read where they are."""
    answered = set(active_queues or {})
    return [
        {"host": entry["host"], "service": service, "manager": entry.get("manager") or "systemd"}
        for entry in entries
        for node, service in zip(entry.get("nodes") or [], entry.get("services") or [], strict=True)
        if node not in answered
    ]


# --- The live check's process on the asking host (roles/celery_worker files/celery_fleet_live.py) ---
# tasks/verify.yml sends it a request on stdin and reads one JSON object back; verify_errors then
# compares the replies with the inventory.


def live_check_request(
    entries: Sequence[Mapping[str, Any]],
    destination: bool,
    queues: Sequence[str] | None,
    timeout: float,
    retries: int,
    delay: float,
) -> dict[str, Any]:
    """What the live check asks: every declared node with its declared queues (sorted), whether the
    broadcast goes only to them (``destination``) or to every node, the fleet's queues to find
    consumed (with ``destination`` false), the reply timeout, the pause between rounds and a
    deadline as long as the wait of ``retries`` retries of cold ``celery inspect`` calls
    (``(retries + 1) * timeout + retries * delay``), now spent asking instead of starting."""
    nodes: dict[str, list[str]] = {}
    for entry in entries:
        for node, raw in zip(entry.get("nodes") or [], entry.get("workers") or [], strict=True):
            nodes[node] = sorted(normalize_worker(raw)["queues"])
    timeout, delay, retries = float(timeout), float(delay), int(retries)
    return {
        "nodes": nodes,
        "destination": bool(destination),
        "queues": list(queues or []),
        "timeout": timeout,
        "delay": delay,
        "deadline": (retries + 1) * timeout + retries * delay,
    }


def live_check_reply(stdout: Any, stderr: Any = "", rc: Any = 0) -> dict[str, Any]:
    """What the live check printed: ``active_queues`` and ``stats`` by node (empty when nothing
    answered), ``rounds``, ``seconds`` and ``error`` (None, or why the check could not ask: its
    last line on stderr when it printed no result, e.g. the app failing to import)."""
    reply: Any = None
    # Its last line (the process sends anything else it or the app prints to stderr).
    lines = stdout.strip().splitlines() if isinstance(stdout, str) else []
    if lines and lines[-1].startswith("{"):
        try:
            reply = json.loads(lines[-1])
        except ValueError:
            reply = None
    if not isinstance(reply, Mapping):
        lines = [line.strip() for line in str(stderr or "").splitlines() if line.strip()]
        cause = lines[-1][:300] if lines else "no output"
        return {
            "active_queues": {},
            "stats": {},
            "rounds": 0,
            "seconds": 0.0,
            "error": f"the live check printed no result (exit status {rc}): {cause}",
        }
    by_node = {
        key: reply.get(key) if isinstance(reply.get(key), Mapping) else {}
        for key in ("active_queues", "stats")
    }
    return {
        **by_node,
        "rounds": reply.get("rounds", 0),
        "seconds": reply.get("seconds", 0.0),
        "error": reply.get("error") or None,
    }


def check_errors(
    entries: Sequence[Mapping[str, Any]], reply: Mapping[str, Any], queues: Sequence[str] | None = None
) -> list[str]:
    """``verify_errors`` for the live check's ``reply`` (live_check_reply), led by why the check
    could not ask when it says so."""
    errors = verify_errors(entries, reply.get("active_queues"), reply.get("stats"), queues)
    if reply.get("error") and errors:
        host = entries[0]["host"] if entries else "?"
        errors.insert(
            0, f"host '{host}': the live check could not ask every worker through Celery: {reply['error']}"
        )
    return errors
