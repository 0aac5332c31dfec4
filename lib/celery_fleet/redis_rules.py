"""Input rules of roles/redis that span variables (types and choices: meta/argument_specs.yml).

Called by roles/redis/tasks/validate.yml (with the per-OS package map, after set_vars.yml) and by
playbooks/validate.yml for every host of group ``redis`` (no facts there: the package check is
left to the role). No message prints a password: users are named, never their passwords.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from celery_fleet.broker import CELERY_RULESETS, key_prefix_problems
from celery_fleet.errors import Problem
from celery_fleet.inputs import int_in_range, is_list, is_text

MIN_PASSWORD_LENGTH = 16
RULESETS = (*CELERY_RULESETS, "admin")
SERVERS = ("redis", "valkey")
# Tokens the role writes itself (password hashes, on/off): a raw rule carrying one would set a
# clear-text password, open the user without one or undo the role's state.
RULE_PASSWORD_RE = re.compile(r"(^| )([<>#!][^ ]*|nopass|resetpass|reset|on|off)( |$)")
TLS_FILES = ("redis_tls_cert_file", "redis_tls_key_file", "redis_tls_ca_file")


def redis_problems(
    inputs: Mapping[str, Any],
    host: str | None = None,
    packaged: Mapping[str, Any] | None = None,
    system: str = "this system",
) -> list[str]:
    """Every problem of one Redis host's variables.

    ``packaged``: server -> package on the host's system (roles/redis vars/<distribution>_<major>.yml);
    None skips that check (playbooks/validate.yml gathers no facts). ``system`` names the system in
    the message ("Debian 12").
    """
    problems: list[Problem] = []
    get = inputs.get

    def add(field: str, detail: str) -> None:
        problems.append(Problem(field, detail, host=host))

    server = get("redis_server", "redis")
    if packaged is not None and server not in packaged:
        add(
            "redis_server",
            f"{server!r} is not packaged by {system}; allowed here: {', '.join(map(str, packaged))}",
        )

    tls = get("redis_tls_enabled") is True
    port, tls_port = get("redis_port", 6379), get("redis_tls_port", 6380)
    if not (int_in_range(port, 1, 65535) or (int_in_range(port, 0, 0) and tls)):
        add(
            "redis_port",
            f"{port!r} is not a TCP port (1-65535; 0, no plain TCP, only with redis_tls_enabled)",
        )
    if tls and not int_in_range(tls_port, 1, 65535):
        add("redis_tls_port", f"{tls_port!r} is not a TCP port (1-65535)")
    elif tls and str(tls_port) == str(port):
        add("redis_tls_port", f"{tls_port!r} is also redis_port: the TLS port must differ from it")
    if tls:
        missing = [field for field in TLS_FILES if not (is_text(get(field)) and get(field))]
        if missing:
            add(
                ", ".join(missing),
                "required with redis_tls_enabled: true (paths of PEM files already on the host)",
            )

    default_user = get("redis_default_user_enabled", True) is not False
    password = get("redis_password")
    if default_user and not (is_text(password) and len(password) >= MIN_PASSWORD_LENGTH):
        add(
            "redis_password",
            f"is missing, empty or shorter than {MIN_PASSWORD_LENGTH} characters while "
            "redis_default_user_enabled is true; set it from Ansible Vault, or set "
            "redis_default_user_enabled: false and give an ACL user the admin rule set",
        )

    problems.extend(_acl_user_problems(get("redis_acl_users", []), default_user, host))

    policy = get("redis_maxmemory_policy", "noeviction")
    if policy != "noeviction" and get("redis_maxmemory_policy_override") is not True:
        add(
            "redis_maxmemory_policy",
            f"{policy!r} evicts, and eviction silently drops queued tasks (Celery's queues and its "
            "unacked hash are ordinary keys, deleted without an error); allowed: noeviction, or "
            "set redis_maxmemory_policy_override: true for an instance that is not a Celery broker",
        )

    problems.extend(
        p.on_host(host) for p in key_prefix_problems(get("redis_acl_key_prefix", ""), "redis_acl_key_prefix")
    )
    db = get("redis_acl_celery_db", 0)
    if not int_in_range(db, 0):
        add("redis_acl_celery_db", f"{db!r} is not a database number >= 0")
    return [str(p) for p in problems]


def _acl_user_problems(users: Any, default_user: bool, host: str | None) -> list[Problem]:
    field = "redis_acl_users"
    if not is_list(users) or not all(isinstance(u, Mapping) for u in users):
        return [Problem(field, "is not a list of mappings (name, password, ruleset or rules)", host=host)]
    problems = []
    names = [u.get("name") for u in users]
    duplicates = sorted(str(n) for n, count in Counter(map(str, names)).items() if count > 1)
    if duplicates or "default" in names:
        problems.append(
            Problem(
                field,
                "names must be unique and not 'default' (the role manages the default user); "
                f"duplicated: {', '.join(duplicates) or 'none'}; names: {', '.join(map(str, names))}",
                host=host,
            )
        )
    short = [
        str(u.get("name"))
        for u in users
        if not (is_text(u.get("password")) and len(u["password"]) >= MIN_PASSWORD_LENGTH)
    ]
    if short:
        problems.append(
            Problem(
                field,
                f"every password needs at least {MIN_PASSWORD_LENGTH} characters "
                f"(too short: {', '.join(short)})",
                host=host,
            )
        )
    unknown = [
        f"{u.get('name')} ({u['ruleset']!r})"
        for u in users
        if "ruleset" in u and u["ruleset"] not in RULESETS
    ]
    if unknown:
        problems.append(
            Problem(
                field,
                f"unknown ruleset of {', '.join(unknown)}; allowed: {', '.join(RULESETS)}",
                host=host,
            )
        )
    neither = [str(u.get("name")) for u in users if ("ruleset" in u) == ("rules" in u)]
    if neither:
        problems.append(
            Problem(field, f"users {', '.join(neither)}: set exactly one of ruleset or rules", host=host)
        )
    raw = [
        str(u.get("name")) for u in users if is_text(u.get("rules")) and RULE_PASSWORD_RE.search(u["rules"])
    ]
    if raw:
        problems.append(
            Problem(
                field,
                "raw rules must not carry passwords, nopass, reset or on/off, the role writes those "
                f"(offending users: {', '.join(raw)})",
                host=host,
            )
        )
    if not default_user and not any(u.get("ruleset") == "admin" for u in users):
        problems.append(
            Problem(
                field,
                "redis_default_user_enabled is false and no user has ruleset admin: the role needs "
                "one for its live commands (AOF switch, readiness check)",
                host=host,
            )
        )
    return problems
