"""Flower over HTTPS (issue 18): Debian's nginx in front of Flower on each container (systemd, and
supervisord with Flower below /flower/), certificate, key and CA from the throwaway CA (prepare.yml).

- HTTPS verified against the CA: 200 with basic auth, 401 without (Flower's own auth, through
  nginx); without the CA, curl refuses the certificate (nothing trusts it by accident).
- HSTS on every answer, 401s and redirects included.
- Plain HTTP sent to the HTTPS port is redirected (301) to the same URL over HTTPS; nothing listens
  on port 80 (Debian's default site is gone).
- url_prefix: the supervisord host serves Flower below /flower/ only.
- Flower's own port is loopback only: another container's connection is refused, while the same
  container reaches the HTTPS port.
- The key is root's, 0600: the app's user (every task's code) cannot read it.
- A rotation of a Flower user's password (flower_users[].previous_passwords on one host, phase 1):
  the current and the previous password both get in, a wrong one does not; on the other host (no
  previous password: phase 2, or no rotation) the same previous password is refused.
"""

from __future__ import annotations

import time

from conftest import APP, LAYOUT, Target, inventory_hosts

HSTS = "max-age=31536000"
OTHER = {host: next(h for h in inventory_hosts() if h != host) for host in inventory_hosts()}


def https(target: Target, path: str, **kwargs) -> tuple[int, dict[str, str], str]:
    return target.http(path, base=target.https_url, options=target.https_options(), **kwargs)


def test_https_needs_the_ca_and_basic_auth(target: Target) -> None:
    with_auth, headers, _ = https(target, "/api/workers", auth=target.user)
    anonymous, anonymous_headers, _ = https(target, "/")
    print(
        f"{target.container}: {target.https_url}/api/workers with auth {with_auth}, / anonymous {anonymous}"
    )
    assert with_auth == 200
    assert anonymous == 401
    assert anonymous_headers.get("www-authenticate", "").startswith("Basic")
    assert headers.get("strict-transport-security") == HSTS
    assert anonymous_headers.get("strict-transport-security") == HSTS
    # Without the CA, the certificate does not verify (curl's exit 60).
    unverified = target.sh(
        f"curl -s -o /dev/null --resolve {target.container}:443:127.0.0.1 {target.https_url}/healthcheck",
        check=False,
    )
    assert unverified.returncode == 60, unverified


def test_plain_http_to_the_https_port_is_redirected(target: Target) -> None:
    status, headers, _ = target.http(
        "/api/workers?x=1", base=f"http://{target.container}:443{target.path}", options=target.https_options()
    )
    print(f"{target.container}: plain HTTP to :443 -> {status} {headers.get('location')}")
    assert status == 301
    assert headers["location"] == f"https://{target.container}:443{target.path}/api/workers?x=1"
    listening = target.sh("ss -Hltn 'sport = :80 or sport = :443'").stdout.split("\n")
    assert [line.split()[3] for line in listening if line] == ["0.0.0.0:443"]


def test_url_prefix_over_https(target: Target) -> None:
    status, _, body = https(target, "/healthcheck")
    assert (status, body.strip()) == (200, "OK")
    if target.path:
        outside, _, _ = target.http(
            "/healthcheck", base=f"https://{target.container}", options=target.https_options()
        )
        bare, headers, _ = target.http(
            target.path, base=f"https://{target.container}", options=target.https_options()
        )
        print(
            f"{target.container}: {target.path}/healthcheck 200, /healthcheck {outside}, {target.path} {bare}"
        )
        assert outside == 404
        assert (bare, headers["location"]) == (301, f"https://{target.container}{target.path}/")


def test_only_the_https_port_is_reachable_from_another_container(target: Target) -> None:
    other = Target(OTHER[target.container])
    flower_port = other.sh(
        f"curl -s -o /dev/null --connect-timeout 5 http://{target.address}:5555/healthcheck", check=False
    )
    status, _, _ = target.http(
        "/healthcheck", base=target.https_url, options=target.https_options(), via=other
    )
    print(
        f"{other.container} -> {target.container}: Flower's port: curl exit {flower_port.returncode}; "
        f"HTTPS {status}"
    )
    assert flower_port.returncode == 7  # connection refused
    assert status == 200


def test_tls_key_is_roots_and_unreadable_by_the_app(target: Target) -> None:
    key = LAYOUT["flower_tls_key_file"]
    assert target.sh(f"stat -c '%a %U %G' {key}").stdout.split() == ["600", "root", "root"]
    assert target.sh(f"runuser -u {APP} -- cat {key}", check=False).returncode != 0


def test_a_previous_password_gets_in_beside_the_current_one_only_where_listed(target: Target) -> None:
    previous = {
        user["name"]: user["previous_passwords"]
        for host in inventory_hosts()
        for user in Target(host).vars["flower_users"]
        if user.get("previous_passwords")
    }
    assert previous, "molecule.yml gives no Flower user previous_passwords on any host"
    users = {user["name"]: user for user in target.vars["flower_users"]}
    options = target.https_options()  # once: each call asks the container for its address
    started = time.monotonic()
    seen = {}
    for name, passwords in previous.items():
        listed = users[name].get("previous_passwords") or []
        cases = [("current", users[name]["password"], 200)]
        cases += [(f"previous[{i}]", p, 200 if p in listed else 401) for i, p in enumerate(passwords)]
        cases += [("wrong", users[name]["password"] + "-wrong", 401)]
        for label, password, expected in cases:
            # /metrics: what Prometheus scrapes with the current password.
            for path in ["/api/workers", "/metrics"]:
                auth = (name, password)
                status, _, _ = target.http(path, auth=auth, base=target.https_url, options=options)
                seen[f"{name} {label} {path}"] = status
                assert status == expected, f"{name} with its {label} password on {path}: {status}"
    print(f"{target.container}: {seen} ({len(seen)} requests in {time.monotonic() - started:.1f} s)")
