"""The fleet's Prometheus alert rules (roles/prometheus/templates/celery-fleet-alerts.yml.j2).

``alert_rules(entries, queues, thresholds, sentinel_enabled, overrides)`` returns the dict of one
Prometheus rule file. The inventory becomes series first (recording rules of ``vector(1)`` with the
declared labels), so that every alert is one expression that joins a live metric to the declared
set: a declared worker Flower has never seen is offline as well, and a queue's depth is known by its
queue name rather than its Redis key.

Metric names and labels, measured with Flower 2.2 and Debian's prometheus-redis-exporter 1.45
(bookworm) and 1.69 (trixie), identical in both unless said:

- ``flower_worker_online{worker}``: 1 on worker-online and on every worker-heartbeat, 0 on
  worker-offline (a stopped service). A worker killed with SIGKILL (or hung, or cut off) sends no
  worker-offline and stays 1, unless Flower runs with ``purge_offline_workers``: then each scrape
  drops the metrics of workers whose heartbeat expired that many seconds ago, and the worker
  becomes offline here because its series is gone.
- ``flower_events_total{task, type, worker}``: task events only (task-received, task-started,
  task-succeeded, task-failed, ...); Flower turns the workers' task events on itself.
- ``redis_up`` (0 while the exporter cannot reach Redis), ``redis_memory_used_bytes``,
  ``redis_memory_max_bytes`` (0: no maxmemory), ``redis_rejected_connections_total``,
  ``redis_aof_last_bgrewrite_status``, ``redis_aof_last_write_status``,
  ``redis_rdb_last_bgsave_status`` (1 ok, 0 failed), ``redis_master_link_up{master_host,
  master_port}`` (replicas only), ``redis_key_size{db, key}``: the list's length for every key of
  ``-check-keys`` (absent while the key does not exist, i.e. while the queue is empty) and of
  ``-check-single-keys`` (0 for a missing key).
- An exporter pointed at a Sentinel: ``redis_sentinel_master_ckquorum_status{master_name,
  message}`` (0 on NOQUORUM), ``redis_sentinel_master_slaves`` and
  ``redis_sentinel_master_ok_slaves{master_address, master_name}`` (a stopped replica: ok 0 of 1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery_fleet.errors import FleetError, Problem
from celery_fleet.workers import node_name, normalize_worker

__all__ = ["DEFAULT_THRESHOLDS", "RULE_NAMES", "alert_rules", "monitored_queues", "override_problems"]

# The role's threshold variables without their ``prometheus_alert_`` prefix, and their defaults
# (roles/prometheus/defaults/main/alerts.yml holds the same values: a unit test compares them).
DEFAULT_THRESHOLDS: dict[str, Any] = {
    "worker_offline_for": "2m",
    "queue_stuck_length": 100,
    "queue_stuck_for": "10m",
    "queue_no_consumer_for": "2m",
    "task_failure_percent": 5,
    "task_failure_min_tasks": 20,
    "redis_down_for": "1m",
    "redis_memory_percent": 90,
    "flower_job": "flower",
    "redis_job": "redis",
}
_DURATION_THRESHOLDS = ("worker_offline_for", "queue_stuck_for", "queue_no_consumer_for", "redis_down_for")
_NUMBER_THRESHOLDS = (
    "queue_stuck_length",
    "task_failure_percent",
    "task_failure_min_tasks",
    "redis_memory_percent",
)
_JOB_THRESHOLDS = ("flower_job", "redis_job")
DURATION_RE = re.compile(r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$")
JOB_RE = re.compile(r'^[^"\\\n]+$')
SEVERITY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
PLACEHOLDER_RE = re.compile(r"\[\[(\w+)\]\]")
OVERRIDE_FIELDS = ("enabled", "for", "severity", "threshold")


@dataclass(frozen=True)
class _Alert:
    name: str
    expr: str  # [[name]]: a threshold; [[threshold]]: this rule's own (overridable)
    duration: str  # a literal duration or the name of a threshold
    severity: str
    summary: str
    description: str
    runbook: str
    threshold: str | None = None  # the threshold key that ``overrides[name]['threshold']`` replaces
    sentinel_only: bool = False


_ALERTS: tuple[_Alert, ...] = (
    _Alert(
        "CeleryWorkerOffline",
        "celery_fleet:worker_up == 0",
        "worker_offline_for",
        "critical",
        "Celery worker {{ $labels.worker }} is offline",
        "The declared worker {{ $labels.worker }} (host {{ $labels.host }}) is not online in Flower: "
        "its service stopped, it never started, or it stopped sending heartbeats.",
        "On the host: systemctl status / journalctl -u the worker's service (or supervisorctl status), "
        "restart it, then playbooks/verify.yml; if CeleryFlowerDown fires too, fix Flower first.",
    ),
    _Alert(
        "CeleryQueueNoConsumer",
        "celery_fleet:queue_length > 0 unless on (queue) (celery_fleet:queue_consumers_online > 0)",
        "queue_no_consumer_for",
        "critical",
        "Queue {{ $labels.queue }} has messages and no online consumer",
        "{{ $value }} messages wait in queue {{ $labels.queue }} and none of the workers declared "
        "for it is online.",
        "Start the queue's workers (CeleryWorkerOffline names them); if none is declared for it, "
        "add one to celery_workers and run site.yml.",
    ),
    _Alert(
        "CeleryQueueStuck",
        "celery_fleet:queue_length > [[threshold]] and on (queue) (celery_fleet:queue_consumers_online > 0)",
        "queue_stuck_for",
        "warning",
        "Queue {{ $labels.queue }} stays long while its consumers are online",
        "Queue {{ $labels.queue }} holds {{ $value }} messages (more than [[threshold]]) although "
        "its workers are online: they consume too slowly or not at all.",
        "celery inspect active / reserved on the queue's workers: hung tasks? Raise concurrency or "
        "add workers for the queue; restart a worker that consumes nothing.",
        threshold="queue_stuck_length",
    ),
    _Alert(
        "CeleryTaskFailureRatioHigh",
        '(sum by (task) (increase(flower_events_total{type="task-failed"}[15m]))'
        ' / sum by (task) (increase(flower_events_total{type=~"task-succeeded|task-failed"}[15m])))'
        " * 100 > [[threshold]]"
        ' and sum by (task) (increase(flower_events_total{type=~"task-succeeded|task-failed"}[15m]))'
        " >= [[task_failure_min_tasks]]",
        "5m",
        "warning",
        "Task {{ $labels.task }} fails too often",
        '{{ $value | printf "%.1f" }} % of the runs of {{ $labels.task }} failed over 15 minutes '
        "(threshold [[threshold]] %, at least [[task_failure_min_tasks]] runs).",
        "Flower's task list (state FAILURE) shows the exceptions; fix the cause (a dependency down, "
        "a bad deploy: roll back) before retrying the tasks.",
        threshold="task_failure_percent",
    ),
    _Alert(
        "CeleryFlowerDown",
        'up{job="[[flower_job]]"} == 0',
        "2m",
        "warning",
        "Prometheus cannot scrape Flower ({{ $labels.instance }})",
        "Flower's /metrics does not answer: the worker and task alerts are blind meanwhile "
        "(every worker shows as offline).",
        "systemctl status / journalctl of the Flower service on the ops host; check its credentials "
        "in Prometheus's scrape config (password_file) against flower_basic_auth.",
    ),
    _Alert(
        "RedisDown",
        'redis_up == 0 or up{job="[[redis_job]]"} == 0',
        "redis_down_for",
        "critical",
        "Redis {{ $labels.instance }} is down",
        "The exporter cannot reach Redis, or Prometheus cannot reach the exporter: no task is "
        "published or consumed through this broker.",
        "systemctl status redis-server (and prometheus-redis-exporter) on the data node; "
        "journalctl -u redis-server for the cause (disk full, OOM kill, a bad config).",
    ),
    _Alert(
        "RedisMemoryHigh",
        "redis_memory_used_bytes / redis_memory_max_bytes * 100 >= [[threshold]]"
        " and on (instance, job) redis_memory_max_bytes > 0",
        "5m",
        "critical",
        'Redis {{ $labels.instance }} uses {{ $value | printf "%.0f" }} % of maxmemory',
        "With maxmemory-policy noeviction, Redis refuses new tasks (OOM errors) at 100 %.",
        "Find what grows (queue lengths, unconsumed results: result_expires), drain or purge it, or "
        "raise redis_maxmemory on a host that has the memory.",
        threshold="redis_memory_percent",
    ),
    _Alert(
        "RedisRejectedConnections",
        "increase(redis_rejected_connections_total[5m]) > 0",
        "0s",
        "warning",
        "Redis {{ $labels.instance }} rejected connections",
        'Redis refused {{ $value | printf "%.0f" }} connections over 5 minutes: maxclients is reached.',
        "INFO clients on the data node; raise maxclients, or find the client that leaks connections "
        "(CLIENT LIST by name).",
    ),
    _Alert(
        "RedisAofRewriteFailed",
        "redis_aof_last_bgrewrite_status == 0",
        "0s",
        "warning",
        "The last AOF rewrite of Redis {{ $labels.instance }} failed",
        "The append-only file keeps growing until a rewrite succeeds.",
        "journalctl -u redis-server for the rewrite error (disk full, fork failed: vm.overcommit_memory); "
        "fix it, then BGREWRITEAOF.",
    ),
    _Alert(
        "RedisAofWriteFailed",
        "redis_aof_last_write_status == 0",
        "0s",
        "critical",
        "The last AOF write of Redis {{ $labels.instance }} failed",
        "Redis refuses writes (MISCONF) while it cannot write its append-only file.",
        "df -h and journalctl -u redis-server on the data node: free the disk; Redis resumes by itself.",
    ),
    _Alert(
        "RedisRdbSaveFailed",
        "redis_rdb_last_bgsave_status == 0",
        "0s",
        "critical",
        "The last RDB save of Redis {{ $labels.instance }} failed",
        "With stop-writes-on-bgsave-error Redis refuses writes until a save succeeds.",
        "journalctl -u redis-server for the cause (disk full, fork failed: vm.overcommit_memory); "
        "fix it, then BGSAVE.",
    ),
    _Alert(
        "RedisReplicationBroken",
        "redis_master_link_up == 0 or redis_sentinel_master_ok_slaves < redis_sentinel_master_slaves",
        "2m",
        "critical",
        "Redis replication is broken ({{ $labels.instance }})",
        "A replica lost its link to the master, or the Sentinel counts fewer healthy replicas than "
        "it knows: a failover now would lose data or find no replica.",
        "INFO replication on the data nodes; restart the stopped replica or fix the network between "
        "the data nodes (redis_sentinel_peers).",
        sentinel_only=True,
    ),
    _Alert(
        "RedisSentinelQuorumLost",
        "max by (instance, master_name) (redis_sentinel_master_ckquorum_status) == 0",
        "1m",
        "critical",
        "Sentinel {{ $labels.instance }} cannot reach quorum for {{ $labels.master_name }}",
        "Not enough Sentinels agree: a failed master would not be replaced.",
        "SENTINEL CKQUORUM <master> on each data node; start the stopped redis-sentinel services or "
        "fix the network between them.",
        sentinel_only=True,
    ),
)
RULE_NAMES: tuple[str, ...] = tuple(alert.name for alert in _ALERTS)

# Queue depth and consumers: the inventory joined to the live metrics, one series per declared
# worker or queue. Redis keeps a list only while it holds messages: with -check-keys an empty
# queue has no series, with -check-single-keys it reports 0; both give "no message" here.
_RECORDS: tuple[tuple[str, str], ...] = (
    (
        "celery_fleet:worker_up",
        "(celery_fleet_worker_declared and on (worker) (flower_worker_online == 1))"
        " or (celery_fleet_worker_declared * 0)",
    ),
    (
        "celery_fleet:queue_length",
        "max by (queue) (redis_key_size * on (key) group_left (queue) celery_fleet_queue_key)",
    ),
    (
        "celery_fleet:queue_consumers_online",
        "count by (queue) (celery_fleet_queue_consumer and on (worker) (celery_fleet:worker_up == 1))",
    ),
)


def _thresholds(thresholds: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[Problem]]:
    merged = dict(DEFAULT_THRESHOLDS)
    problems = []
    for key, value in (thresholds or {}).items():
        field = f"prometheus_alert_{key}"
        if key not in DEFAULT_THRESHOLDS:
            problems.append(
                Problem("thresholds", f"unknown threshold '{key}'; allowed: {', '.join(DEFAULT_THRESHOLDS)}")
            )
            continue
        if key in _DURATION_THRESHOLDS and not (isinstance(value, str) and DURATION_RE.match(value)):
            problems.append(
                Problem(field, f"{value!r} is not a Prometheus duration such as 90s, 2m or 1h30m")
            )
            continue
        if key in _NUMBER_THRESHOLDS and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            problems.append(Problem(field, f"{value!r} is not a number >= 0"))
            continue
        if key in _JOB_THRESHOLDS and not (isinstance(value, str) and JOB_RE.match(value)):
            problems.append(Problem(field, f"{value!r} is not a Prometheus job name"))
            continue
        merged[key] = value
    return merged, problems


def override_problems(overrides: Mapping[str, Any] | None) -> list[Problem]:
    """``prometheus_alert_overrides``: known rule names, known keys, values of the right kind
    (also run by the fleet validation, lib/celery_fleet/monitoring_rules.py)."""
    problems = []
    for name, override in (overrides or {}).items():
        field = f"prometheus_alert_overrides.{name}"
        alert = next((a for a in _ALERTS if a.name == name), None)
        if alert is None:
            problems.append(Problem(field, f"unknown rule '{name}'; allowed: {', '.join(RULE_NAMES)}"))
            continue
        if not isinstance(override, Mapping):
            problems.append(Problem(field, f"must be a dict with keys among {', '.join(OVERRIDE_FIELDS)}"))
            continue
        for key, value in override.items():
            if key not in OVERRIDE_FIELDS:
                problems.append(Problem(field, f"unknown key '{key}'; allowed: {', '.join(OVERRIDE_FIELDS)}"))
            elif key == "enabled" and not isinstance(value, bool):
                problems.append(Problem(f"{field}.enabled", f"{value!r} is not a boolean"))
            elif key == "for" and not (isinstance(value, str) and DURATION_RE.match(value)):
                problems.append(Problem(f"{field}.for", f"{value!r} is not a Prometheus duration such as 2m"))
            elif key == "severity" and not (isinstance(value, str) and SEVERITY_RE.match(value)):
                problems.append(
                    Problem(f"{field}.severity", f"{value!r} is not a label value such as critical")
                )
            elif key == "threshold" and alert.threshold is None:
                problems.append(Problem(f"{field}.threshold", f"rule {name} has no threshold"))
            elif key == "threshold" and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                problems.append(Problem(f"{field}.threshold", f"{value!r} is not a number >= 0"))
    return problems


def _entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One worker host as {host, workers, nodename, key_prefix}, from celery_worker's verify entry
    (host, workers, nodename, key_prefix) or from the host's hostvars (inventory_hostname,
    celery_workers, ansible_facts.nodename when facts were gathered, celery_broker_key_prefix)."""
    host = str(entry.get("host") or entry.get("inventory_hostname") or "")
    if not host:
        raise FleetError([Problem("entries", "a worker host entry has neither host nor inventory_hostname")])
    facts = entry.get("ansible_facts") or {}
    return {
        "host": host,
        "workers": list(entry.get("workers", entry.get("celery_workers")) or []),
        "nodename": str(entry.get("nodename") or facts.get("nodename") or host),
        "key_prefix": str(entry.get("key_prefix", entry.get("celery_broker_key_prefix")) or ""),
    }


def _declared(
    entries: Sequence[Mapping[str, Any]], queues: Sequence[str] | None
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(worker node, host), (queue, worker node) and (queue, redis key) of the present workers."""
    workers: list[tuple[str, str]] = []
    consumers: list[tuple[str, str]] = []
    prefixes: list[str] = []
    for entry in map(_entry, entries):
        host = entry["host"]
        prefix = entry["key_prefix"]
        if prefix not in prefixes:
            prefixes.append(prefix)
        for raw in entry["workers"]:
            worker = normalize_worker(raw)
            if worker["state"] != "present":
                continue
            node = node_name(worker["hostname"], entry["nodename"])
            if (node, host) not in workers:
                workers.append((node, host))
            consumers.extend((queue, node) for queue in worker["queues"] if (queue, node) not in consumers)
    names = list(queues or [])
    names += sorted({queue for queue, _ in consumers} - set(names))
    keys = [(queue, prefix + queue) for queue in names for prefix in prefixes or [""]]
    return workers, consumers, keys


def monitored_queues(
    entries: Sequence[Mapping[str, Any]] | None, queues: Sequence[str] | None = None
) -> list[str]:
    """The queues whose length the rules watch: ``queues`` (celery_queues) first, then every other
    queue a present worker of ``entries`` consumes, sorted. The exporter must export exactly these
    keys (playbooks/deploy-monitoring.yml), or a queue alert would have no length to read."""
    return list(dict.fromkeys(queue for queue, _ in _declared(entries or [], queues)[2]))


def _fill(text: str, fields: Mapping[str, Any]) -> str:
    """Put the thresholds into a rule's text: ``[[name]]`` (Prometheus's own templates use braces)."""
    return PLACEHOLDER_RE.sub(lambda m: str(fields[m.group(1)]), text)


def _record(name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"record": name, "expr": "vector(1)", "labels": dict(labels)}


def alert_rules(
    entries: Sequence[Mapping[str, Any]] | None,
    queues: Sequence[str] | None,
    thresholds: Mapping[str, Any] | None,
    sentinel_enabled: bool,
    overrides: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The rule file (``{"groups": [...]}``) for the fleet.

    ``entries``: one per worker host, keys ``host``, ``workers`` (celery_workers), ``nodename``
    (the machine's host name that %h expands to; default ``host``) and ``key_prefix``
    (celery_broker_key_prefix; default none), as celery_worker's verify entry; or the worker hosts'
    ``hostvars`` themselves (see _entry): with their facts gathered, the node names are exact.
    ``queues``: celery_queues, or None (then the workers' queues). ``thresholds``: the role's
    ``prometheus_alert_*`` values without the prefix (missing ones take DEFAULT_THRESHOLDS).
    ``sentinel_enabled``: adds the replication and quorum rules. ``overrides``:
    ``prometheus_alert_overrides``, rule name -> {enabled, for, severity, threshold}.
    Raises FleetError naming the variable for an unknown rule, key or a bad value.
    """
    values, problems = _thresholds(thresholds)
    problems += override_problems(overrides)
    if problems:
        raise FleetError(problems)
    overrides = overrides or {}
    workers, consumers, keys = _declared(entries or [], queues)

    inventory = (
        [_record("celery_fleet_worker_declared", {"worker": node, "host": host}) for node, host in workers]
        + [_record("celery_fleet_queue_consumer", {"queue": q, "worker": node}) for q, node in consumers]
        + [_record("celery_fleet_queue_key", {"queue": q, "key": key}) for q, key in keys]
    )
    alerts = []
    for alert in _ALERTS:
        override = overrides.get(alert.name) or {}
        if not override.get("enabled", True) or (alert.sentinel_only and not sentinel_enabled):
            continue
        fields = dict(values)
        if alert.threshold is not None:
            fields["threshold"] = override.get("threshold", values[alert.threshold])
        duration = override.get("for", values.get(alert.duration, alert.duration))
        alerts.append(
            {
                "alert": alert.name,
                "expr": _fill(alert.expr, fields),
                "for": duration,
                "labels": {"severity": override.get("severity", alert.severity)},
                "annotations": {
                    "summary": alert.summary,
                    "description": _fill(alert.description, fields),
                    "runbook": alert.runbook,
                },
            }
        )
    # One group: Prometheus evaluates a group's rules in order, so each alert sees this round's
    # inventory and derived series (separate groups would lag one interval behind each other).
    derived = [{"record": record, "expr": expr} for record, expr in _RECORDS]
    return {"groups": [{"name": "celery-fleet", "rules": inventory + derived + alerts}]}
