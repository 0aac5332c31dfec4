"""Shared pieces of the per-role input rules (redis_rules, flower_rules, beat_rules, app_rules).

Every rule function takes ``inputs``, a mapping of the role's variables (name -> value; a name that
is absent is unset, a role default already applied by Ansible or by :func:`role_inputs`), and the
inventory host, and returns a list of problems as strings, one a line, each naming the host, the
field and what is allowed (:class:`celery_fleet.errors.Problem`). An empty list means valid.
The rules never raise on a wrong type: the argument specs are the type gate, and a rule that meets
a value of the wrong type reports it as a problem instead of failing with a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from celery_fleet.errors import Problem
from celery_fleet.service import MANAGERS as PROCESS_MANAGERS

DEFAULT_PROCESS_MANAGER = "systemd"


def is_int(value: Any) -> bool:
    """An int that is not a bool (YAML's true is not a port number)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value: Any) -> bool:
    return isinstance(value, str)


def is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def int_in_range(value: Any, low: int, high: int | None = None) -> bool:
    """``value`` is an integer (or a string of one, as Ansible may template it) within the bounds."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not is_int(value):
        return False
    return value >= low and (high is None or value <= high)


def port_problem(field: str, value: Any, host: str | None) -> Problem | None:
    if int_in_range(value, 1, 65535):
        return None
    return Problem(field, f"{value!r} is not a TCP port (1-65535)", host=host)


# What the PEM content of a TLS variable (from the vault) must hold, checked without printing it.
PEM_CERT = "-----BEGIN CERTIFICATE-----"
PEM_KEY_RE = re.compile(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----")


def pem_problem(field: str, value: Any, what: str, host: str | None = None) -> Problem | None:
    """``value`` (``what``: "certificate" or "key") is not PEM content of that kind; unset: none.

    The message names the variable and the block it must hold, never the content.
    """
    if value in (None, ""):
        return None
    if isinstance(value, str) and (PEM_CERT in value if what == "certificate" else PEM_KEY_RE.search(value)):
        return None
    kind = PEM_CERT if what == "certificate" else "-----BEGIN ... PRIVATE KEY-----"
    return Problem(field, f"is not PEM {what} content (expected a {kind} block; not shown)", host=host)


def previous_password_problems(
    field: str,
    owner: str,
    current: Any,
    previous: Any,
    host: str | None,
    *,
    ok: Any,
    rule: str,
    purpose: str,
    current_as: str,
) -> list[Problem]:
    """The passwords still accepted beside the current one during phase 1 of a rotation: a list of
    distinct strings, each passing ``ok`` (``rule`` says what fails it), none equal to ``current``.
    ``owner`` starts each message ("previous passwords of redis_x"); no message shows a password."""
    if previous is None or (is_list(previous) and len(previous) == 0):
        return []
    if not is_list(previous) or not all(is_text(p) for p in previous):
        return [
            Problem(
                field,
                f"{owner} must be a list of strings (the passwords still accepted beside the current "
                f"one while {purpose})",
                host=host,
            )
        ]
    problems = []
    bad = [str(i + 1) for i, p in enumerate(previous) if not ok(p)]
    if bad:
        problems.append(Problem(field, f"{owner}: number {', '.join(bad)} of the list {rule}", host=host))
    if current in previous or len(set(previous)) != len(previous):
        problems.append(
            Problem(
                field,
                f"{owner} repeat the current password or each other: list each password once, the "
                f"current one only as {current_as}",
                host=host,
            )
        )
    return problems


def process_manager_problems(inputs: Mapping[str, Any], host: str | None = None) -> list[str]:
    """``celery_process_manager`` (unset: systemd) is one the roles know how to run services under."""
    manager = inputs.get("celery_process_manager")
    if manager is None or manager in PROCESS_MANAGERS:
        return []
    return [
        str(
            Problem(
                "celery_process_manager",
                f"{manager!r} is not one of {', '.join(PROCESS_MANAGERS)}",
                host=host,
            )
        )
    ]


def role_inputs(options: Mapping[str, Any], provided: Mapping[str, Any]) -> dict[str, Any]:
    """A role's variables as the role would see them: its argument spec's defaults, then ``provided``.

    ``options`` is ``argument_specs.main.options`` of the role's ``meta/argument_specs.yml`` (its
    defaults equal ``defaults/main.yml``, checked by scripts/argspec-table.py); ``provided`` the
    host's variables that are set. Names outside the spec are dropped.
    """
    inputs = {
        name: option["default"]
        for name, option in options.items()
        if isinstance(option, Mapping) and "default" in option
    }
    inputs.update((name, value) for name, value in provided.items() if name in options)
    return inputs
