"""Why a service of the app did not come up, from the last lines of its log.

The deploy's verification prints those lines and, for the causes seen in practice, what to change
in the inventory. Each cause is a pattern over the log and a hint; the log is what Celery, kombu
and redis-py print (Celery masks the password in the URLs it logs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from celery_fleet.errors import FleetError, Problem
from celery_fleet.service import MANAGERS

# (name, pattern, hint). The hint may use {prefix} (celery_broker_key_prefix / redis_acl_key_prefix),
# {user} (celery_broker_user) and {module} (celery_app_module).
CAUSES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "key outside the ACL",
        re.compile(
            r"NOPERM[^\n]*\bkeys?\b|NoPermissionError[^\n]*\bkeys?\b|no permissions to access one of the keys"
        ),
        "the broker's ACL user {user!r} may not touch the keys the app uses: key scoping is on at the broker "
        "(redis_acl_key_prefix) but the service uses another kombu global_keyprefix ({prefix!r}). Set "
        'celery_broker_key_prefix and redis_acl_key_prefix to the same value ("" turns scoping off), and '
        "start every service through the fleet's entry module (celery -A celery_fleet_app).",
    ),
    (
        "channel outside the ACL",
        re.compile(r"NOPERM[^\n]*\bchannels?\b|no permissions to access one of the channels"),
        "the broker's ACL user {user!r} may not use a channel the app subscribes to: key scoping is on with "
        "another prefix than the service's ({prefix!r}), or the app's broker URL uses another database than "
        "redis_acl_celery_db. Make celery_broker_key_prefix, redis_acl_key_prefix and the database agree.",
    ),
    (
        "command outside the ACL",
        re.compile(r"NOPERM[^\n]*\bcommand\b|no permissions to run the '[^']+' command"),
        "the broker's ACL rule set lacks a command this Celery/kombu/redis-py sends: read `ACL LOG` on "
        "the broker, and re-verify the rule sets for the pinned Celery (roles/redis README, "
        "'Re-verifying the rule sets'); the rule sets follow celery_app_requirements' Celery version.",
    ),
    (
        "wrong password",
        re.compile(r"WRONGPASS|invalid username-password pair|AuthenticationError|NOAUTH"),
        "the broker refused the credentials of {user!r}: celery_broker_password must be that Redis ACL "
        "user's password in redis_acl_users (from the same vault), and the Redis play must have run with it.",
    ),
    (
        "app not importable",
        re.compile(
            r"Unable to load celery application|ModuleNotFoundError|ImportError|"
            r"No module named|Error: Invalid value for '-A'"
        ),
        "the app module {module!r} (celery_app_module) cannot be imported from the code directory: check "
        "celery_app_module, celery_app_src or celery_app_git_repo, and that celery_app_requirements / "
        "celery_app_extra_packages hold every package the app imports.",
    ),
    (
        "fleet settings unreadable",
        re.compile(r"FleetConfigError|CELERY_FLEET_CONFIG"),
        "the fleet's entry module cannot read its settings: run roles/celery_app on this host again (it "
        "writes /etc/<app>/fleet.json and the environment file that names it).",
    ),
    (
        "no master from the Sentinels",
        re.compile(r"No master found for|MasterNotFoundError"),
        "no Sentinel of celery_broker_sentinels named a master: celery_broker_master_name must equal "
        "redis_sentinel_master_name, celery_broker_sentinel_password the Sentinels' password (a wrong or "
        "missing one gives this message, not WRONGPASS), and the Sentinels must be reachable on their port.",
    ),
    (
        # redis-py 8.1 reports a Sentinel it could not reach over TLS only as "network:ConnectionError"
        # behind the SSLConnection it used (measured with a Sentinel certificate from another CA): the
        # TLS error itself is not in the log.
        "no master from the Sentinels over TLS",
        re.compile(r"No master found for .*SSLConnection\("),
        "the Sentinels were asked over TLS: a Sentinel whose certificate the client cannot verify, or that "
        "refuses the client, gives this message too. celery_broker_tls_ca must have signed every Sentinel's "
        "certificate, each address of celery_broker_sentinels must be among that certificate's names, and "
        "with redis_tls_auth_clients yes every client needs celery_broker_tls_cert and _key.",
    ),
    (
        "TLS verification failed",
        re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|WRONG_VERSION_NUMBER|SSLError"),
        "the TLS connection to the broker failed: celery_broker_tls_ca must be the CA that signed the "
        "broker's certificate (redis_tls_cert_file), the name the clients dial (celery_broker_host; through "
        "Sentinel the master's address as the Sentinels report it) must be among its names, with "
        "redis_tls_auth_clients yes every client needs celery_broker_tls_cert and "
        "_key, and a TLS client must dial the TLS port (redis_tls_port).",
    ),
    (
        "broker unreachable",
        re.compile(
            r"Error 111 connecting|Connection refused|Name or service not known|Temporary failure in name "
            r"resolution|timed out connecting"
        ),
        "the service cannot reach the broker: check celery_broker_host / celery_broker_port against "
        "redis_bind and redis_port, and that the broker host is up and reachable from this host.",
    ),
)


def log_command(service: str, manager: str, lines: int = 60) -> list[str]:
    """The argv that prints the end of a service's log: the journal under systemd, the program's
    output under supervisord (``supervisorctl tail`` counts bytes: about 100 per line)."""
    if manager not in MANAGERS:
        raise FleetError(
            [Problem("celery_process_manager", f"{manager!r} is not one of {', '.join(MANAGERS)}")]
        )
    if manager == "systemd":
        return [
            "journalctl",
            "--unit",
            f"{service}.service",
            "--lines",
            str(lines),
            "--no-pager",
            "--output",
            "cat",
        ]
    return ["supervisorctl", "tail", f"-{lines * 100}", service]


def diagnose(log: str, context: Mapping[str, Any] | None = None) -> list[str]:
    """The hints whose cause appears in ``log``, in the order of CAUSES (each once)."""
    values = {"prefix": "", "user": "", "module": "", **dict(context or {})}
    return [hint.format(**values) for _, pattern, hint in CAUSES if pattern.search(log or "")]


def report(logs: Mapping[str, str], context: Mapping[str, Any] | None = None, lines: int = 15) -> list[str]:
    """One message per service: its name, what to change (when the cause is known), its last lines."""
    messages = []
    for service, log in logs.items():
        tail = _last_lines(log, lines)
        hints = diagnose(log, context)
        head = f"{service}: " + (" / ".join(hints) if hints else "no known cause in its log")
        messages.append(head + ("\n  " + "\n  ".join(tail) if tail else " (its log is empty)"))
    return messages


def _last_lines(log: str, count: int) -> list[str]:
    return [line for line in (log or "").splitlines() if line.strip()][-count:]


def up_for(status: str, seconds: float) -> bool:
    """Whether a service has been up for ``seconds``, from what the host printed about it.

    systemd: ``systemctl show --property=ActiveState --property=ActiveEnterTimestampMonotonic`` then
    ``/proc/uptime`` (the same monotonic clock); supervisord: ``supervisorctl status <name>``
    (``RUNNING   pid 7, uptime 0:00:12``).
    """
    status = status or ""
    match = re.search(r"\bRUNNING\b.*uptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)", status)
    if match:
        days, hours, minutes, secs = (int(g or 0) for g in match.groups())
        return ((days * 24 + hours) * 60 + minutes) * 60 + secs >= seconds
    fields = dict(line.split("=", 1) for line in status.splitlines() if "=" in line)
    uptime = re.search(r"^(\d+(?:\.\d+)?) ", status, re.M)
    if fields.get("ActiveState") != "active" or not uptime:
        return False
    try:
        entered = int(fields.get("ActiveEnterTimestampMonotonic", "0")) / 1e6
    except ValueError:
        return False
    return entered > 0 and float(uptime.group(1)) - entered >= seconds
