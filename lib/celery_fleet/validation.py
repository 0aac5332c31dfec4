"""Rules that span workers and hosts: run once over the whole inventory before any host changes.

Node names: a worker's ``hostname`` (default ``<name>@%h``) is expanded with the *inventory host
name* standing for the machine's host name (%h), its first label (%n) and the rest (%d). This
assumes inventory names are the machines' host names (or at least distinct where those are); two
inventory aliases of one machine would escape the check.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from celery_fleet.errors import Problem
from celery_fleet.workers import QUEUE_NAME_RE, check_worker, embeds_beat, format_seconds, node_name

# kombu's Redis transport default visibility_timeout (seconds).
DEFAULT_VISIBILITY_TIMEOUT = 3600


def validate_fleet(
    workers_by_host: Mapping[str, Any],
    queues: list[str] | None,
    visibility_timeout: int | Mapping[str, int | None] | None,
    beat_hosts: list[str],
    broker_by_host: Mapping[str, str] | None = None,
) -> list[str]:
    """Every problem of the fleet as a message, one a line; an empty list when the fleet is valid.

    ``workers_by_host``: inventory host -> its ``celery_workers`` list. ``queues``: the queues the app
    routes to (``celery_queues``), None to skip the coverage check. ``visibility_timeout``: the Redis
    transport option in seconds, for every host or per host (None: kombu's 3600). ``beat_hosts``: the
    ``celery_beat`` group. ``broker_by_host``: host -> broker address or URL (credentials are dropped,
    never printed; unset hosts share one unnamed broker); the visibility rule compares only workers
    sharing a broker (without it every host shares one).
    """
    problems: list[Problem] = []
    present: list[tuple[str, dict[str, Any]]] = []  # (host, spec) of valid present workers
    invalid_queues: set[str] = set()  # queues of invalid workers: reported already, count as covered

    if not isinstance(workers_by_host, Mapping):
        return [str(Problem("celery_workers", "expected a mapping of inventory host to worker list"))]
    for host, workers in workers_by_host.items():
        if not isinstance(workers, list | tuple):
            problems.append(Problem("celery_workers", "is not a list of worker mappings", host=str(host)))
            continue
        names: dict[str, int] = defaultdict(int)
        for index, worker in enumerate(workers, start=1):
            spec, errors = check_worker(worker, index)
            problems.extend(p.on_host(host) for p in errors)
            if isinstance(worker, Mapping) and isinstance(worker.get("name"), str):
                names[worker["name"]] += 1
            if spec is None or spec["state"] != "present":
                continue
            if errors:
                invalid_queues.update(spec["queues"])
            else:
                present.append((host, spec))
        for name, count in names.items():
            if count > 1:
                problems.append(
                    Problem(
                        "name",
                        f"{name!r} is declared {count} times; worker names must be unique per host "
                        "(each names a service)",
                        name,
                        host,
                    )
                )

    problems.extend(_node_name_problems(present))
    problems.extend(_queue_coverage_problems(queues, present, invalid_queues))
    problems.extend(_visibility_problems(visibility_timeout, present, broker_by_host))
    problems.extend(_beat_problems(beat_hosts, present))
    return [str(p) for p in problems]


def _node_name_problems(present: list[tuple[str, dict[str, Any]]]) -> list[Problem]:
    first: dict[str, tuple[str, str]] = {}
    problems = []
    for host, spec in present:
        node = node_name(spec["hostname"], host)
        seen = first.setdefault(node, (host, spec["name"]))
        if seen == (host, spec["name"]):
            continue  # itself, or a duplicate name on one host (reported as such)
        problems.append(
            Problem(
                "hostname",
                f"{spec['hostname']!r} expands to node name {node!r}, as does worker '{seen[1]}' on host "
                f"'{seen[0]}'; node names must be unique in the fleet (use %h in hostname)",
                spec["name"],
                host,
            )
        )
    return problems


def _queue_coverage_problems(
    queues: Any, present: list[tuple[str, dict[str, Any]]], invalid_queues: set[str]
) -> list[Problem]:
    if queues is None:
        return []
    if not isinstance(queues, list | tuple):
        return [Problem("celery_queues", f"{queues!r} is not a list of queue names")]
    consumed = invalid_queues | {queue for _, spec in present for queue in spec["queues"]}
    problems = []
    for queue in queues:
        if not isinstance(queue, str) or not QUEUE_NAME_RE.match(queue):
            problems.append(Problem("celery_queues", f"{queue!r} is not a valid queue name"))
        elif queue not in consumed:
            problems.append(
                Problem(
                    "celery_queues",
                    f"queue {queue!r} is consumed by no present worker on any host; tasks routed to it "
                    "would wait forever: add it to some worker's queues",
                )
            )
    return problems


def _visibility_problems(
    visibility_timeout: Any,
    present: list[tuple[str, dict[str, Any]]],
    broker_by_host: Mapping[str, str] | None,
) -> list[Problem]:
    hosts = sorted({host for host, _ in present})
    per_host: dict[str, int] = {}
    problems: list[Problem] = []
    for host in hosts:
        value = (
            visibility_timeout.get(host) if isinstance(visibility_timeout, Mapping) else visibility_timeout
        )
        if value is None:
            value = DEFAULT_VISIBILITY_TIMEOUT
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(
                Problem(
                    "celery_broker_visibility_timeout",
                    f"{value!r} is not an integer >= 1 (seconds)",
                    host=host,
                )
            )
            continue
        per_host[host] = value
    if problems:
        return problems

    def broker(host: str) -> str:
        return _broker_key((broker_by_host or {}).get(host))

    # The message comes back after the *shortest* timeout among the clients of its broker.
    shortest: dict[str, tuple[int, str]] = {}
    for host, value in per_host.items():
        key = broker(host)
        if key not in shortest or value < shortest[key][0]:
            shortest[key] = (value, host)
    for host, spec in present:
        if spec["time_limit"] is None:
            continue
        timeout, timeout_host = shortest[broker(host)]
        limit = format_seconds(spec["time_limit"])
        if spec["time_limit"] >= timeout:
            problems.append(
                Problem(
                    "time_limit",
                    f"{limit} s is not below celery_broker_visibility_timeout {timeout} s "
                    f"(host '{timeout_host}', same broker): a task running longer is delivered again and "
                    f"runs twice; raise the visibility timeout above {limit}",
                    spec["name"],
                    host,
                )
            )
    return problems


def _broker_key(value: Any) -> str:
    """A broker's identity without credentials: 'redis://u:pw@h:6379/0' -> 'h:6379/0'; unset -> ''."""
    if not isinstance(value, str) or not value:
        return ""
    if "://" not in value:
        return value
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or ''}:{port or ''}{parts.path}"


def _beat_problems(beat_hosts: Any, present: list[tuple[str, dict[str, Any]]]) -> list[Problem]:
    if not isinstance(beat_hosts, list | tuple):
        return [Problem("celery_beat", f"{beat_hosts!r} is not a list of inventory hosts")]
    problems = []
    if len(beat_hosts) > 1:
        listed = ", ".join(f"'{h}'" for h in beat_hosts)
        problems.append(
            Problem(
                "celery_beat",
                f"{len(beat_hosts)} hosts ({listed}) run beat; at most 1 is allowed: every beat sends each "
                "periodic task, so they would run once per beat",
            )
        )
    embedded = [(host, spec["name"]) for host, spec in present if embeds_beat(spec)]
    for host, name in embedded:
        if beat_hosts:
            detail = f"'-B' embeds a beat while group celery_beat has '{beat_hosts[0]}'; remove it"
        elif len(embedded) > 1:
            others = ", ".join(f"'{n}' on '{h}'" for h, n in embedded if (h, n) != (host, name))
            detail = f"'-B' is also set on {others}; at most 1 worker in the fleet may embed beat"
        else:
            continue
        problems.append(Problem("extra_args", detail, name, host))
    return problems


def validate_entries(entries: Any, queues: list[str] | None, fleet_hosts: Any) -> list[str]:
    """:func:`validate_fleet` over the entries each worker host published (roles/celery_worker).

    ``entries``: ``{"host", "workers", "visibility_timeout"}`` of each fleet host that has run the
    role's validate step. Queue coverage needs every host of ``fleet_hosts``: under ``--limit`` (some
    entries missing) it is skipped and left to playbooks/validate.yml.
    """
    if not isinstance(entries, list | tuple) or not all(isinstance(e, Mapping) for e in entries):
        return [str(Problem("celery_workers", "the published worker entries are not a list of mappings"))]
    hosts = [e.get("host") for e in entries]
    complete = isinstance(fleet_hosts, list | tuple) and len(hosts) == len(fleet_hosts)
    return validate_fleet(
        {e.get("host"): e.get("workers") for e in entries},
        queues if complete else None,
        {e.get("host"): e.get("visibility_timeout") for e in entries},
        [],
    )
