"""Compare what the running fleet reports through Celery's control API with what was declared.

Input is what ``celery inspect --json active_queues`` and ``celery inspect --json stats`` print
(node name -> reply), the declared workers per inventory host and each host's node name (its
``ansible_facts['nodename']``). Output is a list of messages, one per difference, each naming the
host, the worker and what differs; an empty list means the fleet runs as declared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from celery_fleet.broker import expected_broker_options, option_errors
from celery_fleet.workers import declared_concurrency, green_max_connections, node_name, normalize_worker

__all__ = [
    "declared_concurrency",
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
    ``{"sentinels": celery_broker_sentinels, "master_name": celery_broker_master_name}``; with
    Sentinels the connection must also carry ``master_name``, the failover settings and a
    ``sentinel_kwargs`` (checked without its value, never printed: broker.option_errors).
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
    visibility_timeout, key_prefix, sentinels, master_name)."""
    return live_errors(
        {e["host"]: e.get("workers") for e in entries},
        {e["host"]: e.get("nodename") or e["host"] for e in entries},
        active_queues,
        stats,
        queues,
        {e["host"]: e.get("visibility_timeout") for e in entries},
        {e["host"]: e.get("key_prefix") or "" for e in entries},
        {e["host"]: {"sentinels": e.get("sentinels"), "master_name": e.get("master_name")} for e in entries},
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
