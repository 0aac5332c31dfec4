"""Input rules of roles/redis that span variables (types and choices: meta/argument_specs.yml).

Called by roles/redis/tasks/validate.yml (with the per-OS package map, after set_vars.yml) and by
playbooks/validate.yml for every host of groups ``redis`` and ``redis_sentinel`` (no facts there:
the package check is left to the role). A host that only runs a Sentinel (in
``redis_sentinel_hosts``, not in ``redis_replication_hosts``) gets the Sentinel's rules only, not
the data node's. No message prints a password: users are named, never their passwords.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from celery_fleet.broker import CELERY_RULESETS, key_prefix_problems
from celery_fleet.errors import Problem
from celery_fleet.inputs import int_in_range, is_list, is_text, previous_password_problems

MIN_PASSWORD_LENGTH = 16
# redis_exporter: roles/redis_exporter's user (roles/redis vars/main.yml, measured rule set).
RULESETS = (*CELERY_RULESETS, "redis_exporter", "admin")
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
    """Every problem of one Redis host's variables (a Sentinel-only host: see :func:`is_data_node`).

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
    data_node = is_data_node(inputs, host)
    if data_node:
        _data_node_problems(inputs, add, host, problems)
    if get("redis_sentinel_enabled") is True:
        problems.extend(_sentinel_host_problems(inputs, host, data_node))
    return [str(p) for p in problems]


def is_data_node(inputs: Mapping[str, Any], host: str | None) -> bool:
    """False only for a host known to run a Sentinel and no server: in ``redis_sentinel_hosts`` and
    not in ``redis_replication_hosts``, both given as lists (the role's defaults are the groups
    redis and redis_sentinel; playbooks/validate.yml passes the groups). Otherwise a data node."""
    nodes, sentinels = inputs.get("redis_replication_hosts"), inputs.get("redis_sentinel_hosts")
    return not (
        host is not None and is_list(nodes) and is_list(sentinels) and host in sentinels and host not in nodes
    )


def _data_node_problems(
    inputs: Mapping[str, Any], add: Callable[[str, str], None], host: str | None, problems: list[Problem]
) -> None:
    """The rules of a host that runs the Redis server: ports, TLS, passwords, ACL users, memory."""
    get = inputs.get
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

    if default_user:
        problems.extend(
            _previous_password_problems(
                "redis_previous_passwords",
                "the default user",
                password,
                get("redis_previous_passwords", []),
                host,
            )
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


# Sentinel's own names: a Redis user or a master name with a space would break its config lines.
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SENTINEL_SECRETS = (
    "redis_sentinel_password",
    "redis_replication_password",
    "redis_sentinel_auth_password",
)
# What a host running only a Sentinel uses: its own password and the user it logs into the data
# nodes with (the replication user and the replicas' settings live on the data nodes).
SENTINEL_ONLY_SECRETS = ("redis_sentinel_password", "redis_sentinel_auth_password")


def _sentinel_host_problems(
    inputs: Mapping[str, Any], host: str | None, data_node: bool = True
) -> list[Problem]:
    """One host's Sentinel settings (redis_sentinel_enabled: true); the topology is checked once.
    ``data_node`` False: a host that runs a Sentinel only, checked for what its Sentinel uses."""
    get = inputs.get
    problems = []
    secrets = SENTINEL_SECRETS if data_node else SENTINEL_ONLY_SECRETS
    short = [f for f in secrets if not (is_text(get(f)) and len(get(f)) >= MIN_PASSWORD_LENGTH)]
    for field in short:
        problems.append(
            Problem(
                field,
                f"is missing, empty or shorter than {MIN_PASSWORD_LENGTH} characters while "
                "redis_sentinel_enabled is true; set it from Ansible Vault",
                host=host,
            )
        )
    rotating = (
        ("redis_replication_previous_passwords", "redis_replication_password"),
        ("redis_sentinel_auth_previous_passwords", "redis_sentinel_auth_password"),
    )
    for field, current in rotating if data_node else ():
        problems.extend(_previous_password_problems(field, current, get(current), get(field, []), host))
    problems.extend(
        _previous_password_problems(
            "redis_sentinel_previous_passwords",
            "redis_sentinel_password",
            get("redis_sentinel_password"),
            get("redis_sentinel_previous_passwords", []),
            host,
        )
    )
    names = ("redis_sentinel_master_name", "redis_replication_user", "redis_sentinel_auth_user")
    for field in names if data_node else (names[0], names[2]):
        value = get(field)
        if not (is_text(value) and NAME_RE.match(value)):
            problems.append(Problem(field, f"{value!r} is not 1-64 of A-Z a-z 0-9 _ . -", host=host))
    if get("redis_sentinel_exporter_password") is not None:
        problems.extend(_sentinel_exporter_problems(inputs, host))
    missing = [field for field in TLS_FILES if not (is_text(get(field)) and get(field))]
    if not data_node and get("redis_tls_enabled") is True and missing:
        # A data node's own rules name them already; its Sentinel reads the same files.
        problems.append(
            Problem(
                ", ".join(missing),
                "required with redis_tls_enabled: true on a Sentinel host too (it serves TLS only, with "
                "these paths of PEM files already on the host)",
                host=host,
            )
        )
    port = get("redis_sentinel_port", 26379)
    if not int_in_range(port, 1, 65535):
        problems.append(Problem("redis_sentinel_port", f"{port!r} is not a TCP port (1-65535)", host=host))
    elif data_node and str(port) in (str(get("redis_port", 6379)), str(get("redis_tls_port", 6380))):
        problems.append(
            Problem("redis_sentinel_port", f"{port!r} is also a port of the data node", host=host)
        )
    timings = (
        ("redis_sentinel_down_after_milliseconds", 100),
        ("redis_sentinel_failover_timeout", 1000),
        ("redis_sentinel_parallel_syncs", 1),
    )
    replicas = (("redis_min_replicas_to_write", 0), ("redis_min_replicas_max_lag", 1))
    for field, low in timings + replicas if data_node else timings:
        if not int_in_range(get(field), low):
            problems.append(Problem(field, f"{get(field)!r} is not an integer >= {low}", host=host))
    if not data_node:
        return problems
    own = {get("redis_replication_user"), get("redis_sentinel_auth_user")}
    users = get("redis_acl_users", [])
    taken = (
        sorted(str(u.get("name")) for u in users if isinstance(u, Mapping) and u.get("name") in own)
        if is_list(users)
        else []
    )
    if get("redis_replication_user") == get("redis_sentinel_auth_user") or "default" in own or taken:
        problems.append(
            Problem(
                "redis_replication_user, redis_sentinel_auth_user",
                "must differ from each other, from 'default' and from every redis_acl_users name "
                f"(the role writes these users itself; clashing: {', '.join(taken) or 'none'})",
                host=host,
            )
        )
    return problems


def _sentinel_exporter_problems(inputs: Mapping[str, Any], host: str | None) -> list[Problem]:
    """The exporter's user on the Sentinel (written when ``redis_sentinel_exporter_password`` is set)."""
    get = inputs.get
    problems = []
    password = get("redis_sentinel_exporter_password")
    if not (is_text(password) and len(password) >= MIN_PASSWORD_LENGTH):
        problems.append(
            Problem(
                "redis_sentinel_exporter_password",
                f"is empty or shorter than {MIN_PASSWORD_LENGTH} characters; set it from Ansible Vault",
                host=host,
            )
        )
    user = get("redis_sentinel_exporter_user", "exporter")
    if not (is_text(user) and NAME_RE.match(user)) or user == "default":
        problems.append(
            Problem(
                "redis_sentinel_exporter_user",
                f"{user!r} is not 1-64 of A-Z a-z 0-9 _ . - other than 'default' "
                "(the Sentinel's clients' user)",
                host=host,
            )
        )
    return problems


def sentinel_topology_problems(
    settings: Mapping[str, Any],
    data_nodes: list[str],
    sentinels: list[str],
    clients: Mapping[str, Any] | None = None,
) -> list[str]:
    """The Sentinel topology of the fleet, checked once (playbooks/validate.yml, the role's validate).

    ``settings``: redis_sentinel_enabled, redis_sentinel_quorum, redis_sentinel_initial_master,
    redis_sentinel_master_name and redis_min_replicas_to_write as the data nodes see them;
    ``data_nodes`` / ``sentinels``: the hosts of groups redis and redis_sentinel; ``clients``:
    client host -> (celery_broker_sentinels, celery_broker_master_name) of every host running an
    app service. Nothing is checked with Sentinel off, except that no client asks for it.
    """
    problems: list[Problem] = []
    enabled = settings.get("redis_sentinel_enabled") is True
    name = settings.get("redis_sentinel_master_name", "celery-fleet")
    for host, (addresses, client_name) in sorted((clients or {}).items()):
        if not addresses:
            continue
        if not enabled:
            problems.append(
                Problem(
                    "celery_broker_sentinels",
                    "is set while redis_sentinel_enabled is not true: no Sentinel would answer",
                    host=host,
                )
            )
        elif client_name is not None and client_name != name:
            problems.append(
                Problem(
                    "celery_broker_master_name",
                    f"{client_name!r} differs from redis_sentinel_master_name {name!r}: the "
                    "Sentinels know no master of that name",
                    host=host,
                )
            )
    if not enabled:
        return [str(p) for p in problems]
    field = "redis_sentinel_enabled"
    if not sentinels:
        problems.append(Problem(field, "is true but group redis_sentinel is empty or missing"))
    elif len(sentinels) < 3:
        problems.append(
            Problem(
                "redis_sentinel",
                f"has {len(sentinels)} host(s) ({', '.join(sentinels)}): at least 3 are needed, so "
                "that a majority survives the loss of one (an odd count is recommended)",
            )
        )
    if len(data_nodes) < 2:
        problems.append(
            Problem(
                field,
                f"is true but group redis has {len(data_nodes)} host(s): a failover needs a master "
                "and at least one replica (keep redis_sentinel_enabled false for a single broker)",
            )
        )
    declared = settings.get("redis_sentinel_quorum", 0)
    if not int_in_range(declared, 0):
        problems.append(Problem("redis_sentinel_quorum", f"{declared!r} is not an integer >= 0"))
    elif int(declared) > 0 and (int(declared) % 2 == 0 or int(declared) > len(sentinels)):
        problems.append(
            Problem(
                "redis_sentinel_quorum",
                f"{declared} must be odd and at most the {len(sentinels)} Sentinels (0: a majority)",
            )
        )
    initial = settings.get("redis_sentinel_initial_master")
    if initial not in data_nodes:
        problems.append(
            Problem(
                "redis_sentinel_initial_master",
                f"{initial!r} is not a host of group redis ({', '.join(data_nodes) or 'empty'})",
            )
        )
    replicas = settings.get("redis_min_replicas_to_write", 1)
    if int_in_range(replicas, 0) and int(replicas) > len(data_nodes) - 1:
        problems.append(
            Problem(
                "redis_min_replicas_to_write",
                f"{replicas} is more than the {len(data_nodes) - 1} replica(s) of group redis: the "
                "master would refuse every write",
            )
        )
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
    for user in users:
        problems.extend(
            _previous_password_problems(
                field,
                f"user {user.get('name')}",
                user.get("password"),
                user.get("previous_passwords", []),
                host,
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


def _previous_password_problems(
    field: str, owner: str, current: Any, previous: Any, host: str | None
) -> list[Problem]:
    """The passwords still accepted beside the current one during a rotation (phase 1 of README
    "Rotating a password without downtime"): distinct strings of the minimum length, none equal to
    the current password. ``owner`` names whose they are."""
    return previous_password_problems(
        field,
        f"previous passwords of {owner}",
        current,
        previous,
        host,
        ok=lambda p: len(p) >= MIN_PASSWORD_LENGTH,
        rule=f"is shorter than {MIN_PASSWORD_LENGTH} characters",
        purpose="clients move to it",
        current_as="the password",
    )
