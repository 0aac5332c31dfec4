"""Flower over HTTPS on the users' path (issue 18): Debian's nginx, installed over SSH + sudo on the
cloud image, in front of Flower on loopback; reached from the controller as a browser elsewhere
reaches it (by the name in the certificate, the certificate verified with the run's CA).

The role's promise (roles/flower/README.md "Flower over HTTPS"): HSTS on every answer, plain HTTP
sent to the HTTPS port redirected (301) to the same URL over HTTPS, nothing on port 80 (Debian's
default site removed), Flower's own port on loopback only.
"""

from __future__ import annotations

import socket

from conftest import HOST, VARS, address, check_output, https

HSTS = f"max-age={VARS.get('flower_tls_hsts_max_age', 31536000)}"


def test_hsts_on_every_answer() -> None:
    user = VARS["flower_users"][0]
    ok, ok_headers, _ = https("/api/workers", auth=(user["name"], user["password"]))
    denied, denied_headers, _ = https("/api/workers")
    hsts = ok_headers.get("strict-transport-security")
    print(f"\nhttps://{HOST}/api/workers: {ok} with auth, {denied} without; HSTS {hsts}")
    assert (ok, denied) == (200, 401)
    assert ok_headers.get("strict-transport-security") == HSTS
    assert denied_headers.get("strict-transport-security") == HSTS


def test_plain_http_is_redirected_to_https() -> None:
    status, headers, _ = https("/api/workers?x=1", scheme="http")
    print(f"\nhttp://{HOST}:443/api/workers?x=1 -> {status} {headers.get('location')}")
    assert status == 301
    assert headers["location"] == f"https://{HOST}:443/api/workers?x=1"
    assert headers.get("strict-transport-security") == HSTS


def test_without_the_ca_the_certificate_does_not_verify() -> None:
    status, _, body = https("/healthcheck", ca=False)
    print(f"\nhttps://{HOST}/healthcheck with the system's CAs only: {body or status}")
    assert body == "curl exit 60"
    assert https("/healthcheck")[0] == 200


def test_only_the_https_port_is_reachable_from_outside() -> None:
    reached = {}
    for port in (80, 443, int(VARS.get("flower_port", 5555))):
        try:
            socket.create_connection((address(), port), timeout=5).close()
            reached[port] = "open"
        except OSError as error:
            reached[port] = type(error).__name__
    print(f"\nfrom the controller to {address()}: {reached}")
    assert reached == {80: "ConnectionRefusedError", 443: "open", 5555: "ConnectionRefusedError"}
    # On the host, Flower listens on loopback only.
    flower = check_output("ss -Hltn 'sport = :5555'").split()
    assert flower[3] == "127.0.0.1:5555", flower
