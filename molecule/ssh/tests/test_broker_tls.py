"""TLS-only broker on the users' path (issue 18): every service of the app on the cloud-image host
talks TLS to Redis, deployed over SSH + sudo.

What proves it (as molecule/monitoring/tests/test_tls.py, here per service): with redis_port 0 the
TLS port is Redis' only TCP listener (tested), so a connection on it is a TLS connection (a
plaintext client gets no reply there, tested). Redis 7.0's CLIENT LIST has no TLS flag; it shows
each connection's user and local port. `ss -tnp` on the host names the process, so each service's
unit (both workers, beat, Flower) is seen holding its broker connection to the TLS port.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest
from conftest import APP, NODE, TLS_PORT, VARS, check_output, redis_admin
from fleetnode import wait_until

LAYOUT = NODE.layout
SERVICES = sorted(
    [LAYOUT["worker_service_prefix"] + w["name"] for w in VARS["celery_workers"]]
    + [LAYOUT["beat_service"], LAYOUT["flower_service"]]
)


def test_only_the_tls_port_of_redis_listens() -> None:
    sockets = check_output("ss -Hltn")
    ports = {line.split()[3].rsplit(":", 1)[1] for line in sockets.splitlines() if line.strip()}
    print(f"\nlistening TCP ports: {sorted(ports, key=int)}")
    assert str(TLS_PORT) in ports
    assert "6379" not in ports


def _broker_connections() -> dict[str, set[int]]:
    """Service unit -> the broker ports its processes hold established connections to."""
    lines = check_output(f"ss -Htnp state established '( dport = :{TLS_PORT} or dport = :6379 )'")
    by_pid: dict[int, set[int]] = {}
    for line in lines.splitlines():
        peer_port = int(line.split()[3].rsplit(":", 1)[1])
        for pid in re.findall(r"pid=(\d+)", line):
            by_pid.setdefault(int(pid), set()).add(peer_port)
    if not by_pid:
        return {}
    units = check_output(f"ps -o pid=,unit= -p {','.join(map(str, by_pid))}")
    found: dict[str, set[int]] = {}
    for line in units.splitlines():
        pid, _, unit = line.strip().partition(" ")
        found.setdefault(unit.strip().removesuffix(".service"), set()).update(by_pid[int(pid)])
    return found


def test_every_service_of_the_app_holds_its_broker_connections_on_the_tls_port() -> None:
    found: dict[str, set[int]] = {}

    def all_seen() -> bool:
        for unit, ports in _broker_connections().items():
            found.setdefault(unit, set()).update(ports)
        return set(SERVICES) <= set(found)

    # Beat's connection may be between two sends: polled until every service was seen.
    wait_until(all_seen, timeout=30, interval=1, what=f"broker connections of {SERVICES}")
    print(f"\nbroker ports per unit: { {u: sorted(p) for u, p in sorted(found.items())} }")
    assert all(ports == {TLS_PORT} for ports in found.values()), found


def test_every_tcp_client_in_client_list_came_through_the_tls_port() -> None:
    clients = [
        dict(field.split("=", 1) for field in line.split() if "=" in field)
        for line in redis_admin("CLIENT", "LIST").splitlines()
        if line.strip()
    ]
    tcp = [c for c in clients if not c.get("laddr", "/").startswith("/")]
    by_user: dict[str, set[str]] = {}
    for client in tcp:
        by_user.setdefault(client.get("user", "?"), set()).add(client["laddr"].rsplit(":", 1)[1])
    print(f"\nCLIENT LIST, TCP connections by user, local ports: {by_user}")
    assert {"worker", "flower"} <= set(by_user)
    assert all(ports == {str(TLS_PORT)} for ports in by_user.values()), by_user


def test_every_broker_url_of_the_app_is_rediss_with_a_verifying_ca() -> None:
    # grep -o prints the file, the variable's name and the URL's scheme only: the URLs carry passwords.
    pattern = shlex.quote("^CELERY_[A-Z_]+=[\"']?[a-z]+://")
    found = check_output(f"grep -EHo {pattern} {LAYOUT['config_dir']}/*.env").splitlines()
    urls = [re.match(r"^(.+):(CELERY_[A-Z_]+)=[\"']?([a-z]+)://$", line).groups() for line in found]
    print(f"\n{urls}")
    assert {name for _, name, _ in urls} >= {"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    assert {scheme for *_, scheme in urls} == {"rediss"}
    settings = json.loads(check_output(f"cat {LAYOUT['fleet_config']}"))["settings"]
    expected = {
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": LAYOUT["tls_ca_file"],
        "ssl_certfile": LAYOUT["tls_cert_file"],
        "ssl_keyfile": LAYOUT["tls_key_file"],
    }
    assert settings["broker_use_ssl"] == expected
    assert settings["redis_backend_use_ssl"] == expected


def test_a_plaintext_client_is_refused() -> None:
    script = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 6379), timeout=5); print('6379: connected')\n"
        "except OSError as e:\n"
        "    print('6379:', type(e).__name__)\n"
        f"s = socket.create_connection(('127.0.0.1', {TLS_PORT}), timeout=5)\n"
        "s.sendall(b'PING\\r\\n')\n"
        "try:\n"
        f"    print('{TLS_PORT}:', s.recv(100) or b'closed')\n"
        "except OSError as e:\n"
        f"    print('{TLS_PORT}:', type(e).__name__)\n"
    )
    reply = check_output(f"runuser -u {APP} -- python3 -", stdin=script)
    print(f"\n{reply.strip()}")
    assert "6379: ConnectionRefusedError" in reply
    assert "PONG" not in reply


@pytest.mark.parametrize("ca", ["system CAs only", "the broker's CA"])
def test_a_client_verifies_the_brokers_certificate(ca: str) -> None:
    # redis-py of the app's virtualenv as the app's user with its client certificate; the password
    # on stdin. Without the CA the handshake fails; with it, PING: the failure is the CA.
    ca_arg = f", ssl_ca_certs={LAYOUT['tls_ca_file']!r}" if ca == "the broker's CA" else ""
    script = (
        "import sys, redis\n"
        f"c = redis.Redis(host='127.0.0.1', port={TLS_PORT}, username='worker',\n"
        "    password=sys.stdin.readline().strip(),\n"
        f"    ssl=True, ssl_cert_reqs='required', ssl_certfile={LAYOUT['tls_cert_file']!r},\n"
        f"    ssl_keyfile={LAYOUT['tls_key_file']!r}, socket_timeout=10{ca_arg})\n"
        "try:\n"
        "    print('PING', c.ping())\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    check_output("cat > /tmp/cf-tls-client.py && chmod 0644 /tmp/cf-tls-client.py", stdin=script)
    out = check_output(
        f"cd / && runuser -u {APP} -- {LAYOUT['venv']}/bin/python /tmp/cf-tls-client.py",
        stdin=VARS["celery_broker_password"] + "\n",
    ).strip()
    print(f"\n{ca}: {out}")
    if ca == "the broker's CA":
        assert out == "PING True"
    else:
        assert "certificate verify failed" in out.lower()
