"""Monitoring (issue 17): the rules of roles/prometheus and roles/redis_exporter, the fleet-wide rules
of group ``monitoring``, and the small helpers their templates use.

Called by roles/prometheus/tasks/validate.yml, roles/redis_exporter (through its argument specs) and
playbooks/validate.yml. No message prints a password.

Measured facts behind the rules (README, "Monitoring"):

- prometheus-redis-exporter 1.45 (Debian 12) has no authentication of its own (1.69 on Debian 13
  adds basic auth); the role does not configure its TLS. A scrape of it over a public address is
  refused; a private address (the fleet's network) or loopback is allowed.
- Flower 2.2 serves ``/metrics`` without credentials by default; roles/flower closes it unless
  ``flower_metrics_public``. Prometheus logs in with basic auth (one of ``flower_users``): a Flower
  with OAuth only cannot be scraped, one with a public ``/metrics`` must not be scraped over a
  non-loopback address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from celery_fleet import alerts
from celery_fleet.errors import Problem
from celery_fleet.inputs import is_list, is_text, pem_problem, port_problem

WILDCARDS = ("", "0.0.0.0", "::", "*")


def host_port(address: str, port: int | str) -> str:
    """``address:port``, an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in str(address) else f"{address}:{port}"


def local_address(address: str) -> str:
    """Where a host reaches its own service listening on ``address`` (a wildcard: loopback)."""
    return "127.0.0.1" if address in WILDCARDS else address


def scrape_targets(
    hosts: Sequence[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    monitoring_host: str,
    port_field: str,
    default_port: int,
) -> list[str]:
    """``address:port`` Prometheus on ``monitoring_host`` scrapes for each of ``hosts``: loopback on
    its own host, else the host's ``celery_fleet_private_address`` (its default IPv4 address from its
    facts, its inventory name as the last resort); the port is the host's ``port_field``."""
    targets = []
    for host in hosts:
        settings = hostvars.get(host, {})
        port = settings.get(port_field, default_port)
        if host == monitoring_host:
            address = "127.0.0.1"
        else:
            facts = settings.get("ansible_facts", {}) or {}
            address = (
                settings.get("celery_fleet_private_address")
                or (facts.get("default_ipv4") or {}).get("address")
                or host
            )
        targets.append(host_port(str(address), port))
    return targets


def flower_scrape(
    hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]], monitoring_host: str
) -> dict[str, Any]:
    """How Prometheus on ``monitoring_host`` scrapes the Flower hosts: ``{scheme, targets, server_name,
    ca}`` (roles/prometheus ``prometheus_flower_*``).

    With ``flower_tls_enabled`` (the first Flower host decides; validation refuses Flower hosts that
    differ) the scrape goes through nginx: ``https`` to each host's ``flower_tls_port``, verified
    against ``flower_tls_ca`` ("" : the trust store) for the name in the certificate
    (``flower_tls_server_name``, else the host's inventory name, as roles/flower's nginx). Without it,
    plain ``http`` to Flower's own port, as before. Each host's address is :func:`scrape_targets`'s.
    """
    first = hostvars.get(hosts[0], {}) if hosts else {}
    if first.get("flower_tls_enabled") is not True:
        return {
            "scheme": "http",
            "targets": scrape_targets(hosts, hostvars, monitoring_host, "flower_port", 5555),
            "server_name": "",
            "ca": "",
        }
    return {
        "scheme": "https",
        "targets": scrape_targets(hosts, hostvars, monitoring_host, "flower_tls_port", 443),
        "server_name": str(first.get("flower_tls_server_name") or hosts[0]),
        "ca": str(first.get("flower_tls_ca") or ""),
    }


def flower_scrape_job(
    targets: Sequence[str],
    metrics_path: str,
    scheme: str = "http",
    username: str = "",
    password_file: str = "",
    ca_file: str = "",
    server_name: str = "",
) -> dict[str, Any]:
    """Prometheus's scrape config of the Flower job: basic auth through ``password_file`` (never the
    password), and with ``https`` a ``tls_config`` verifying ``server_name`` against ``ca_file``
    (either empty: the target's host, the trust store). Certificate checks are never switched off."""
    job: dict[str, Any] = {
        "job_name": "flower",
        "scheme": scheme,
        "metrics_path": metrics_path,
        "static_configs": [{"targets": list(targets)}],
    }
    if username:
        job["basic_auth"] = {"username": username, "password_file": password_file}
    if scheme == "https":
        tls: dict[str, Any] = {"insecure_skip_verify": False}
        if ca_file:
            tls["ca_file"] = ca_file
        if server_name:
            tls["server_name"] = server_name
        job["tls_config"] = tls
    return job


def exporter_password_map(entries: Sequence[Mapping[str, Any]], user: str) -> dict[str, str]:
    """The exporter's REDIS_PASSWORD_FILE: address -> password for each ``{address, password}``.

    Each address is there twice, as given (``redis://127.0.0.1:26379``: what 1.45 looks up) and with
    ``user@`` in it (``redis://exporter@127.0.0.1:26379``: what 1.69 looks up); measured on both.
    """
    passwords: dict[str, str] = {}
    for entry in entries:
        address, password = str(entry["address"]), str(entry["password"])
        scheme, sep, rest = address.partition("://")
        if not sep:
            scheme, rest = "redis", address
        passwords[f"{scheme}://{rest}"] = password
        if user and "@" not in rest:
            passwords[f"{scheme}://{user}@{rest}"] = password
    return passwords


def exporter_address(settings: Mapping[str, Any], host: str, monitoring_hosts: Sequence[str]) -> str:
    """Where the Redis exporter of ``host`` listens, and so where Prometheus scrapes it.

    ``redis_exporter_listen_address`` when the inventory sets it; else loopback when Prometheus runs
    on this host only; else the host's private address (``celery_fleet_private_address``, its
    default IPv4 address from its facts, its inventory name as the last resort)."""
    address = settings.get("redis_exporter_listen_address")
    if is_text(address) and address:
        return address
    if list(monitoring_hosts) == [host]:
        return "127.0.0.1"
    # Read without touching what Ansible could not template (a value from facts in a play that
    # gathered none, as the validate play): only text and mappings are used.
    private = settings.get("celery_fleet_private_address")
    if is_text(private) and private:
        return private
    facts = settings.get("ansible_facts")
    ipv4 = facts.get("default_ipv4") if isinstance(facts, Mapping) else None
    found = ipv4.get("address") if isinstance(ipv4, Mapping) else None
    return found if is_text(found) and found else host


def exporter_targets(
    hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]], monitoring_hosts: Sequence[str]
) -> list[str]:
    """``address:port`` of the Redis exporter of each of ``hosts``, as Prometheus scrapes it: its
    listen address (:func:`exporter_address`; never a wildcard, validation refuses one), so that a
    Prometheus on the exporter's own host reaches it too."""
    return [
        host_port(
            exporter_address(hostvars.get(h, {}), h, monitoring_hosts),
            hostvars.get(h, {}).get("redis_exporter_port", 9121),
        )
        for h in hosts
    ]


def sentinel_scrape_targets(
    hosts: Sequence[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    monitoring_hosts: Sequence[str],
) -> list[dict[str, str]]:
    """What Prometheus scrapes for the Sentinels of ``hosts``: each host's exporter (as
    :func:`exporter_targets`) and, as its ``/scrape?target=``, the host's own Sentinel on loopback
    (``redis_sentinel_port``; over TLS with ``redis_tls_enabled``)."""
    exporters = exporter_targets(hosts, hostvars, monitoring_hosts)
    return [
        {
            "address": exporter,
            "target": sentinel_address(
                hostvars.get(host, {}).get("redis_sentinel_port", 26379),
                hostvars.get(host, {}).get("redis_tls_enabled", False) is True,
            ),
        }
        for host, exporter in zip(hosts, exporters, strict=True)
    ]


def sentinel_static_configs(targets: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Prometheus ``static_configs`` of the Sentinel job: one per ``{address, target}``, the exporter
    as the target and the Sentinel as the label ``__param_target`` (the ``target`` URL parameter)."""
    return [{"targets": [str(t["address"])], "labels": {"__param_target": str(t["target"])}} for t in targets]


def sentinel_address(port: int | str, tls: bool = False) -> str:
    """The address an exporter reaches its host's Sentinel at (loopback; ``rediss://`` with ``tls``:
    a Sentinel of a TLS fleet serves TLS only)."""
    return f"{'rediss' if tls else 'redis'}://127.0.0.1:{port}"


def queue_keys(queues: Sequence[str] | None, prefix: str | None = "") -> list[str]:
    """The Redis list keys of the queues (kombu puts its global_keyprefix in front)."""
    return [f"{prefix or ''}{queue}" for queue in queues or []]


def queue_nodes(entries: Sequence[Mapping[str, Any]], queue: str) -> list[str]:
    """The node names (``name@host``) of the declared workers that consume ``queue``.

    ``entries``: roles/celery_worker's verification entries, whose ``workers`` and ``nodes`` are
    parallel lists (one node name per present worker).
    """
    return [
        node
        for entry in entries
        for worker, node in zip(entry.get("workers") or [], entry.get("nodes") or [], strict=False)
        if queue in (worker.get("queues") or [])
    ]


def address_kind(address: Any) -> str:
    """``loopback``, ``private``, ``public``, ``wildcard`` or ``name`` (a host name: not judged)."""
    if not is_text(address) or address in WILDCARDS:
        return "wildcard"
    if address == "localhost":
        return "loopback"
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return "name"
    if ip.is_loopback:
        return "loopback"
    return "public" if ip.is_global else "private"


def override_problems(overrides: Any, host: str | None = None) -> list[Problem]:
    """``prometheus_alert_overrides``: the rule names and keys lib/celery_fleet/alerts.py knows."""
    field = "prometheus_alert_overrides"
    if overrides is None:
        return []
    if not isinstance(overrides, Mapping):
        return [
            Problem(
                field,
                f"{overrides!r} is not a mapping of rule name -> {{for, severity, threshold, enabled}}",
                host=host,
            )
        ]
    return [Problem(p.field, p.detail, host=host) for p in alerts.override_problems(overrides)]


def prometheus_problems(inputs: Mapping[str, Any], host: str | None = None) -> list[str]:
    """Every problem of one monitoring host's variables (roles/prometheus)."""
    get = inputs.get
    problems: list[Problem] = []
    for field in ("prometheus_port", "prometheus_alertmanager_port"):
        problem = port_problem(field, get(field, 9090 if field == "prometheus_port" else 9093), host)
        if problem:
            problems.append(problem)
    problems += _flower_scrape_problems(inputs, host)
    if get("prometheus_flower_username") and not get("prometheus_flower_password"):
        problems.append(
            Problem(
                "prometheus_flower_password", "is required with prometheus_flower_username (vault)", host=host
            )
        )
    receivers = get("prometheus_alertmanager_receivers", [{"name": "on-call"}])
    if get("prometheus_alertmanager_enabled") is True and (
        not is_list(receivers)
        or not receivers
        or not all(isinstance(r, Mapping) and r.get("name") for r in receivers)
    ):
        problems.append(
            Problem(
                "prometheus_alertmanager_receivers",
                "must be a non-empty list of Alertmanager receivers, each with a name",
                host=host,
            )
        )
    problems += override_problems(get("prometheus_alert_overrides"), host)
    return [str(p) for p in problems]


def _flower_scrape_problems(inputs: Mapping[str, Any], host: str | None) -> list[Problem]:
    """The scheme of the Flower scrape and its TLS settings (roles/prometheus)."""
    get = inputs.get
    scheme = get("prometheus_flower_scheme", "http")
    if scheme not in ("http", "https"):
        return [Problem("prometheus_flower_scheme", f"{scheme!r} is not one of http, https", host=host)]
    problems = []
    given = [f for f in ("prometheus_flower_tls_ca", "prometheus_flower_tls_server_name") if get(f)]
    if scheme == "http" and given:
        problems.append(
            Problem(
                "prometheus_flower_scheme",
                f"'http' with {', '.join(given)} set: that Flower is served over HTTPS (flower_tls_enabled), "
                "and plain HTTP would send the basic-auth password in clear or reach no Flower; use https",
                host=host,
            )
        )
    problem = pem_problem("prometheus_flower_tls_ca", get("prometheus_flower_tls_ca"), "certificate", host)
    if problem:
        problems.append(problem)
    return problems


def redis_exporter_problems(inputs: Mapping[str, Any], host: str | None = None) -> list[str]:
    """Every problem of one exporter host's variables (roles/redis_exporter)."""
    get = inputs.get
    problems: list[Problem] = []
    address = get("redis_exporter_listen_address", "127.0.0.1")
    kind = address_kind(address)
    if kind in ("public", "wildcard"):
        problems.append(
            Problem(
                "redis_exporter_listen_address",
                f"{address!r} is {'a public address' if kind == 'public' else 'every address'}: the exporter "
                "(1.45) has no authentication; use loopback or the host's private address",
                host=host,
            )
        )
    problem = port_problem("redis_exporter_port", get("redis_exporter_port", 9121), host)
    if problem:
        problems.append(problem)
    if bool(get("redis_exporter_redis_tls_cert")) != bool(get("redis_exporter_redis_tls_key")):
        problems.append(
            Problem(
                "redis_exporter_redis_tls_cert, redis_exporter_redis_tls_key",
                "a client certificate needs both its certificate and its key (or neither)",
                host=host,
            )
        )
    sentinel = get("redis_exporter_sentinel_address", "")
    if sentinel and not get("redis_exporter_sentinel_password"):
        problems.append(
            Problem(
                "redis_exporter_sentinel_password",
                "is required with redis_exporter_sentinel_address (vault: the Sentinel's "
                "redis_sentinel_exporter_password)",
                host=host,
            )
        )
    keys = get("redis_exporter_check_keys", [])
    bad = [str(k) for k in keys if not is_text(k) or "," in k or "=" in k] if is_list(keys) else [repr(keys)]
    if bad:
        problems.append(
            Problem(
                "redis_exporter_check_keys",
                f"{', '.join(bad)}: keys may not contain ',' or '=' (the exporter's separators)",
                host=host,
            )
        )
    return [str(p) for p in problems]


def monitoring_problems(
    monitoring_hosts: Sequence[str],
    flower: Mapping[str, Mapping[str, Any]],
    exporters: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """The rules across hosts of group ``monitoring`` (none: nothing to check).

    ``flower``: Flower host -> {bind, address (how others reach it), users (count), metrics_public,
    unauthenticated}; ``exporters``: Redis host -> {address: what Prometheus scrapes}.
    """
    if not monitoring_hosts:
        return []
    problems: list[Problem] = []
    field = "groups.monitoring"
    if not flower:
        problems.append(Problem(field, "monitoring needs Flower (its /metrics): group flower is empty"))
    if not exporters:
        problems.append(Problem(field, "monitoring needs the Redis hosts (group redis is empty)"))
    for host, settings in flower.items():
        remote = any(m != host for m in monitoring_hosts)
        public_metrics = bool(settings.get("metrics_public")) or bool(settings.get("unauthenticated"))
        if not public_metrics and not settings.get("users"):
            problems.append(
                Problem(
                    "flower_users",
                    "Prometheus logs in to Flower's /metrics with basic auth: list a user in flower_users "
                    "(OAuth alone cannot be scraped) or set flower_metrics_public on a loopback-only Flower",
                    host=host,
                )
            )
        if remote and public_metrics and address_kind(settings.get("address")) != "loopback":
            problems.append(
                Problem(
                    "flower_metrics_public",
                    f"Prometheus on another host would scrape /metrics without authentication over "
                    f"{settings.get('address')!r}: keep flower_metrics_public false and set flower_users",
                    host=host,
                )
            )
        if remote and not settings.get("tls") and address_kind(settings.get("bind")) == "loopback":
            problems.append(
                Problem(
                    "flower_bind",
                    f"{settings.get('bind')!r} is loopback but Prometheus runs on "
                    f"{', '.join(monitoring_hosts)}: set flower_tls_enabled (Prometheus then scrapes "
                    "Flower over HTTPS through nginx), or bind Flower to the private address and set "
                    "flower_allow_plain_http: true (Prometheus scrapes Flower's own port in clear)",
                    host=host,
                )
            )
    problems += _flower_tls_problems(flower)
    for host, settings in exporters.items():
        address = settings.get("address")
        if address_kind(address) == "loopback" and any(m != host for m in monitoring_hosts):
            problems.append(
                Problem(
                    "redis_exporter_listen_address",
                    f"{address!r} is loopback but Prometheus runs on {', '.join(monitoring_hosts)}: "
                    "let the exporter listen on the host's private address",
                    host=host,
                )
            )
        if address_kind(address) in ("public", "wildcard"):
            problems.append(
                Problem(
                    "redis_exporter_listen_address",
                    f"Prometheus would scrape the Redis exporter over {address!r}, a public address, without "
                    "authentication (the exporter 1.45 has none): use the private network",
                    host=host,
                )
            )
    return [str(p) for p in problems]


def _flower_tls_problems(flower: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """Prometheus scrapes every Flower in one job (one scheme, one TLS server name): the Flower hosts
    agree on HTTPS and, with it, on the name in their certificates."""
    if len(flower) < 2:
        return []
    tls = {host: bool(settings.get("tls")) for host, settings in flower.items()}
    if len(set(tls.values())) > 1:
        on = ", ".join(h for h, t in tls.items() if t)
        off = ", ".join(h for h, t in tls.items() if not t)
        return [
            Problem(
                "flower_tls_enabled",
                f"Flower is served over HTTPS on {on} but not on {off}: Prometheus scrapes every Flower "
                "in one job with one scheme; turn it on for every Flower host",
            )
        ]
    names = {str(settings.get("server_name")) for settings in flower.values()}
    if all(tls.values()) and len(names) > 1:
        return [
            Problem(
                "flower_tls_server_name",
                f"the Flower hosts' names differ ({', '.join(sorted(names))}): Prometheus verifies every "
                "Flower of its one job against one name; give every Flower host the same "
                "flower_tls_server_name, a name each certificate holds",
            )
        ]
    return []


def monitoring_inventory_problems(
    monitoring_hosts: Sequence[str],
    flower_hosts: Sequence[str],
    redis_hosts: Sequence[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    sentinel_hosts: Sequence[str] = (),
) -> list[str]:
    """:func:`monitoring_problems` from the inventory (playbooks/validate.yml), plus the exporter's
    ACL user on every Redis host. Reads only the names below; passwords are counted, never shown.

    The exporter's scrape address is what playbooks/deploy-monitoring.yml gives it: loopback when
    Prometheus runs on the Redis host only, else ``celery_fleet_private_address`` (unknown here, as no
    facts are gathered: then it is not judged).

    With ``redis_sentinel_enabled``, the exporter of each data node that runs a Sentinel (``redis_hosts``
    also in ``sentinel_hosts``) scrapes that Sentinel too, as a Sentinel ACL user of its own name
    (roles/redis ``redis_sentinel_exporter_user``/``_password``).
    """
    if not monitoring_hosts:
        return []
    flower = {}
    for host in flower_hosts:
        settings = hostvars.get(host, {})
        flower[host] = {
            "bind": settings.get("flower_bind", "127.0.0.1"),
            "address": "127.0.0.1"
            if list(monitoring_hosts) == [host]
            else settings.get("celery_fleet_private_address", host),
            "users": len(settings.get("flower_users") or []),
            "metrics_public": settings.get("flower_metrics_public", False) is True,
            "unauthenticated": settings.get("flower_allow_unauthenticated", False) is True,
            "tls": settings.get("flower_tls_enabled", False) is True,
            "server_name": settings.get("flower_tls_server_name") or host,
        }
    exporters = {}
    problems: list[str] = []
    # The play sets the scrape's scheme from Flower's flower_tls_enabled (flower_scrape) and its role
    # vars win over the inventory: a plain-HTTP scheme written there would be ignored, so it is refused.
    first_tls = bool(flower) and next(iter(flower.values()))["tls"]
    derived = "https: Flower is served over HTTPS only, through nginx" if first_tls else "http"
    for host in monitoring_hosts:
        scheme = hostvars.get(host, {}).get("prometheus_flower_scheme")
        if scheme is not None and scheme != ("https" if first_tls else "http"):
            problems.append(
                str(
                    Problem(
                        "prometheus_flower_scheme",
                        f"{scheme!r}: playbooks/deploy-monitoring.yml sets it from the Flower hosts' "
                        f"flower_tls_enabled ({derived}); "
                        "remove it from the inventory",
                        host=host,
                    )
                )
            )
    for host in redis_hosts:
        settings = hostvars.get(host, {})
        exporters[host] = {"address": exporter_address(settings, host, monitoring_hosts)}
        user = settings.get("redis_exporter_redis_user", "exporter")
        users = settings.get("redis_acl_users") or []
        if not any(
            isinstance(u, Mapping) and u.get("name") == user and u.get("ruleset") == "redis_exporter"
            for u in users
        ):
            problems.append(
                str(
                    Problem(
                        "redis_acl_users",
                        f"monitoring is on: add the exporter's user {{name: {user}, password: <vault>, "
                        "ruleset: redis_exporter}} (the same password as redis_exporter_redis_password)",
                        host=host,
                    )
                )
            )
        if settings.get("redis_sentinel_enabled") is True and host in sentinel_hosts:
            problems += [str(p) for p in _sentinel_exporter_problems(settings, host, user)]
    return monitoring_problems(monitoring_hosts, flower, exporters) + problems


def _sentinel_exporter_problems(settings: Mapping[str, Any], host: str, user: Any) -> list[Problem]:
    """The Sentinel user the exporter of a Sentinel data node logs in as (its name is the exporter's)."""
    problems = []
    password = settings.get("redis_sentinel_exporter_password")
    if not (is_text(password) and password):
        problems.append(
            Problem(
                "redis_sentinel_exporter_password",
                "monitoring and Sentinel are on: set the password of the exporter's user on the Sentinel "
                "(vault), so that the Sentinel is scraped (RedisSentinelQuorumLost)",
                host=host,
            )
        )
    sentinel_user = settings.get("redis_sentinel_exporter_user", "exporter")
    if sentinel_user != user:
        problems.append(
            Problem(
                "redis_sentinel_exporter_user",
                f"{sentinel_user!r} differs from redis_exporter_redis_user {user!r}: the exporter logs in to "
                "the Sentinel with its own user name",
                host=host,
            )
        )
    return problems
