"""What the fleet sets on the broker connection of every service, and the Redis ACL rules that follow.

An app that was not written for celery-fleet sets no kombu ``global_keyprefix`` and keeps kombu's
default ``visibility_timeout``. The fleet therefore runs every service through one entry module
(roles/celery_app, ``celery -A celery_fleet_app``) that imports the app and merges these options
into the app's own ``broker_transport_options`` / ``result_backend_transport_options``: the
fleet's keys win (validation reasons about them), the app's other keys stay.

Key scoping is opt-in: with no prefix (the default) the Celery ACL rule sets allow every key and
channel (``~* &*``) and restrict commands only; with a prefix they allow only keys and channels
under it, and every client of the broker, producers included, must use the same prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from celery_fleet.errors import FleetError, Problem

# kombu's Redis transport default (seconds); also what validation assumes when none is declared.
DEFAULT_VISIBILITY_TIMEOUT = 3600

# Characters that mean something in an ACL pattern (* ? [ ] \) or split an ACL line (space) are
# refused; so is anything a kombu key or a Redis channel name would not carry as it is.
KEY_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:/-]{0,64}$")

# The Celery rule sets (roles/redis) and what each may read beyond the fleet's keys: kombu's fanout
# channels (PSUBSCRIBE patterns are matched literally by the ACL, so they are listed as subscribed).
CELERY_RULESETS: dict[str, tuple[str, ...]] = {
    "celery_worker": ("celery.pidbox", "celeryev/worker.*"),
    "celery_producer": (),
    "celery_flower": ("celeryev/*",),
}


def key_prefix_problems(prefix: Any, field: str) -> list[Problem]:
    """Why ``prefix`` cannot be a kombu global_keyprefix / ACL key pattern prefix (empty: it can)."""
    if not isinstance(prefix, str):
        return [Problem(field, f'{prefix!r} is not a string (use "" for no key scoping)')]
    if not KEY_PREFIX_RE.match(prefix):
        return [
            Problem(
                field,
                f"{prefix!r} is not allowed: up to 64 of the characters A-Z a-z 0-9 _ . : / - "
                '("" turns key scoping off; * ? [ ] \\ and spaces would change the ACL patterns)',
            )
        ]
    return []


def acl_rulesets(prefix: str, db: int, commands: str) -> dict[str, str]:
    """The rule strings of the Celery rule sets (without user, password and on/off), by name.

    ``commands`` is the command part (``-@all +ping ...``), ``db`` the broker URL's database
    number, which kombu puts into its fanout channel names (``/0.celery.pidbox``).
    """
    problems = key_prefix_problems(prefix, "redis_acl_key_prefix")
    if not isinstance(db, int) or isinstance(db, bool) or db < 0:
        problems.append(Problem("redis_acl_celery_db", f"{db!r} is not a database number >= 0"))
    if problems:
        raise FleetError(problems)
    rulesets = {}
    for name, fanout in CELERY_RULESETS.items():
        if prefix:
            # With `&*` a channel pattern after it is refused by Redis ("Adding a pattern after
            # the * pattern ... is not valid"): the fanout patterns exist only with a prefix.
            scope = [f"resetkeys ~{prefix}*", f"resetchannels &{prefix}*"]
            scope += [f"&{prefix}/{db}.{channel}" for channel in fanout]
        else:
            scope = ["resetkeys ~*", "resetchannels &*"]
        rulesets[name] = " ".join([*scope, " ".join(commands.split())])
    return rulesets


def transport_options(visibility_timeout: Any = None, key_prefix: Any = "") -> dict[str, dict[str, Any]]:
    """The options the fleet merges into every service's transport options.

    ``{"broker": {...}, "backend": {...}}``: the broker always gets ``visibility_timeout`` (the
    declared value, else kombu's default, so that what validation assumed is what runs), both get
    ``global_keyprefix`` when a prefix is set.
    """
    problems = key_prefix_problems(key_prefix, "celery_broker_key_prefix")
    seconds = DEFAULT_VISIBILITY_TIMEOUT if visibility_timeout in (None, "") else visibility_timeout
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        seconds = 0
    if seconds < 1 or isinstance(visibility_timeout, bool):
        problems.append(
            Problem(
                "celery_broker_visibility_timeout", f"{visibility_timeout!r} is not a number of seconds >= 1"
            )
        )
    if problems:
        raise FleetError(problems)
    broker: dict[str, Any] = {"visibility_timeout": seconds}
    backend: dict[str, Any] = {}
    if key_prefix:
        broker["global_keyprefix"] = key_prefix
        backend["global_keyprefix"] = key_prefix
    return {"broker": broker, "backend": backend}


def option_errors(where: str, expected: Mapping[str, Any], running: Any) -> list[str]:
    """Each key of ``expected`` that the running connection's transport options lack or differ in."""
    if not isinstance(running, Mapping):
        return [f"{where}: reported no broker transport options (expected {dict(expected)})"]
    errors = []
    for key, value in expected.items():
        if key not in running:
            errors.append(f"{where}: broker transport option {key} is not set (the fleet sets {value!r})")
        elif running[key] != value:
            errors.append(
                f"{where}: broker transport option {key} is {running[key]!r}, the inventory says {value!r}"
            )
    return errors


def scoping_errors(
    prefix_by_host: Mapping[str, Any], visibility_by_host: Mapping[str, Any], broker_prefix: Any = None
) -> list[str]:
    """The fleet's key prefixes and visibility timeouts, checked before any host changes.

    ``prefix_by_host``/``visibility_by_host``: each client host's ``celery_broker_key_prefix`` and
    ``celery_broker_visibility_timeout`` (None: unset). ``broker_prefix``: the broker host's
    ``redis_acl_key_prefix`` (None: no broker host in the inventory). With scoping on at the broker,
    a client with another prefix would be refused every key; with scoping off and a client prefix,
    the client runs but the prefix protects nothing. Both are reported.
    """
    errors = []
    for host, prefix in prefix_by_host.items():
        problems = key_prefix_problems("" if prefix is None else prefix, "celery_broker_key_prefix")
        try:
            transport_options(visibility_by_host.get(host), "")
        except FleetError as exc:
            problems.extend(exc.problems)
        errors.extend(str(p.on_host(str(host))) for p in problems)
        if broker_prefix is not None and not problems and (prefix or "") != broker_prefix:
            errors.append(
                str(
                    Problem(
                        "celery_broker_key_prefix",
                        f"{prefix or ''!r} differs from the broker's redis_acl_key_prefix {broker_prefix!r}: "
                        'set both to the same value ("" for no key scoping)',
                        host=str(host),
                    )
                )
            )
    if broker_prefix is not None:
        errors.extend(str(p) for p in key_prefix_problems(broker_prefix, "redis_acl_key_prefix"))
    return errors
