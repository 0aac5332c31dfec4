"""The service descriptions that roles/celery_service turns into systemd units or supervisord programs.

roles/celery_service (internal: called by celery_worker, celery_beat and flower) writes every
long-running service of the fleet from one unit template and one program template, with the
hardening block once. What differs between services is data: a *service description* (the role's
``celery_service_services`` entries, documented in its ``meta/argument_specs.yml``). Beat and
Flower write their one description in YAML; a worker's is built here, since it follows from the
worker spec (its command line, stop timeout, devices, environment).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from celery_fleet.errors import FleetError, Problem
from celery_fleet.service import split_environment
from celery_fleet.workers import normalize_worker, queue_waves, stop_timeout, worker_argv, worker_environment

# What a worker's service needs from the app's layout and the role's settings.
WORKER_LAYOUT_KEYS = (
    "app",
    "manager",
    "prefix",
    "marker",
    "user",
    "group",
    "code_dir",
    "celery_bin",
    "entry_module",
    "env_file",
    "env_wrapper",
    "config_dir",
    "log_dir",
    "state_dir",
    "supervisor_log_dir",
    "restart_sec",
    "start_limit_interval_sec",
    "start_limit_burst",
    "start_secs",
    "start_retries",
)


def worker_service(
    worker: Mapping[str, Any], layout: Mapping[str, Any], restart: bool = False
) -> dict[str, Any]:
    """The service description of one worker (a spec as ``celery_workers`` holds it).

    ``layout`` gives the app's paths and the role's restart settings (:data:`WORKER_LAYOUT_KEYS`).
    The worker's variables that look like credentials (systemd), or all of them (supervisord), are
    in ``<config_dir>/worker-<name>.env`` (roles/celery_worker writes it): the unit reads that file
    when it exists, the program names it for the app's wrapper.
    """
    missing = [key for key in WORKER_LAYOUT_KEYS if key not in layout]
    if missing:
        raise FleetError([Problem("layout", f"missing {', '.join(missing)}")])
    spec = normalize_worker(worker)
    name = spec["name"]
    queues = spec["queues"]
    environment = worker_environment(spec)
    split = split_environment(environment, layout["manager"])
    own_env_file = f"{layout['config_dir']}/worker-{name}.env"
    argv = worker_argv(spec, layout["entry_module"], layout["celery_bin"])
    return {
        "name": f"{layout['prefix']}{name}",
        "marker": layout["marker"],
        "description": f"Celery worker {name} of {layout['app']} (queues {','.join(queues)})",
        # Services that share a queue restart one after the other (service_restart_waves).
        "queues": list(queues),
        "documentation": "https://docs.celeryq.dev/en/stable/userguide/workers.html",
        "header": [f"Celery worker '{name}' of the app '{layout['app']}': queues {', '.join(queues)}."],
        "user": layout["user"],
        "group": layout["group"],
        "directory": layout["code_dir"],
        "exec": argv,
        # The wrapper loads the app's environment file, then the worker's own one, as the service user.
        "command": [layout["env_wrapper"], *argv],
        "environment_files": [layout["env_file"]] + ([own_env_file] if split["file"] else []),
        "environment": split["inline"],
        "supervisor_environment": {"CELERY_FLEET_WORKER_ENV_FILE": own_env_file} if environment else {},
        # SIGTERM to the main process only: running tasks finish (warm shutdown, celery#6541).
        "kill_mode": "mixed",
        "stop_timeout": stop_timeout(spec),
        "stop_as_group": False,
        "restart_sec": int(layout["restart_sec"]),
        "start_limit_interval_sec": int(layout["start_limit_interval_sec"]),
        "start_limit_burst": int(layout["start_limit_burst"]),
        "start_secs": int(layout["start_secs"]),
        "start_retries": int(layout["start_retries"]),
        # supervisord (root) writes the log into a directory of root's, where the service cannot plant links.
        "log_dir": layout["supervisor_log_dir"],
        "log_max_bytes": "50MB",
        "log_backups": 5,
        "read_write_paths": [layout["log_dir"], layout["state_dir"]],
        "umask": "0027",
        "devices": list(spec["devices"]),
        "proc_subset": spec["proc_subset"],
        "memory_deny_write_execute": bool(spec["memory_deny_write_execute"]),
        "restart": bool(restart),
    }


def worker_services(
    workers: Iterable[Mapping[str, Any]], layout: Mapping[str, Any], restart: Iterable[str] | bool = ()
) -> list[dict[str, Any]]:
    """The service descriptions of the workers whose ``state`` is present, in their order.

    ``restart``: the names of the workers to restart although their unit or program is unchanged
    (their environment file changed), or True for all of them (the app changed).
    """
    names = None if restart is True else set(restart or ())
    services = []
    for worker in workers:
        spec = normalize_worker(worker)
        if spec["state"] != "present":
            continue
        services.append(worker_service(spec, layout, names is None or spec["name"] in names))
    return services


def worker_env_files(workers: Iterable[Mapping[str, Any]], manager: str = "systemd") -> list[dict[str, Any]]:
    """The present workers that need an environment file of their own, as ``{"key": name, "value":
    variables}`` (roles/celery_worker's loop): what ``split_environment`` keeps out of the unit or
    program; workers without any are left out."""
    files = []
    for raw in workers:
        worker = normalize_worker(raw)
        if worker["state"] != "present":
            continue
        variables = split_environment(worker_environment(worker), manager)["file"]
        if variables:
            files.append({"key": worker["name"], "value": variables})
    return files


def systemd_services(show: str | None) -> dict[str, list[str]]:
    """From ``systemctl show --property=Id,LoadState,SubState,UnitFileState -- <units>`` (one block
    of properties per unit, blocks parted by a blank line): the units systemd knows (a unit file
    loaded, masked or broken; not ``not-found``), and those running and enabled (names without
    ``.service``). roles/celery_service asks about its own units only: ``service_facts`` listed every
    unit and unit file of the host, 2 s of a converge's 9 on a bench host (bench/README.md, 10)."""

    def bare(name: str) -> str:
        return name.removesuffix(".service")

    known, running = [], []
    for block in (show or "").strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if not fields.get("Id") or fields.get("LoadState", "not-found") == "not-found":
            continue
        known.append(bare(fields["Id"]))
        if fields.get("SubState") == "running" and fields.get("UnitFileState") == "enabled":
            running.append(bare(fields["Id"]))
    return {"known": known, "running": running}


def service_restart_waves(services: Iterable[Mapping[str, Any]], names: Iterable[str]) -> list[list[str]]:
    """The services named in ``names`` (roles/celery_service's restart list), in the order of
    ``services``, as :func:`~celery_fleet.workers.queue_waves`: those that share a queue (the
    description's ``queues``) restart one after the other, the others together."""
    wanted = set(names or ())
    return queue_waves((s["name"], s.get("queues") or ()) for s in services if s["name"] in wanted)


def recorded_restarts(content: str | None, path: str = "the restart record") -> dict[str, list[str]]:
    """The restarts a previous run recorded on the host and did not finish (roles/celery_service
    with ``celery_service_defer_restarts``): ``{"restart": [names], "changed": [names]}``.

    ``content`` is the file's text, None or "" when there is none. A file that is not such a record
    fails the run rather than be ignored: ignoring it would drop restarts that are due.
    """
    if not content:
        return {"restart": [], "changed": []}
    try:
        record = json.loads(content)
    except ValueError as exc:
        detail = f"is not JSON ({exc}); restart the services by hand, then remove it"
        raise FleetError([Problem(path, detail)]) from exc
    if not isinstance(record, dict):
        raise FleetError([Problem(path, "is not a JSON object with 'restart' and 'changed' lists")])
    result = {}
    for key in ("restart", "changed"):
        names = record.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise FleetError([Problem(f"{path}: {key}", "must be a list of service names")])
        result[key] = list(names)
    return result


def pending_restarts(
    services: Iterable[Mapping[str, Any]],
    recorded: Mapping[str, Iterable[str]] | None,
    changed: Iterable[str],
    named: Iterable[str],
    started: Iterable[str],
    known: Iterable[str] | None = None,
) -> dict[str, list[str]]:
    """The services a deferred restart must restart, in the order of ``services``.

    A service restarts when it was recorded by an earlier run that stopped before restarting it
    (``recorded``), when its unit or program changed in this run (``changed``) or when the caller
    names it (``named``: its own files or the app changed), unless this run has just started it
    (``started``) or it is not among ``services`` any more. ``known`` (systemd's units, None for
    all) leaves out what the process manager does not know yet (check mode on a new unit).

    The result's ``changed`` is the part of ``restart`` whose unit or program changed (recorded as
    such, or changed now): supervisord must apply it with ``supervisorctl update``, not ``restart``.
    """
    recorded = recorded or {}
    skip = set(started or ())
    changed = set(changed or ())
    wanted = set(recorded.get("restart", ())) | set(recorded.get("changed", ())) | changed | set(named or ())
    redefined = set(recorded.get("changed", ())) | changed
    allowed = None if known is None else set(known)
    restart = [
        s["name"]
        for s in services
        if s["name"] in wanted and s["name"] not in skip and (allowed is None or s["name"] in allowed)
    ]
    return {"restart": restart, "changed": [name for name in restart if name in redefined]}
