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
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from celery_fleet.errors import FleetError, Problem
from celery_fleet.inputs import pem_problem

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


# --- Connection settings of every client: direct Redis or through Sentinel ----------------------

# Transport options that hold a secret: never printed, never compared by value (option_errors).
SECRET_OPTIONS = frozenset({"sentinel_kwargs"})
SECRET_SET = "<set, not shown>"
# What verification expects of sentinel_kwargs with TLS on: set, and with these keys (their names
# are all the live check reports of it: celery_fleet_live.py).
SECRET_SET_TLS = "<set with TLS, not shown>"
SENTINEL_TLS_KEYS = ("ssl", "ssl_cert_reqs", "ssl_ca_certs")
# A Sentinel as clients reach it: a host name or IPv4 address and a port.
SENTINEL_ADDRESS_RE = re.compile(r"^[A-Za-z0-9_.-]+:[0-9]{1,5}$")

# What a Sentinel client needs to move to a new master without a restart (measured with Celery 5.7,
# kombu 5.7, redis-py 8.1, Redis 7.0, down-after-milliseconds 5000; README "Broker high
# availability"). After `kill -9` of the master the kernel resets every connection and the
# defaults resumed in 6.1 s; a master that stops answering without closing its connections (frozen
# process, lost host or network) left worker and producer blocked for good with the defaults
# (no socket timeout). Socket timeouts on every connection (data node and Sentinel: redis-py gives
# sentinel_kwargs none of the client's socket options once sentinel_kwargs is set) and kombu's
# health checks every 2 s (a BRPOP overdue by brpop_timeout + health_check_interval is dropped)
# brought the resume to 9.7-15 s. The result backend takes Celery's redis_* settings, not its
# transport options, for the same socket settings.
SENTINEL_SOCKET_TIMEOUT = 5
SENTINEL_HEALTH_CHECK_INTERVAL = 2
_SOCKET = {
    "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
    "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT,
    "socket_keepalive": True,
}
# Connecting to a Sentinel: 1 s, and no retry by redis-py. A host that is gone (its Sentinel with
# it) takes the whole connect timeout (on a Docker bridge: "No route to host" after 3.06 s,
# measured), and every discovery of the master asks the Sentinels in the URL's order: kombu and the
# result backend make a new Sentinel client, so a new discovery, for each connection they open, and
# a worker opens a dozen while it reconnects. A Sentinel that answers at all accepts a connection
# within milliseconds (the kernel answers, however busy the process); one that does not is skipped
# for the next.
# Skipped at once only without redis-py's own retries: redis-py 8 gives every client it builds from
# keyword arguments, the Sentinel clients of kombu and of the result backend included, 10 retries
# with backoff (its DEFAULT_RETRY_COUNT) of each connect and each command, so one discovery with the
# first Sentinel gone took 11 connect timeouts: 17.2 s with 1 s (measured), and the workers resumed
# 46-70 s after the first Sentinel's host vanished with the master (stack dumps: the worker's main
# thread in redis-py's Retry.call_with_retry under Sentinel.discover_master). "retry": None
# (JSON null) makes redis-py build its no-retry policy, Retry(NoBackoff(), 0): a failed Sentinel is
# left for the next one of the list at once, and kombu's and Celery's own retries do the retrying.
SENTINEL_CONNECT_TIMEOUT = 1
_SENTINEL_SOCKET = {**_SOCKET, "socket_connect_timeout": SENTINEL_CONNECT_TIMEOUT, "retry": None}
SENTINEL_BROKER_OPTIONS: dict[str, Any] = {**_SOCKET, "health_check_interval": SENTINEL_HEALTH_CHECK_INTERVAL}
# A task that ends while the master is away cannot store its result: by default Celery then stores
# FAILURE(ConnectionError) once it can and acknowledges the message, so a caller sees a task that
# ran as failed (measured: tasks counted lost at a kill -9 were such). Retried instead, with
# Celery's backoff (full jitter, from 10 ms doubling up to RESULT_RETRY_MAX_SLEEP_MS), up to
# RESULT_RETRIES times: about 65 s at most, 33 s on average, against 7-9 s for a failover.
RESULT_RETRIES = 20
RESULT_RETRY_MAX_SLEEP_MS = 5000
SENTINEL_CELERY_SETTINGS: dict[str, Any] = {
    "redis_socket_timeout": SENTINEL_SOCKET_TIMEOUT,
    "redis_socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT,
    "redis_socket_keepalive": True,
    "redis_backend_health_check_interval": SENTINEL_HEALTH_CHECK_INTERVAL,
    "result_backend_always_retry": True,
    "result_backend_max_retries": RESULT_RETRIES,
    "result_backend_max_sleep_between_retries_ms": RESULT_RETRY_MAX_SLEEP_MS,
}


def userinfo(user: Any, password: Any) -> str:
    """``user:password`` percent-encoded as the roles did with ``urlencode | replace('/', '%2F')``.

    Jinja's urlencode keeps only ``/`` and RFC 3986's unreserved characters; '/' is encoded too, so
    that a '/' or '@' in a password cannot end the URL's userinfo.
    """
    return f"{quote(str(user or ''), safe='')}:{quote(str(password or ''), safe='')}"


def sentinel_problems(
    sentinels: Any, master_name: Any, password: Any, prefix: str = "celery_broker"
) -> list[Problem]:
    """Why these Sentinel client settings cannot be used (no Sentinels: nothing to check).

    ``prefix``: the variables' prefix (``celery_broker``: ``celery_broker_sentinels``, ...).
    """
    if sentinels is None:
        sentinels = []
    if not isinstance(sentinels, Sequence) or isinstance(sentinels, str):
        return [Problem(f"{prefix}_sentinels", f'{sentinels!r} is not a list of "address:port" strings')]
    problems = []
    for item in sentinels:
        if (
            not isinstance(item, str)
            or not SENTINEL_ADDRESS_RE.match(item)
            or not 1 <= int(item.rsplit(":", 1)[1]) <= 65535
        ):
            problems.append(
                Problem(
                    f"{prefix}_sentinels",
                    f'{item!r} is not an "address:port" string '
                    "(a host name or IPv4 address and a port 1-65535)",
                )
            )
    if len(set(map(str, sentinels))) != len(sentinels):
        problems.append(Problem(f"{prefix}_sentinels", "names a Sentinel more than once"))
    if sentinels:
        if not isinstance(master_name, str) or not master_name or master_name.strip() != master_name:
            problems.append(
                Problem(
                    f"{prefix}_master_name",
                    f"{master_name!r} is not a Sentinel master name "
                    "(a non-empty string without surrounding spaces)",
                )
            )
        if not isinstance(password, str) or not password:
            problems.append(
                Problem(
                    f"{prefix}_sentinel_password",
                    f"is required with {prefix}_sentinels "
                    "(the Sentinels' requirepass; keep it in a vault file)",
                )
            )
    return problems


# --- TLS to the broker ------------------------------------------------------------------------

# Client certificate verification of every client (issue 18): kombu's Redis transport takes the
# broker's TLS settings only from Celery's broker_use_ssl (a rediss:// URL without it connects with
# CERT_NONE, kombu warns "defaulting to insecure SSL behaviour"), the result backend from
# redis_backend_use_ssl. redis-py's SSLConnection and Celery's backend both read
# ssl_cert_reqs "required" as ssl.CERT_REQUIRED, so the settings travel as JSON.
#
# Through Sentinel there are two hops, and each takes its TLS settings from its own place (kombu
# 5.7 SentinelChannel._sentinel_managed_pool, Celery 5.7 SentinelBackend._get_sentinel_instance,
# redis-py 8.1 redis.sentinel.Sentinel): the master's connections from broker_use_ssl /
# redis_backend_use_ssl (kombu and Celery then use SentinelManagedSSLConnection), the connections
# to the Sentinels from sentinel_kwargs only, which redis-py passes as they are to redis.Redis. So
# sentinel_kwargs gets ssl=True and the same verification keys (``sentinel_tls_kwargs``); the URLs
# stay sentinel://. redis-py checks the host name of both hops (ssl_check_hostname, default on):
# the name or address a client dials, the Sentinel's from celery_broker_sentinels and the master's
# as the Sentinels report it, must be among the certificate's names.
TLS_CERT_REQS = "required"


def tls_problems(enabled: Any, ca_file: Any, cert_file: Any = "", key_file: Any = "") -> list[Problem]:
    """Why these client TLS files cannot be used (TLS off: nothing to check).

    The paths are where the roles install the PEM content of celery_broker_tls_ca / _cert / _key
    (their layouts): a problem names the variable a user sets, not this function's parameter.
    tls_input_problems checks that content first, so these fire only for a caller passing paths
    of its own.
    """
    if not enabled:
        return []
    problems = []
    for field, value in (
        ("celery_broker_tls_ca", ca_file),
        ("celery_broker_tls_cert", cert_file),
        ("celery_broker_tls_key", key_file),
    ):
        if value and (not isinstance(value, str) or not value.startswith("/")):
            problems.append(Problem(field, f"installed at {value!r}: not an absolute path on the host"))
    if not ca_file:
        problems.append(
            Problem(
                "celery_broker_tls_ca",
                "is required with TLS on (celery_broker_tls_enabled or redis_tls_enabled true): the CA "
                "that signed the broker's certificate, which every client verifies (ssl_cert_reqs required)",
            )
        )
    if bool(cert_file) != bool(key_file):
        problems.append(
            Problem(
                "celery_broker_tls_key" if cert_file else "celery_broker_tls_cert",
                "a client certificate needs both celery_broker_tls_cert and celery_broker_tls_key",
            )
        )
    return problems


def tls_enabled(inputs: Mapping[str, Any]) -> Any:
    """A client's TLS switch: celery_broker_tls_enabled, else the fleet's redis_tls_enabled, else off.

    One switch for the fleet: ``redis_tls_enabled: true`` in group_vars/all turns TLS on at the
    broker and in every client; celery_broker_tls_enabled overrides it for a client (a broker that
    is not in the inventory).
    """
    value = inputs.get("celery_broker_tls_enabled")
    return inputs.get("redis_tls_enabled", False) if value is None else value


def tls_input_problems(enabled: Any, ca: Any = "", cert: Any = "", key: Any = "") -> list[Problem]:
    """Why these client TLS variables (PEM content, from the vault) cannot be used; TLS off: none.

    The messages name the variable and what it must hold, never its content.
    """
    if not isinstance(enabled, bool):
        return [
            Problem(
                "celery_broker_tls_enabled",
                f"{enabled!r} is not true or false (default: redis_tls_enabled, else false)",
            )
        ]
    if not enabled:
        return []
    checked = (
        pem_problem("celery_broker_tls_ca", ca, "certificate"),
        pem_problem("celery_broker_tls_cert", cert, "certificate"),
        pem_problem("celery_broker_tls_key", key, "key"),
    )
    problems = [problem for problem in checked if problem]
    if not ca:
        problems.append(
            Problem(
                "celery_broker_tls_ca",
                "is required with TLS on (celery_broker_tls_enabled or redis_tls_enabled true): the PEM "
                "content of the CA that signed the broker's certificate, which every client verifies",
            )
        )
    if bool(cert) != bool(key):
        missing = "celery_broker_tls_key" if cert else "celery_broker_tls_cert"
        problems.append(
            Problem(
                missing,
                "a client certificate needs both celery_broker_tls_cert and celery_broker_tls_key "
                "(or neither: the broker then must not require client certificates, redis_tls_auth_clients)",
            )
        )
    return problems


def tls_fleet_errors(
    clients: Mapping[str, Any],
    broker: Mapping[str, Any] | None,
    servers: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """The clients' TLS switch against the broker's, checked before any host changes.

    ``clients``: each app host's effective switch (``tls_enabled``). ``broker``: the broker host's
    ``redis_tls_enabled`` and ``redis_port`` (None: no broker host in the inventory, nothing to
    compare). A client with TLS on and a broker without TLS port would not connect; a client without
    TLS and a TLS-only broker (redis_port 0) neither.

    ``servers`` (a Sentinel topology: redis_sentinel_enabled): the same two settings of every data
    node and every Sentinel host, by host, and ``sentinel``: whether the host runs a Sentinel;
    ``broker`` is then not read. A client reaches a Sentinel
    and then whichever data node is master, so a TLS client needs TLS on all of them, and a plain
    client none with TLS: a Sentinel with redis_tls_enabled listens only on TLS (roles/redis), and a
    data node with redis_port 0 too.
    """
    if servers is not None:
        plain = sorted(
            str(host) for host, server in servers.items() if server.get("redis_tls_enabled") is not True
        )
        tls_only = sorted(
            str(host)
            for host, server in servers.items()
            if server.get("redis_tls_enabled") is True
            and (server.get("sentinel") or str(server.get("redis_port", 6379)) == "0")
        )
        needs_tls = (
            f"redis_tls_enabled is false on {', '.join(plain)}: turn TLS on on every data node and Sentinel "
            "(through Sentinel a client reaches both)"
            if plain
            else ""
        )
        refuses_plain = (
            f"{', '.join(tls_only)} speak only TLS (a Sentinel with redis_tls_enabled, a data node with "
            "redis_port 0)"
            if tls_only
            else ""
        )
    elif broker is None:
        return []
    else:
        server_tls = broker.get("redis_tls_enabled") is True
        needs_tls = "" if server_tls else "the broker's redis_tls_enabled is false: turn TLS on at the broker"
        tls_only = server_tls and str(broker.get("redis_port", 6379)) == "0"
        refuses_plain = "the broker is TLS-only (redis_port 0)" if tls_only else ""
    errors = []
    for host, enabled in clients.items():
        if enabled is True and needs_tls:
            detail = (
                f"is true but {needs_tls} "
                "(redis_tls_enabled: true, best in group_vars/all: one switch for all)"
            )
        elif enabled is not True and refuses_plain:
            detail = (
                f"is false but {refuses_plain}: set redis_tls_enabled: true in group_vars/all "
                "(or celery_broker_tls_enabled: true for this host)"
            )
        else:
            continue
        errors.append(str(Problem("celery_broker_tls_enabled", detail, host=str(host))))
    return errors


def tls_servers(
    data_nodes: Sequence[str], sentinel_hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``tls_fleet_errors``' ``servers`` from the inventory: every data node and Sentinel host's
    ``redis_tls_enabled`` and ``redis_port`` (roles/redis' defaults when unset) and ``sentinel``."""
    servers = {}
    for host in [*data_nodes, *(h for h in sentinel_hosts if h not in data_nodes)]:
        settings = hostvars.get(host, {})
        servers[str(host)] = {
            "redis_tls_enabled": settings.get("redis_tls_enabled", False),
            "redis_port": settings.get("redis_port", 6379),
            "sentinel": host in sentinel_hosts,
        }
    return servers


def _tls_keys(ca_file: str, cert_file: str = "", key_file: str = "") -> dict[str, str]:
    ssl = {"ssl_cert_reqs": TLS_CERT_REQS, "ssl_ca_certs": ca_file}
    if cert_file:
        ssl.update(ssl_certfile=cert_file, ssl_keyfile=key_file)
    return ssl


def tls_settings(ca_file: str, cert_file: str = "", key_file: str = "") -> dict[str, dict[str, str]]:
    """Celery's broker_use_ssl and redis_backend_use_ssl for a client that verifies the broker."""
    return {
        "broker_use_ssl": _tls_keys(ca_file, cert_file, key_file),
        "redis_backend_use_ssl": _tls_keys(ca_file, cert_file, key_file),
    }


def sentinel_tls_kwargs(ca_file: str, cert_file: str = "", key_file: str = "") -> dict[str, Any]:
    """What ``sentinel_kwargs`` adds for TLS to the Sentinels: redis.Redis's ``ssl=True`` and the
    keys of ``tls_settings`` (the same CA, the same client certificate)."""
    return {"ssl": True, **_tls_keys(ca_file, cert_file, key_file)}


def connection(
    host: Any,
    port: Any = 6379,
    db: Any = 0,
    user: Any = "worker",
    password: Any = "",
    sentinels: Any = None,
    master_name: Any = "celery-fleet",
    sentinel_password: Any = "",
    visibility_timeout: Any = None,
    key_prefix: Any = "",
    tls: Any = False,
    tls_ca_file: Any = "",
    tls_cert_file: Any = "",
    tls_key_file: Any = "",
) -> dict[str, Any]:
    """Broker URL, result backend URL, the fleet's transport options and Celery settings of a client.

    Returns ``{"broker_url", "result_backend", "transport_options": {"broker", "backend"},
    "settings"}``. Without ``sentinels``: ``redis://user:pw@host:port/db`` and ``.../<db+1>``, the
    options of ``transport_options`` and no settings (what the roles built before Sentinel). With
    ``sentinels`` ("address:port" strings; ``host`` and ``port`` unused):
    ``sentinel://user:pw@a1:p1/db;sentinel://user:pw@a2:p2/db;...`` for both (db+1 for the
    backend); both transport options also get ``master_name`` and ``sentinel_kwargs`` (the Sentinel
    password and socket settings), the broker SENTINEL_BROKER_OPTIONS, and ``settings`` is
    SENTINEL_CELERY_SETTINGS. The Sentinel password is only in the transport options: roles/celery_app
    writes them to the fleet's config file, never to argv or the environment.

    With ``tls``, ``settings`` gets broker_use_ssl and redis_backend_use_ssl (``tls_settings``: the
    CA to verify the broker with, ssl_cert_reqs required, and the client certificate and key when
    given). Direct: ``rediss://`` for both (``port`` is then the broker's TLS port). Through
    Sentinel: the URLs stay ``sentinel://`` (the master's connections take TLS from those settings)
    and both ``sentinel_kwargs`` also get ``sentinel_tls_kwargs`` (ssl=True and the same keys), so
    that the connections to the Sentinels are TLS, verified, with the same client certificate.
    Without ``tls`` nothing changes.
    """
    problems = sentinel_problems(sentinels, master_name, sentinel_password)
    problems += tls_problems(tls, tls_ca_file, tls_cert_file, tls_key_file)
    try:
        number = int(db)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or isinstance(db, bool):
        problems.append(Problem("celery_broker_db", f"{db!r} is not a database number >= 0"))
    if problems:
        raise FleetError(problems)
    options = transport_options(visibility_timeout, key_prefix)
    auth = userinfo(user, password)
    if not sentinels:
        scheme = "rediss" if tls else "redis"
        base = f"{scheme}://{auth}@{'' if host is None else host}:{port}"
        return {
            "broker_url": f"{base}/{number}",
            "result_backend": f"{base}/{number + 1}",
            "transport_options": options,
            "settings": tls_settings(tls_ca_file, tls_cert_file, tls_key_file) if tls else {},
        }
    tls_kwargs = sentinel_tls_kwargs(tls_ca_file, tls_cert_file, tls_key_file) if tls else {}
    for side in ("broker", "backend"):
        options[side]["master_name"] = master_name
        options[side]["sentinel_kwargs"] = {"password": sentinel_password, **_SENTINEL_SOCKET, **tls_kwargs}
    options["broker"].update(SENTINEL_BROKER_OPTIONS)
    settings = dict(SENTINEL_CELERY_SETTINGS)
    if tls:
        settings.update(tls_settings(tls_ca_file, tls_cert_file, tls_key_file))
    return {
        "broker_url": ";".join(f"sentinel://{auth}@{address}/{number}" for address in sentinels),
        "result_backend": ";".join(f"sentinel://{auth}@{address}/{number + 1}" for address in sentinels),
        "transport_options": options,
        "settings": settings,
    }


def expected_broker_options(
    visibility_timeout: Any = None,
    key_prefix: Any = "",
    sentinels: Any = None,
    master_name: Any = "celery-fleet",
    tls: Any = False,
) -> dict[str, Any]:
    """The broker transport options verification expects on a running worker, without secrets.

    ``connection``'s broker options with ``sentinel_kwargs`` as SECRET_SET: verification never
    carries the Sentinel password (option_errors checks only that it is set); with ``tls`` as
    SECRET_SET_TLS (option_errors also checks that it has the SENTINEL_TLS_KEYS, by name).
    """
    options = transport_options(visibility_timeout, key_prefix)["broker"]
    if sentinels:
        secret = SECRET_SET_TLS if tls is True else SECRET_SET
        options.update({"master_name": master_name, "sentinel_kwargs": secret, **SENTINEL_BROKER_OPTIONS})
    return options


def option_errors(where: str, expected: Mapping[str, Any], running: Any) -> list[str]:
    """Each key of ``expected`` that the running connection's transport options lack or differ in.

    Secret options (SECRET_OPTIONS: kombu's ``sentinel_kwargs``, which carries the Sentinels'
    password) are never printed, nor compared by value: ``expected`` holds them as SECRET_SET
    (verification does not carry the secret), and a running value is accepted when it is a
    non-empty mapping. That it is the right one is shown by the worker having answered at all:
    it found the master through the Sentinels, which refuse a wrong password. Expected as
    SECRET_SET_TLS, it must also have the keys SENTINEL_TLS_KEYS (names only, values unread).
    """
    if not isinstance(running, Mapping):
        shown = {key: (SECRET_SET if key in SECRET_OPTIONS else value) for key, value in expected.items()}
        return [f"{where}: reported no broker transport options (expected {shown})"]
    errors = []
    for key, value in expected.items():
        if key in SECRET_OPTIONS:
            if not isinstance(running.get(key), Mapping) or not running[key]:
                errors.append(f"{where}: broker transport option {key} is not set (the fleet sets it)")
            elif value == SECRET_SET_TLS and [name for name in SENTINEL_TLS_KEYS if name not in running[key]]:
                missing = ", ".join(name for name in SENTINEL_TLS_KEYS if name not in running[key])
                errors.append(
                    f"{where}: broker transport option {key} has no {missing}: the worker reaches the "
                    "Sentinels without TLS (the fleet sets them with TLS on)"
                )
        elif key not in running:
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
