"""Which of an app's celery-fleet services a host must stop and remove (roles/celery_retire).

Every service celery-fleet writes is named ``<app>-worker-<name>``, ``<app>-beat`` or
``<app>-flower`` and its unit (``/etc/systemd/system/<name>.service``) or program file
(``/etc/supervisor/conf.d/<name>.conf``) carries a marker naming the app (``X-CeleryFleet=`` in
a unit, a ``#`` comment in a program file). roles/celery_retire finds the marked files of one app
with a single ``find``; these functions decide from the paths found which of them the host no
longer runs: a kind of service (worker, beat, flower) the host does not keep, or one that runs
under the process manager the host does not select.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from celery_fleet.errors import FleetError, Problem
from celery_fleet.service import MANAGERS

KINDS = ("worker", "beat", "flower")
# Directory -> (process manager, file suffix) of the files celery-fleet writes.
SERVICE_DIRS = {
    "/etc/systemd/system": ("systemd", ".service"),
    "/etc/supervisor/conf.d": ("supervisord", ".conf"),
}
# Tags that select every kind, and the tags of each kind (site.yml's plays carry the same tags).
ALL_KINDS_TAGS = frozenset({"all", "tagged", "deploy", "retire"})
KIND_TAGS = {"worker": {"workers"}, "beat": {"beat"}, "flower": {"flower"}}


def marker_regex(app: str) -> str:
    """The line that marks a unit or program file of ``app``, as ``find``'s ``contains`` reads it
    (matched at the start of each line).

    Also matches the beat and Flower files written before they carried a marker: their unit's
    ``Description=`` line and their program header name the app exactly, so a host where beat or
    Flower ran before this version is cleaned up too.
    """
    if not app:
        raise FleetError([Problem("celery_app_name", "must be a non-empty name")])
    name = re.escape(app)
    kinds = "|".join(KINDS)
    legacy = "Celery beat, the periodic task scheduler of|Flower, the monitor of the Celery app"
    return (
        rf"(?:X-CeleryFleet=|# )celery-fleet (?:{kinds}) of app {name}$"
        rf"|Description=(?:{legacy}) {name}$"
        rf"|\[program:{name}-(?:beat|flower)\]$"
    )


def service_of(path: str, app: str) -> dict[str, str] | None:
    """``{path, name, kind, manager}`` of a unit or program file of ``app``; None for another file."""
    directory, _, filename = path.rpartition("/")
    if directory not in SERVICE_DIRS:
        return None
    manager, suffix = SERVICE_DIRS[directory]
    if not filename.startswith(f"{app}-") or not filename.endswith(suffix):
        return None
    name = filename[: -len(suffix)]
    rest = name[len(app) + 1 :]
    if rest.startswith("worker-") and len(rest) > len("worker-"):
        kind = "worker"
    elif rest in ("beat", "flower"):
        kind = rest
    else:
        return None
    return {"path": path, "name": name, "kind": kind, "manager": manager}


def _check(field: str, values: Iterable[str], allowed: tuple[str, ...]) -> list[Problem]:
    wrong = [v for v in values if v not in allowed]
    if not wrong:
        return []
    return [Problem(field, f"{', '.join(map(repr, wrong))} not among {', '.join(allowed)}")]


def stale_services(
    paths: Iterable[str],
    app: str,
    manager: str,
    keep: Iterable[str],
    kinds: Iterable[str] = KINDS,
) -> list[dict[str, str]]:
    """The services among ``paths`` (marked files of ``app`` found on one host) that the host
    must stop and remove, sorted by name.

    ``manager`` is the host's process manager, ``keep`` the kinds the host runs (from its
    groups), ``kinds`` the kinds this run may retire. A service is stale when its kind is in
    ``kinds`` and either the host does not keep that kind, or the service runs under the other
    process manager. Workers the host keeps under its own manager are left to roles/celery_worker,
    which knows the declared ones.
    """
    keep, kinds = list(keep), list(kinds)
    problems = _check("celery_process_manager", [manager], MANAGERS)
    problems += _check("celery_retire_keep", keep, KINDS) + _check("celery_retire_kinds", kinds, KINDS)
    if problems:
        raise FleetError(problems)
    found = (service_of(path, app) for path in paths)
    stale = [
        service
        for service in found
        if service is not None
        and service["kind"] in kinds
        and (service["kind"] not in keep or service["manager"] != manager)
    ]
    return sorted(stale, key=lambda service: (service["name"], service["manager"]))


def retire_kinds(run_tags: Iterable[str]) -> list[str]:
    """The kinds a run with these ``--tags`` (Ansible's ``ansible_run_tags``) may retire: every kind
    for a run without tags or with ``deploy``/``retire``, else those whose play is selected
    (``workers``, ``beat``/``celery_beat``, ``flower``). ``--tags beat`` moves beat without
    stopping a worker whose new service that run would not start."""
    tags = set(run_tags)
    if tags & ALL_KINDS_TAGS:
        return list(KINDS)
    return [kind for kind in KINDS if KIND_TAGS[kind] & tags]
