"""One Celery worker spec: defaults, type checks, its command line and how to quote that line.

The argument builder (:func:`worker_argv`) is the only place a worker's command line is made;
the systemd and the supervisord templates both render its output, quoted for their own parser
by :func:`systemd_cmdline` and :func:`supervisor_cmdline`. Nothing here imports Ansible.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from celery_fleet.errors import FleetError, Problem
from celery_fleet.service import PROC_SUBSETS, UNFIT_VALUE_RE, check_devices, default_proc_subset

POOLS = ("prefork", "gevent", "eventlet", "threads", "solo")
LOGLEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STATES = ("present", "absent")
OPTIMIZATIONS = ("fair", "default")
REMAP_SIGNALS = ("SIGQUIT", "SIGINT")

# Pool sizes used when a worker sets neither concurrency nor autoscale. Celery's own default is the
# number of CPUs of the host it lands on, which makes the live check "runs the declared concurrency"
# impossible and differs between GPU and CPU hosts: the fleet states a number instead.
DEFAULT_CONCURRENCY = {"prefork": 2, "threads": 4, "gevent": 10, "eventlet": 10, "solo": 1}
# Celery's worker guide: these two are implemented by the prefork pool only.
PREFORK_ONLY_FIELDS = ("max_tasks_per_child", "max_memory_per_child")
# Green pools run Celery's blocking synloop, which waits up to 2 s in drain_events whenever the
# prefetch window is full: with a multiplier of 1 that is after every round of `concurrency`
# tasks (bench/README.md, "Pool scaling on green pools": gevent c=8 at 4 tasks/s for 0.1 s tasks,
# ideal 80). From 2 on, the window never fills (gevent's spawn blocks the consumer first).
GREEN_POOLS = ("gevent", "eventlet")
GREEN_PREFETCH_MULTIPLIER = 2
# kombu's Redis channel keeps a non-blocking pool of `max_connections` (default 10) connections;
# with acks_late every greenlet acks on its own, so more than 10 finishing together get
# MaxConnectionsError: the ack fails and the task runs twice, or a popped message is lost. The
# fleet sizes the pool above the number of greenlets (the consumer writes through it as well).
GREEN_CONNECTION_MARGIN = 10
# Read by roles/celery_app/files/celery_fleet_app.py (the fleet's entry module).
MAX_CONNECTIONS_ENV = "CELERY_FLEET_MAX_CONNECTIONS"
AUTOSCALE_POOLS = ("prefork", "gevent")
# Pools that need a package besides celery in the app's virtualenv.
POOL_PACKAGES = {"gevent": "gevent", "eventlet": "eventlet"}
# Stop timeout when the worker sets neither stop_timeout nor time_limit (seconds).
DEFAULT_STOP_TIMEOUT = 600

# A worker name becomes part of a systemd unit name, a supervisord program name, file names and the
# Celery node name (``<name>@%h``): lower case letters, digits, '_' and '-' are safe in all of them
# ('@' is systemd's template separator and Celery's node separator, ':' is supervisord's group
# separator, '.' would look like a unit suffix). 40 characters keep the unit name short.
WORKER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# A queue name is a Redis key (under the ACL key prefix) and one item of ``--queues=a,b``:
# no ',' nor whitespace; '.' is common in Celery queue names and harmless.
QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Celery node name: name@host with the expansions %h (host name), %n (its first label), %d (domain).
HOSTNAME_RE = re.compile(r"^(?:[A-Za-z0-9_.-]|%[hnd])+@(?:[A-Za-z0-9_.-]|%[hnd])+$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
APP_MODULE_RE = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::[A-Za-z_][A-Za-z0-9_.]*)?$"
)
# Environment keys a worker may not set: the broker and backend URLs are the fleet's
# (celery_broker_url, celery_result_backend), REMAP_SIGTERM has its own field. Secrets are welcome:
# they go to the worker's own environment file, never into its unit (service.split_environment).
MANAGED_ENV_RE = re.compile(r"^(?:CELERY_BROKER_URL|CELERY_RESULT_BACKEND)$", re.IGNORECASE)

# Flags the fleet sets itself, mapped to the worker field that manages them. extra_args may not
# repeat them: Celery takes the last occurrence, so a duplicate silently overrides the declared spec
# that the live verification checks.
MANAGED_FLAGS = {
    "-A": "celery_app_module",
    "--app": "celery_app_module",
    "-n": "hostname",
    "--hostname": "hostname",
    "-Q": "queues",
    "--queues": "queues",
    "-P": "pool",
    "--pool": "pool",
    "-c": "concurrency",
    "--concurrency": "concurrency",
    "--autoscale": "autoscale",
    "-l": "loglevel",
    "--loglevel": "loglevel",
    "-O": "optimization",
    "--optimization": "optimization",
    "-E": "events",
    "--task-events": "events",
    "--events": "events",
    "--without-gossip": "gossip",
    "--prefetch-multiplier": "prefetch_multiplier",
    "--max-tasks-per-child": "max_tasks_per_child",
    "--max-memory-per-child": "max_memory_per_child",
    "--time-limit": "time_limit",
    "--soft-time-limit": "soft_time_limit",
}
# Flags that break the deployment whatever their value.
FORBIDDEN_FLAGS = {
    "-D": "a detached worker escapes its process manager, which then restarts it forever",
    "--detach": "a detached worker escapes its process manager, which then restarts it forever",
    "--purge": "it deletes every waiting task of the worker's queues at each start and each restart "
    "(a crash loop empties them); purge once, deliberately, with `celery purge -Q <queue>`",
    "--discard": "it deletes every waiting task of the worker's queues at each start and each restart "
    "(a crash loop empties them); purge once, deliberately, with `celery purge -Q <queue>`",
    "--uid": "the service runs as the app's user already",
    "--gid": "the service runs as the app's group already",
    "-b": "the broker URL carries a password and comes from the environment file, never argv",
    "--broker": "the broker URL carries a password and comes from the environment file, never argv",
    "--result-backend": "the backend URL carries a password and comes from the environment file, never argv",
}
BEAT_FLAGS = ("-B", "--beat")
# Celery config assignments after '--' that would carry a secret.
SECRET_CONFIG_RE = re.compile(r"^\.?(broker_url|result_backend|broker_write_url|broker_read_url)=", re.I)

FIELDS = (
    "name",
    "state",
    "queues",
    "pool",
    "allow_solo",
    "concurrency",
    "autoscale",
    "max_tasks_per_child",
    "max_memory_per_child",
    "prefetch_multiplier",
    "loglevel",
    "hostname",
    "events",
    "gossip",
    "time_limit",
    "soft_time_limit",
    "optimization",
    "stop_timeout",
    "soft_shutdown_timeout",
    "remap_sigterm",
    "memory_deny_write_execute",
    "devices",
    "proc_subset",
    "environment",
    "extra_args",
)


def _choices(values: Iterable[str]) -> str:
    return ", ".join(values)


def _show(value: Any) -> str:
    # The builtin type's name: Ansible 2.19 hands inventory values over as tagged subclasses
    # (_AnsibleTaggedInt), which mean nothing to the reader.
    kind = next(c.__name__ for c in type(value).__mro__ if c.__module__ == "builtins")
    return repr(value) if isinstance(value, str) else f"{kind} {value!r}"


class _Checker:
    """Collects every problem of one worker spec instead of stopping at the first."""

    def __init__(self, worker: Mapping[str, Any], label: str) -> None:
        self.worker = worker
        self.label = label
        self.problems: list[Problem] = []

    def fail(self, field: str, detail: str) -> None:
        self.problems.append(Problem(field, detail, self.label))

    def choice(
        self, field: str, allowed: tuple[str, ...], default: str | None, *, upper: bool = False
    ) -> Any:
        value = self.worker.get(field)
        if value is None:
            return default
        probe = value.upper() if upper and isinstance(value, str) else value
        if not isinstance(value, str) or probe not in allowed:
            self.fail(field, f"{_show(value)} is not one of {_choices(allowed)}")
            return default
        return probe

    def boolean(self, field: str, default: bool) -> bool:
        value = self.worker.get(field)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(field, f"{_show(value)} is not a boolean (true or false)")
            return default
        return value

    def integer(self, field: str, minimum: int, unit: str = "") -> int | None:
        value = self.worker.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(field, f"{_show(value)} is not an integer >= {minimum}{unit}")
            return None
        return int(value)

    def seconds(self, field: str, minimum: float = 0.0, *, strict: bool = True) -> int | float | None:
        value = self.worker.get(field)
        if value is None:
            return None
        bad = isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
        if bad or (value <= minimum if strict else value < minimum):
            relation = ">" if strict else ">="
            self.fail(
                field, f"{_show(value)} is not a number of seconds {relation} {format_seconds(minimum)}"
            )
            return None
        return int(value) if isinstance(value, int) else float(value)


def _worker_label(worker: Mapping[str, Any], index: int | None) -> str:
    name = worker.get("name")
    if isinstance(name, str) and name:
        return name
    return f"#{index}" if index is not None else "#?"


def check_worker(worker: Any, index: int | None = None) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Normalize one worker spec, returning (spec, every problem found).

    The spec is best effort when there are problems (None when the worker is not a mapping): fleet
    rules may read its queues, so that one typo does not also report its queues as unconsumed.
    ``index`` (1-based position in the host's list) names a worker that has no usable name.
    """
    if not isinstance(worker, Mapping):
        label = f"#{index}" if index is not None else "#?"
        return None, [Problem("celery_workers", f"{_show(worker)} is not a mapping (a worker spec)", label)]
    c = _Checker(worker, _worker_label(worker, index))

    for key in worker:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            c.fail(str(key), f"unknown field; {hint}allowed fields are {_choices(FIELDS)}")

    name = worker.get("name")
    if name is None:
        c.fail("name", "is required")
    elif not isinstance(name, str) or not WORKER_NAME_RE.match(name):
        c.fail(
            "name",
            f"{_show(name)} is not a valid worker name (^[a-z0-9][a-z0-9_-]{{0,39}}$: it names the unit)",
        )

    queues = _check_queues(c)
    state = c.choice("state", STATES, "present")
    pool = c.choice("pool", POOLS, "prefork")
    allow_solo = c.boolean("allow_solo", False)
    if pool == "solo" and not allow_solo:
        c.fail(
            "pool",
            "'solo' runs one task at a time (a chord's parallel tasks run one after another); "
            "use prefork, gevent, eventlet or threads, or set allow_solo: true",
        )

    concurrency = c.integer("concurrency", 1)
    autoscale = _check_autoscale(c, pool)
    if autoscale is not None and concurrency is not None:
        c.fail("concurrency", "cannot be combined with autoscale (the pool size follows autoscale: max,min)")
    if pool == "solo" and concurrency not in (None, 1):
        c.fail("concurrency", f"{concurrency} with pool 'solo': the solo pool runs exactly 1 task at a time")
    if concurrency is None and autoscale is None:
        concurrency = DEFAULT_CONCURRENCY.get(pool or "prefork")

    limits = {
        field: c.integer(field, 1, " (KiB)" if "memory" in field else "") for field in PREFORK_ONLY_FIELDS
    }
    for field, value in limits.items():
        if value is not None and pool != "prefork":
            c.fail(field, f"is supported by pool prefork only, not {pool!r} (Celery worker guide)")

    prefetch_multiplier = c.integer("prefetch_multiplier", 1)
    if pool in GREEN_POOLS and prefetch_multiplier == 1:
        c.fail(
            "prefetch_multiplier",
            f"1 with pool {pool!r} stalls the worker up to 2 s after every round of tasks (Celery's "
            f"green-pool loop waits while the prefetch window is full): use "
            f"{GREEN_PREFETCH_MULTIPLIER} or more, or leave it unset "
            f"({GREEN_PREFETCH_MULTIPLIER} for green pools)",
        )
    if prefetch_multiplier is None and pool in GREEN_POOLS:
        prefetch_multiplier = GREEN_PREFETCH_MULTIPLIER

    time_limit = c.seconds("time_limit")
    soft_time_limit = c.seconds("soft_time_limit")
    if time_limit is not None and soft_time_limit is not None and soft_time_limit >= time_limit:
        c.fail(
            "soft_time_limit",
            f"{format_seconds(soft_time_limit)} must be below time_limit {format_seconds(time_limit)} "
            "(the soft limit warns first)",
        )

    spec: dict[str, Any] = {
        "name": name,
        "state": state,
        "queues": queues,
        "pool": pool,
        "allow_solo": allow_solo,
        "concurrency": concurrency,
        "autoscale": autoscale,
        "max_tasks_per_child": limits["max_tasks_per_child"],
        "max_memory_per_child": limits["max_memory_per_child"],
        "prefetch_multiplier": prefetch_multiplier,
        "loglevel": c.choice("loglevel", LOGLEVELS, "INFO", upper=True),
        "hostname": _check_hostname(c, name),
        "events": c.boolean("events", True),
        "gossip": c.boolean("gossip", False),
        "time_limit": time_limit,
        "soft_time_limit": soft_time_limit,
        "optimization": c.choice("optimization", OPTIMIZATIONS, None),
        "stop_timeout": c.integer("stop_timeout", 1, " (seconds)"),
        "soft_shutdown_timeout": c.seconds("soft_shutdown_timeout", strict=False),
        "remap_sigterm": c.choice("remap_sigterm", REMAP_SIGNALS, None),
        "memory_deny_write_execute": c.boolean("memory_deny_write_execute", False),
        **_check_isolation(c),
        "environment": _check_environment(c),
        "extra_args": _check_extra_args(c),
    }
    return spec, c.problems


def _check_queues(c: _Checker) -> list[str]:
    queues = c.worker.get("queues")
    if queues is None or (isinstance(queues, list | tuple) and len(queues) == 0):
        c.fail(
            "queues", "must be a non-empty list of queue names (without -Q a worker consumes only 'celery')"
        )
        return []
    if not isinstance(queues, list | tuple):
        c.fail("queues", f"{_show(queues)} is not a list of queue names")
        return []
    result: list[str] = []
    for queue in queues:
        if not isinstance(queue, str) or not QUEUE_NAME_RE.match(queue):
            c.fail(
                "queues", f"{_show(queue)} is not a valid queue name (^[A-Za-z0-9][A-Za-z0-9_.-]{{0,99}}$)"
            )
        elif queue in result:
            c.fail("queues", f"{queue!r} is listed twice")
        else:
            result.append(queue)
    return result


def _check_autoscale(c: _Checker, pool: str | None) -> list[int] | None:
    value = c.worker.get("autoscale")
    if value is None:
        return None
    parts: list[Any]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        parts = [int(p) if p.isdigit() else p for p in parts]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        parts = []
    ints = [p for p in parts if isinstance(p, int) and not isinstance(p, bool)]
    if len(parts) != 2 or len(ints) != 2 or ints[0] < 1 or ints[1] < 0 or ints[0] < ints[1]:
        c.fail("autoscale", f"{_show(value)} is not [max, min] (or 'max,min') with max >= 1, max >= min >= 0")
        return None
    if pool not in AUTOSCALE_POOLS:
        c.fail("autoscale", f"is supported by pools {_choices(AUTOSCALE_POOLS)} only, not {pool!r}")
    return ints


def _check_hostname(c: _Checker, name: Any) -> str:
    value = c.worker.get("hostname")
    if value is None:
        return f"{name}@%h"
    if not isinstance(value, str) or not HOSTNAME_RE.match(value):
        c.fail(
            "hostname",
            f"{_show(value)} is not a Celery node name 'name@host' (letters, digits, '_', '.', '-' "
            "and the expansions %h, %n, %d)",
        )
        return f"{name}@%h"
    return value


def _check_environment(c: _Checker) -> dict[str, str]:
    value = c.worker.get("environment")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        c.fail("environment", f"{_show(value)} is not a mapping of variable names to strings")
        return {}
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_NAME_RE.match(key):
            c.fail("environment", f"{_show(key)} is not a variable name (^[A-Za-z_][A-Za-z0-9_]*$)")
        elif key == "REMAP_SIGTERM":
            c.fail(
                "environment", "'REMAP_SIGTERM' is set through the field remap_sigterm (SIGQUIT or SIGINT)"
            )
        elif MANAGED_ENV_RE.match(key):
            c.fail(
                "environment",
                f"{key!r} is the fleet's (celery_broker_url, celery_result_backend): a worker may not "
                "point elsewhere",
            )
        elif isinstance(item, bool) or not isinstance(item, str | int | float):
            c.fail("environment", f"{key}: {_show(item)} is not a string or number")
        elif UNFIT_VALUE_RE.search(str(item)):
            # The value is not shown: it may be a secret.
            c.fail(
                "environment",
                f"{key}: the value holds a NUL or a line break, which no environment file carries",
            )
        else:
            result[key] = str(item)
    return result


def _check_isolation(c: _Checker) -> dict[str, Any]:
    """``devices`` and ``proc_subset`` (lib/celery_fleet/service.py says what they open)."""
    devices, problems = check_devices(c.worker.get("devices"))
    for detail in problems:
        c.fail("devices", detail)
    return {
        "devices": devices,
        "proc_subset": c.choice("proc_subset", PROC_SUBSETS, default_proc_subset(devices)),
    }


def _flag_name(arg: str) -> str:
    """'--queues=a' -> '--queues', '-c4' -> '-c', '-Q' -> '-Q', 'value' -> ''."""
    if arg.startswith("--"):
        return arg.split("=", 1)[0]
    if arg.startswith("-") and len(arg) >= 2:
        return arg[:2]
    return ""


def _check_extra_args(c: _Checker) -> list[str]:
    value = c.worker.get("extra_args")
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(a, str) for a in value):
        c.fail("extra_args", f"{_show(value)} is not a list of strings (one argument each)")
        return []
    options = True  # after a bare '--' Celery reads config assignments (key=value), not flags
    for arg in value:
        if "\x00" in arg or "\n" in arg or "\r" in arg:
            c.fail("extra_args", f"{arg!r} contains a NUL or line break")
        elif "://" in arg:
            c.fail("extra_args", f"{arg!r} looks like a URL: URLs carry passwords; use the environment file")
        elif arg == "--":
            options = False
        elif not options:
            if SECRET_CONFIG_RE.match(arg):
                c.fail("extra_args", f"{arg!r} sets a broker/backend URL: it belongs in the environment file")
            elif arg.lstrip(".").lower().startswith("broker_transport_options="):
                c.fail(
                    "extra_args",
                    f"{arg[:40]!r}... replaces the app's broker_transport_options as a whole (the key "
                    "prefix, the visibility timeout, a green pool's max_connections); the fleet merges "
                    "them into the app's from celery_broker_key_prefix and celery_broker_visibility_timeout",
                )
        elif _flag_name(arg) in MANAGED_FLAGS:
            flag = _flag_name(arg)
            c.fail(
                "extra_args",
                f"{flag!r} duplicates the managed field {MANAGED_FLAGS[flag]!r}; set that instead",
            )
        elif _flag_name(arg) in FORBIDDEN_FLAGS:
            c.fail("extra_args", f"{_flag_name(arg)!r} is not allowed: {FORBIDDEN_FLAGS[_flag_name(arg)]}")
    return list(value)


def normalize_worker(worker: Mapping[str, Any]) -> dict[str, Any]:
    """Return the worker spec with every field present and defaults filled; raise FleetError if invalid.

    Idempotent: a normalized spec normalizes to itself.
    """
    spec, problems = check_worker(worker)
    if spec is None or problems:
        raise FleetError(problems)
    return spec


# Short flags of `celery worker` that take no value: click lets them be combined (`-EB`). Any other
# letter takes a value, and the rest of the argument is that value (`-Bs/tmp/x`, `-lBEAT`).
_WORKER_SHORT_FLAGS = frozenset("BDE")


def _short_cluster_has_beat(arg: str) -> bool:
    for letter in arg[1:]:
        if letter == "B":
            return True
        if letter not in _WORKER_SHORT_FLAGS:
            return False
    return False


def embeds_beat(worker: Mapping[str, Any]) -> bool:
    """True when the (normalized) worker runs an embedded beat scheduler (-B/--beat in extra_args).

    Short flags are read the way click reads them, so a combined cluster such as ``-EB`` counts.
    """
    for arg in worker.get("extra_args") or []:
        if arg == "--":
            return False
        if arg == "--beat" or (
            arg.startswith("-") and not arg.startswith("--") and _short_cluster_has_beat(arg)
        ):
            return True
    return False


def node_name(hostname: str, host: str) -> str:
    """Expand a worker's hostname field the way Celery does, with ``host`` as the machine's host name."""
    short, _, domain = host.partition(".")
    keys = {"h": host, "n": short, "d": domain}
    return re.sub(r"%([hnd])", lambda m: keys[m.group(1)], hostname)


def format_seconds(value: float) -> str:
    """3600 -> '3600', 2.5 -> '2.5' (no exponent: 1000000 stays '1000000')."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def declared_concurrency(worker: Mapping[str, Any]) -> int | None:
    """The most tasks a normalized worker runs at once (``stats`` reports it as ``max-concurrency``):
    the autoscale maximum, else the concurrency."""
    autoscale = worker.get("autoscale")
    return int(autoscale[0]) if autoscale else worker.get("concurrency")


def worker_argv(worker: Mapping[str, Any], app_module: str, celery_bin: str) -> list[str]:
    """The worker's command line as an argument list, secrets never included.

    ``[celery_bin, "-A", app_module, "worker", --hostname, --queues, --pool, --concurrency or
    --autoscale, --loglevel, --task-events, --without-gossip, optional flags..., *extra_args]``,
    then config assignments after a bare ``--`` (the worker command reads ``key=value`` there):
    ``worker_soft_shutdown_timeout=<s>`` when soft_shutdown_timeout is set (Celery has no flag for
    it). ``app_module`` is the fleet's entry module in the roles, which merges the fleet's transport
    options into the app's (a green pool's kombu ``max_connections`` comes from
    ``worker_environment``).
    """
    spec = normalize_worker(worker)
    problems = []
    if not isinstance(app_module, str) or not APP_MODULE_RE.match(app_module):
        problems.append(
            Problem(
                "celery_app_module",
                f"{_show(app_module)} is not a module path (pkg.module or pkg.module:app)",
            )
        )
    if not isinstance(celery_bin, str) or not celery_bin.startswith("/") or re.search(r"\s", celery_bin):
        problems.append(
            Problem("celery_bin", f"{_show(celery_bin)} is not an absolute path without whitespace")
        )
    if problems:
        raise FleetError([Problem(p.field, p.detail, spec["name"]) for p in problems])

    argv = [
        celery_bin,
        "-A",
        app_module,
        "worker",
        f"--hostname={spec['hostname']}",
        f"--queues={','.join(spec['queues'])}",
        f"--pool={spec['pool']}",
    ]
    if spec["autoscale"] is not None:
        argv.append(f"--autoscale={spec['autoscale'][0]},{spec['autoscale'][1]}")
    else:
        argv.append(f"--concurrency={spec['concurrency']}")
    argv.append(f"--loglevel={spec['loglevel']}")
    if spec["events"]:
        argv.append("--task-events")
    # Gossip (Celery's default): every worker subscribes to every other worker's events, so each of
    # n workers takes in the heartbeats of all n (one every 2 s each): n^2 deliveries through Redis,
    # which grow with the fleet and buy nothing the fleet uses (inspect and control go through
    # pidbox; Flower and the alerts read the heartbeats, which still go out). Measured on the
    # sandbox, an idle prefork worker among 8 nodes: 32 CPU ticks a minute with gossip, 16 without.
    # A worker sets gossip: true for code that relies on worker-to-worker events (app.control.election).
    if not spec["gossip"]:
        argv.append("--without-gossip")
    optional: list[tuple[str, Callable[[Any], str]]] = [
        ("prefetch_multiplier", str),
        ("max_tasks_per_child", str),
        ("max_memory_per_child", str),
        ("time_limit", format_seconds),
        ("soft_time_limit", format_seconds),
        ("optimization", str),
    ]
    for field, render in optional:
        if spec[field] is not None:
            argv.append(f"--{field.replace('_', '-')}={render(spec[field])}")
    argv.extend(spec["extra_args"])
    config = []
    if spec["soft_shutdown_timeout"] is not None:
        config.append(f"worker_soft_shutdown_timeout={format_seconds(spec['soft_shutdown_timeout'])}")
    if config and "--" not in spec["extra_args"]:
        argv.append("--")
    argv.extend(config)
    return argv


def green_max_connections(worker: Mapping[str, Any]) -> int | None:
    """kombu's ``max_connections`` for a green-pool worker (greenlets + margin), None for other pools."""
    spec = normalize_worker(worker)
    if spec["pool"] not in GREEN_POOLS:
        return None
    return (declared_concurrency(spec) or 0) + GREEN_CONNECTION_MARGIN


def worker_environment(worker: Mapping[str, Any]) -> dict[str, str]:
    """Environment variables of the worker's service: its ``environment``, REMAP_SIGTERM if set, and
    for a green pool MAX_CONNECTIONS_ENV, which the fleet's entry module puts into kombu's
    ``max_connections``."""
    spec = normalize_worker(worker)
    env = dict(spec["environment"])
    if spec["remap_sigterm"] is not None:
        env["REMAP_SIGTERM"] = spec["remap_sigterm"]
    limit = green_max_connections(spec)
    if limit is not None:
        env[MAX_CONNECTIONS_ENV] = str(limit)
    return env


_SYSTEMD_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SYSTEMD_PLAIN_RE = re.compile(r"^[A-Za-z0-9_@%+=:,./$-]+$")


def _systemd_word(arg: str, *, variables: bool = True) -> str:
    if "\x00" in arg:
        raise FleetError([Problem("argv", f"{arg!r} contains a NUL byte, which no command line can carry")])
    # Specifiers (%h is the user's HOME, not the host name) are expanded inside quotes too, and so
    # is $VAR in Exec lines (not in Environment=): double them everywhere.
    arg = arg.replace("%", "%%")
    if variables:
        arg = arg.replace("$", "$$")
    if arg == ";":
        return "\\;"  # a lone ';' separates commands in Exec lines
    if _SYSTEMD_PLAIN_RE.match(arg):
        return arg
    out = []
    for ch in arg:
        if ch in _SYSTEMD_ESCAPES:
            out.append(_SYSTEMD_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def systemd_cmdline(argv: list[str]) -> str:
    """Quote an argument list for a systemd ``ExecStart=`` line (systemd's rules, not the shell's).

    Words with whitespace, quotes, backslashes or control characters are double-quoted with C
    escapes; ``%`` becomes ``%%`` and ``$`` becomes ``$$`` in every word.
    """
    return " ".join(_systemd_word(arg) for arg in argv)


def systemd_environment(environment: Mapping[str, str]) -> list[str]:
    """One quoted ``KEY=value`` word per variable, each the value of one ``Environment=`` line.

    Same quoting as :func:`systemd_cmdline` except ``$``, which Environment= does not expand.
    """
    return [_systemd_word(f"{key}={value}", variables=False) for key, value in _env_items(environment)]


def _env_items(environment: Mapping[str, str]) -> list[tuple[str, str]]:
    if not isinstance(environment, Mapping):
        raise FleetError([Problem("environment", f"{_show(environment)} is not a mapping")])
    items = []
    for key, value in environment.items():
        if not isinstance(key, str) or not ENV_NAME_RE.match(key) or not isinstance(value, str):
            raise FleetError([Problem("environment", f"{key!r}: {_show(value)} is not NAME: string")])
        items.append((key, value))
    return items


_SUPERVISOR_PLAIN_RE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def _supervisor_word(arg: str) -> str:
    if any(ch in arg for ch in "\x00\n\r"):
        raise FleetError(
            [Problem("argv", f"{arg!r} contains a NUL or line break, which supervisord cannot carry")]
        )
    if not _SUPERVISOR_PLAIN_RE.match(arg):
        arg = "'" + arg.replace("'", "'\"'\"'") + "'"
        # supervisord's ini parser starts an inline comment at ';' or '#' after whitespace, even inside
        # quotes: close and reopen the quote in between ('a '';b' is shlex's "a ;b").
        arg = re.sub(r"(\s)([;#])", r"\1''\2", arg)
    # supervisord expands %(ENV_X)s in command= before splitting it with shlex.
    return arg.replace("%", "%%")


def supervisor_cmdline(argv: list[str]) -> str:
    """Quote an argument list for supervisord's ``command=`` (shlex rules, ``%`` doubled)."""
    return " ".join(_supervisor_word(arg) for arg in argv)


def supervisor_environment(environment: Mapping[str, str]) -> str:
    """The value of supervisord's ``environment=``: ``KEY="value",KEY2="value2"``.

    supervisord splits it with a non-POSIX shlex (quotes group, no escapes) and strips quote
    characters from both ends of each value, and its ini parser cuts at whitespace + ';'/'#': values
    those rules cannot carry are refused rather than mangled.
    """
    pairs = []
    for key, value in _env_items(environment):
        quote = '"' if '"' not in value else "'"
        unfit = (
            quote in value
            or value.startswith(("'", '"'))
            or value.endswith(("'", '"'))
            or re.search(r"[\x00\n\r]|\s[;#]", value)
        )
        if unfit:
            raise FleetError(
                [Problem("environment", f"{key}={value!r} cannot be written in supervisord's environment=")]
            )
        pairs.append(f"{key}={quote}{value}{quote}".replace("%", "%%"))
    return ",".join(pairs)


def stop_timeout(worker: Mapping[str, Any], margin: int = 30) -> int:
    """Seconds the process manager waits for a warm shutdown before it kills the worker.

    ``stop_timeout`` if set; else ``time_limit`` (rounded up) + soft_shutdown_timeout + ``margin``;
    else DEFAULT_STOP_TIMEOUT (600 s), since the app's own task_time_limit is not known here.
    """
    spec = normalize_worker(worker)
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise FleetError([Problem("margin", f"{_show(margin)} is not an integer >= 0", spec["name"])])
    if spec["stop_timeout"] is not None:
        return int(spec["stop_timeout"])
    if spec["time_limit"] is None:
        return DEFAULT_STOP_TIMEOUT
    return math.ceil(spec["time_limit"] + (spec["soft_shutdown_timeout"] or 0)) + margin


def pool_packages(workers: Iterable[Mapping[str, Any]]) -> list[str]:
    """Distribution names the app's virtualenv needs beyond celery for these (present) workers, sorted."""
    needed = set()
    for worker in workers:
        spec = normalize_worker(worker)
        if spec["state"] == "present" and spec["pool"] in POOL_PACKAGES:
            needed.add(POOL_PACKAGES[spec["pool"]])
    return sorted(needed)


def restart_names(workers: Iterable[Mapping[str, Any]], only: Iterable[str] | None = None) -> list[str]:
    """The present workers' names, in order, limited to ``only`` when given (rolling-restart.yml's
    ``celery_fleet_restart_workers``)."""
    chosen = None if only is None else set(only)
    names = []
    for raw in workers:
        worker = normalize_worker(raw)
        if worker["state"] == "present" and (chosen is None or worker["name"] in chosen):
            names.append(worker["name"])
    return names


def queue_waves(services: Iterable[tuple[str, Iterable[str]]]) -> list[list[str]]:
    """``(name, queues)`` pairs grouped into waves that restart together, first fit in their order:
    two services that share a queue are never in one wave, so a queue keeps a consumer while the
    other restarts; services that share none restart at once (one ``systemctl restart a b c``).

    >>> queue_waves([("a", ["q1"]), ("b", ["q2"]), ("c", ["q1", "q3"])])
    [['a', 'b'], ['c']]
    """
    waves: list[tuple[list[str], set[str]]] = []
    for name, queues in services:
        wanted = set(queues or ())
        for names, taken in waves:
            if not wanted & taken:
                names.append(name)
                taken |= wanted
                break
        else:
            waves.append(([name], wanted))
    return [names for names, _ in waves]


def restart_waves(workers: Iterable[Mapping[str, Any]], only: Iterable[str] | None = None) -> list[list[str]]:
    """The workers ``restart_names`` picks, in :func:`queue_waves` (rolling-restart.yml: one
    restart per wave, so a host's workers that share no queue stop and start together)."""
    chosen = set(restart_names(workers, only))
    specs = (normalize_worker(raw) for raw in workers)
    return queue_waves((w["name"], w["queues"]) for w in specs if w["name"] in chosen)
