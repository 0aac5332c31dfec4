"""Input rules of roles/flower that span variables (types and choices: meta/argument_specs.yml).

Called by roles/flower/tasks/validate.yml and by playbooks/validate.yml for every host of group
``flower``. No message prints a password or an OAuth secret.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from celery_fleet.broker import sentinel_problems
from celery_fleet.errors import Problem
from celery_fleet.inputs import (
    int_in_range,
    is_list,
    is_text,
    pem_problem,
    port_problem,
    previous_password_problems,
    process_manager_problems,
)
from celery_fleet.monitoring_rules import address_kind

# Flower splits FLOWER_BASIC_AUTH on ',' and each pair on the first ':'.
USER_NAME_RE = re.compile(r"^[^:,\s]+$")
# One alternative of flower_auth: an address, or one ".*" wildcard in its local part.
AUTH_ADDRESS_RE = re.compile(r"^(\.\*)?[^@\s|*\\^$()\[\]{}+?]*@[^@\s|*\\^$()\[\]{}+?]+\.[A-Za-z]{2,}$")
# The characters Flower 2.2's ".*" stands for (flower/utils/authentication.py).
AUTH_WILDCARD = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]*"
REGEX_SYNTAX = re.compile(r"[\\^$()\[\]{}+?*]")
AUTH_PROVIDER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*$")
URL_PREFIX_RE = re.compile(r"^[A-Za-z0-9._~/-]*$")
OPTION_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# The name nginx serves Flower under and the deploy's probe asks for (it goes into nginx's site file).
SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9._:-]+$")
# Flower options the role sets itself: flower_extra_options may not override them.
MANAGED_OPTIONS = (
    "address",
    "port",
    "basic_auth",
    "auth",
    "auth_provider",
    "oauth2_key",
    "oauth2_secret",
    "oauth2_redirect_uri",
    "url_prefix",
    "persistent",
    "db",
    "state_save_interval",
    "max_tasks",
    "conf",
    "cookie_secret",
    "unix_socket",
    # Flower's own TLS: flower_tls_enabled serves Flower over HTTPS through nginx instead.
    "certfile",
    "keyfile",
    "ca_certs",
)


def auth_matcher(rule: str) -> re.Pattern[str]:
    """Flower 2.2's own matching of an e-mail rule: '|' lists whole addresses, '.*' a run of
    address characters (flower/utils/authentication.py), the whole address must match."""
    alternatives = (re.escape(part).replace(re.escape(".*"), AUTH_WILDCARD) for part in rule.split("|"))
    return re.compile("^(" + "|".join(alternatives) + ")$")


def auth_probes(rule: str) -> list[str]:
    """An address just below each domain of the rule (CVE-2022-30034: a@example.com.evil.org);
    regex syntax is dropped from the domain, so that the message shows the address meant."""
    return [
        f"a@{re.sub(REGEX_SYNTAX, '', part.rpartition('@')[2]).strip('.')}.evil.org"
        for part in rule.split("|")
    ]


def auth_rule_problems(rule: Any) -> list[str]:
    """Why ``rule`` is not an e-mail rule in Flower 2.2's syntax, or lets a look-alike domain in."""
    if not is_text(rule):
        return [f"{rule!r} is not a string"]
    problems = []
    bad = [part for part in rule.split("|") if not AUTH_ADDRESS_RE.match(part)]
    if bad or rule.count("*") > 1 or ("*" in rule and "|" in rule):
        problems.append(
            f"'{rule}' is not an e-mail rule in Flower 2.2's syntax, which matches the whole address: "
            "one address (a@example.com), addresses joined by '|', or one '.*' wildcard in the local "
            "part (.*@example.com); regex syntax such as '\\.' or '$' is compared literally and would "
            f"let nobody in; a rule must refuse {', '.join(auth_probes(rule))}"
        )
    else:
        matcher = auth_matcher(rule)
        let_in = [probe for probe in auth_probes(rule) if matcher.match(probe)]
        if let_in:
            problems.append(
                f"'{rule}' lets {', '.join(let_in)} in: a rule must refuse addresses below its domains"
            )
    return problems


def flower_problems(inputs: Mapping[str, Any], host: str | None = None) -> list[str]:
    """Every problem of one Flower host's variables."""
    problems: list[Problem] = []
    get = inputs.get

    def add(field: str, detail: str) -> None:
        problems.append(Problem(field, detail, host=host))

    port = get("flower_port", 5555)
    problem = port_problem("flower_port", port, host)
    if problem:
        problems.append(problem)

    users, auth = get("flower_users", []), get("flower_auth", "")
    if not is_list(users) or not all(isinstance(u, Mapping) for u in users):
        add("flower_users", "is not a list of mappings (name, password)")
        users = []
    if not users and not auth and get("flower_allow_unauthenticated") is not True:
        add(
            "flower_users",
            f"empty and flower_auth unset: Flower without authentication shows every task's arguments "
            f"and lets anyone who reaches port {port} revoke tasks and shut workers down; set "
            "flower_users (basic auth, passwords from a vault) or flower_auth with the OAuth settings, "
            "or set flower_allow_unauthenticated: true to accept that",
        )
    problems.extend(_user_problems(users, host))
    if users and auth:
        add("flower_auth", "set with flower_users: use one of them (basic auth or OAuth), not both")
    if auth:
        problems.extend(Problem("flower_auth", detail, host=host) for detail in auth_rule_problems(auth))
        problems.extend(_oauth_problems(inputs, host))

    problems.extend(_network_problems(inputs, host))

    prefix = get("flower_url_prefix", "")
    if not (is_text(prefix) and URL_PREFIX_RE.match(prefix)):
        add("flower_url_prefix", f"{prefix!r} is not a URL path (letters, digits and ._~/- only)")
    if not int_in_range(get("flower_max_tasks", 10000), 1):
        add("flower_max_tasks", f"{get('flower_max_tasks')!r} is not an integer >= 1")
    if not int_in_range(get("flower_state_save_interval", 60), 0):
        add(
            "flower_state_save_interval",
            f"{get('flower_state_save_interval')!r} is not an integer >= 0 (seconds)",
        )
    extra = get("flower_extra_options", {})
    if not isinstance(extra, Mapping):
        add("flower_extra_options", "is not a mapping of Flower option name to value")
    else:
        bad = [str(k) for k in extra if not (is_text(k) and OPTION_NAME_RE.match(k)) or k in MANAGED_OPTIONS]
        if bad:
            add(
                "flower_extra_options",
                f"keys {', '.join(bad)} are not allowed: lower-case Flower option names other than the "
                f"role's own ({', '.join(MANAGED_OPTIONS)})",
            )
    # Flower's own broker URL goes through the same Sentinels as the app's (roles/celery_app checks
    # them too for every app host; a problem both report is listed once).
    problems.extend(
        p.on_host(host) if host else p
        for p in sentinel_problems(
            get("celery_broker_sentinels") or [],
            get("celery_broker_master_name", "celery-fleet"),
            get("celery_broker_sentinel_password", ""),
        )
    )
    return process_manager_problems(inputs, host) + [str(p) for p in problems]


def _network_problems(inputs: Mapping[str, Any], host: str | None) -> list[Problem]:
    """Flower's own port off loopback only when the user accepts plain HTTP; with HTTPS on
    (flower_tls_enabled: nginx in front), the certificate, key and nginx's side of the network."""
    get = inputs.get
    problems = []
    bind, tls = get("flower_bind", "127.0.0.1"), get("flower_tls_enabled", False)
    if address_kind(bind) != "loopback" and get("flower_allow_plain_http") is not True:
        remedy = (
            "with flower_tls_enabled nginx serves it over HTTPS on flower_tls_port: keep flower_bind on "
            "loopback (127.0.0.1 or ::1)"
            if tls is True
            else "keep flower_bind on loopback (127.0.0.1 or ::1) and set flower_tls_enabled: true (HTTPS "
            "through nginx)"
        )
        problems.append(
            Problem(
                "flower_bind",
                f"{bind!r} is not a loopback address and Flower's own port speaks plain HTTP: login "
                f"passwords, session cookies and every task's arguments would cross the network in clear; "
                f"{remedy}, or set flower_allow_plain_http: true to accept that",
                host=host,
            )
        )
    if not isinstance(tls, bool):
        return [*problems, Problem("flower_tls_enabled", f"{tls!r} is not true or false", host=host)]
    if not tls:
        return problems
    for field, what in (("flower_tls_cert", "certificate"), ("flower_tls_key", "key")):
        if get(field) in (None, ""):
            problems.append(
                Problem(
                    field,
                    f"is required with flower_tls_enabled: the PEM content of nginx's server {what} "
                    "(from the vault)" + (", the intermediates after it" if what == "certificate" else ""),
                    host=host,
                )
            )
    checked = (
        pem_problem("flower_tls_cert", get("flower_tls_cert"), "certificate", host),
        pem_problem("flower_tls_key", get("flower_tls_key"), "key", host),
        pem_problem("flower_tls_ca", get("flower_tls_ca"), "certificate", host),
    )
    problems.extend(problem for problem in checked if problem)
    port = get("flower_tls_port", 443)
    problem = port_problem("flower_tls_port", port, host)
    if problem:
        problems.append(problem)
    elif port == get("flower_port", 5555):
        problems.append(
            Problem(
                "flower_tls_port",
                f"{port!r} is flower_port too: nginx (HTTPS) and Flower (loopback) need a port each",
                host=host,
            )
        )
    tls_bind = get("flower_tls_bind", "0.0.0.0")
    try:
        ipaddress.ip_address(tls_bind if is_text(tls_bind) else "")
    except ValueError:
        problems.append(
            Problem(
                "flower_tls_bind",
                f"{tls_bind!r} is not an IP address (nginx listens on it: 0.0.0.0 for every IPv4 "
                "address, :: for every IPv6 one, or one address of the host)",
                host=host,
            )
        )
    name = get("flower_tls_server_name")
    if name is not None and not (is_text(name) and SERVER_NAME_RE.match(name)):
        problems.append(
            Problem(
                "flower_tls_server_name",
                f"{name!r} is not a host name or address (letters, digits and .-_: only): the name "
                "in Flower's certificate, which nginx serves and the deploy's probe asks for",
                host=host,
            )
        )
    if not int_in_range(get("flower_tls_hsts_max_age", 31536000), 0):
        problems.append(
            Problem(
                "flower_tls_hsts_max_age",
                f"{get('flower_tls_hsts_max_age')!r} is not an integer >= 0 (seconds)",
                host=host,
            )
        )
    return problems


def _password_ok(password: Any) -> bool:
    """Flower splits FLOWER_BASIC_AUTH on ','; an empty password, or one starting with a blank, is refused."""
    return is_text(password) and "," not in password and re.match(r"\S", password) is not None


def _user_problems(users: list[Mapping[str, Any]], host: str | None) -> list[Problem]:
    names = [u.get("name") for u in users]
    bad_names = [str(n) for n in names if not (is_text(n) and USER_NAME_RE.match(n))]
    bad_passwords = [str(u.get("name")) for u in users if not _password_ok(u.get("password"))]
    duplicates = sorted(str(n) for n, count in Counter(map(str, names)).items() if count > 1)
    problems = []
    if bad_names or duplicates:
        problems.append(
            Problem(
                "flower_users",
                "names must be unique and free of ':', ',' and blanks; offending names: "
                f"{', '.join(bad_names + duplicates)}",
                host=host,
            )
        )
    if bad_passwords:
        problems.append(
            Problem(
                "flower_users",
                "passwords must be non-empty, start with a non-blank and be free of ',' (Flower splits "
                f"FLOWER_BASIC_AUTH on ','); offending users: {', '.join(bad_passwords)}",
                host=host,
            )
        )
    for user in users:
        problems.extend(_previous_password_problems(user, host))
    return problems


def _previous_password_problems(user: Mapping[str, Any], host: str | None) -> list[Problem]:
    """A user's ``previous_passwords``, still accepted beside ``password`` during phase 1 of a
    rotation (README "Rotating Flower's users"): a list of strings under the rules of ``password``,
    each listed once, none equal to the current one. The messages name the user, never a password."""
    return previous_password_problems(
        "flower_users",
        f"previous_passwords of user {user.get('name')!r}",
        user.get("password"),
        user.get("previous_passwords"),
        host,
        ok=_password_ok,
        rule="is empty, starts with a blank or holds ',' (the rules of password: Flower splits "
        "FLOWER_BASIC_AUTH on ',')",
        purpose="a rotation rolls out",
        current_as="password",
    )


def _oauth_problems(inputs: Mapping[str, Any], host: str | None) -> list[Problem]:
    """flower_auth is set: OAuth also needs its provider, client id, secret and redirect URI."""
    get = inputs.get
    wanted = {
        "flower_auth_provider": (
            is_text(get("flower_auth_provider")) and AUTH_PROVIDER_RE.match(get("flower_auth_provider")),
            "a login handler class such as flower.views.auth.GithubLoginHandler",
        ),
        "flower_oauth2_key": (
            is_text(get("flower_oauth2_key")) and get("flower_oauth2_key"),
            "the OAuth client id",
        ),
        "flower_oauth2_secret": (
            is_text(get("flower_oauth2_secret")) and get("flower_oauth2_secret"),
            "the OAuth client secret (from a vault)",
        ),
        "flower_oauth2_redirect_uri": (
            is_text(get("flower_oauth2_redirect_uri"))
            and re.match(r"^https?://", get("flower_oauth2_redirect_uri")),
            "an http(s) URL",
        ),
    }
    return [
        Problem(field, f"flower_auth is set: OAuth also needs this field, {what}", host=host)
        for field, (ok, what) in wanted.items()
        if not ok
    ]
