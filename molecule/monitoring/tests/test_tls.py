"""TLS-only broker (issue 18): every client of the fleet talks TLS to Redis and verifies its CA.

The scenario turns TLS on with one switch (redis_tls_enabled in group all) and closes the plaintext
port (redis_port 0). What proves that every client uses TLS, and why these measures:

- Redis 7.0's CLIENT LIST has no TLS flag, but it shows each connection's local address (laddr).
  With redis_port 0 the TLS port is the server's only TCP listener, so every TCP client with laddr
  :6380 came in through TLS; the users on those connections name the clients (worker, flower,
  exporter). A plaintext connection is refused on 6379 and gets no reply on 6380 (tested).
- A capture on the broker's interface while Celery clients log in (a live check's `celery inspect
  ping` as the worker user, a producer's task and its result as the producer user) holds none of
  the scenario's passwords. The image has no tcpdump: the capture is a Python AF_PACKET socket; a
  control word sent in plaintext during the capture must be seen, so an empty capture cannot pass.
- A client that does not trust the scenario's CA fails verification; the same client with the CA
  gets in (so the failure is the CA, not the password or the client certificate).
"""

from __future__ import annotations

import json
import shlex
import time

import pytest
from conftest import LAYOUT, OPS, REDIS, WORKER, acl_password, api, node, redis_cli, secrets, wait_until

TLS_PORT = "6380"
TLS_DIR = LAYOUT["tls_dir"]
EXPORTER_TLS_DIR = "/etc/prometheus-redis-exporter"


def _clients() -> list[dict[str, str]]:
    """CLIENT LIST as one dict per connection."""
    return [
        dict(field.split("=", 1) for field in line.split() if "=" in field)
        for line in redis_cli("CLIENT LIST").splitlines()
        if line.strip()
    ]


def test_only_the_tls_port_listens() -> None:
    sockets = node(REDIS).check("ss -Hltn")
    ports = {line.split()[3].rsplit(":", 1)[1] for line in sockets.splitlines()}
    print(f"listening TCP ports on {REDIS}: {sorted(ports)}")
    assert TLS_PORT in ports
    assert "6379" not in ports


def test_every_client_of_the_fleet_is_connected_through_the_tls_port() -> None:
    # Workers and Flower hold their connections; the exporter's lives for one scrape (every 2 s), so
    # it is counted when a poll catches it and proven by redis_up below.
    wanted = {"worker", "flower"}
    by_user: dict[str, set[str]] = {}

    def seen() -> bool:
        for client in _clients():
            if not client.get("laddr", "/").startswith("/"):
                by_user.setdefault(client.get("user", "?"), set()).add(client["laddr"].rsplit(":", 1)[1])
        return wanted <= set(by_user)

    wait_until(seen, timeout=60, what=f"TCP connections of the users {sorted(wanted)}")
    for _ in range(10):  # a few more polls: a short-lived client (exporter, producer) may show up
        seen()
        time.sleep(0.5)
    print(f"TCP connections by user, local ports: {by_user}")
    assert all(ports == {TLS_PORT} for ports in by_user.values()), by_user


@pytest.mark.parametrize("host", [WORKER, OPS])
def test_every_broker_url_of_the_app_is_rediss_with_a_verifying_ca(host: str) -> None:
    # Only the variable name and the URL scheme are printed: the URLs carry passwords.
    script = (
        "import glob, re\n"
        f"for path in sorted(glob.glob('{LAYOUT['config_dir']}/*.env')):\n"
        "    for line in open(path):\n"
        '        m = re.match(r"^(CELERY_[A-Z_]+)=[\\x22\\x27]?([a-z]+)://", line)\n'
        "        if m: print(path, m.group(1), m.group(2))\n"
    )
    urls = node(host).check("python3 -", stdin=script).split("\n")
    urls = [line.split() for line in urls if line]
    print(f"{host}: {urls}")
    assert {name for _, name, _ in urls} >= {"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    assert {scheme for *_, scheme in urls} == {"rediss"}
    settings = json.loads(node(host).read(LAYOUT["fleet_config"]))["settings"]
    expected = {
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": f"{TLS_DIR}/ca.crt",
        "ssl_certfile": f"{TLS_DIR}/client.crt",
        "ssl_keyfile": f"{TLS_DIR}/client.key",
    }
    assert settings["broker_use_ssl"] == expected
    assert settings["redis_backend_use_ssl"] == expected


@pytest.mark.parametrize(
    ("host", "path", "owner", "group", "mode"),
    [
        (WORKER, f"{TLS_DIR}/ca.crt", "root", "root", 0o644),
        (WORKER, f"{TLS_DIR}/client.crt", "root", "root", 0o644),
        (WORKER, f"{TLS_DIR}/client.key", "root", "celerydemo", 0o640),
        (OPS, f"{TLS_DIR}/client.key", "root", "celerydemo", 0o640),
        (REDIS, f"{EXPORTER_TLS_DIR}/ca.crt", "root", "prometheus", 0o644),
        (REDIS, f"{EXPORTER_TLS_DIR}/client.key", "root", "prometheus", 0o640),
    ],
)
def test_tls_files_have_their_owner_and_mode(host: str, path: str, owner: str, group: str, mode: int) -> None:
    assert node(host).stat(path) == (owner, group, mode)


def test_the_exporter_reaches_redis_over_tls() -> None:
    # Its address is rediss:// (the line holds no password); redis_up 1 in Prometheus: it logged
    # in, and Redis listens on TLS only.
    address = node(REDIS).check(
        "grep -o \"^REDIS_ADDR='[a-z]*://[^']*'\" /etc/default/prometheus-redis-exporter"
    )
    print(address)
    assert "rediss://127.0.0.1:6380" in address
    result = api("/api/v1/query?query=redis_up")["result"]
    print(f"redis_up: {[(r['metric'].get('instance'), r['value'][1]) for r in result]}")
    assert result
    assert all(r["value"][1] == "1" for r in result)


def test_a_plaintext_connection_is_refused() -> None:
    script = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({REDIS!r}, 6379), timeout=5); print('6379: connected')\n"
        "except OSError as e:\n"
        "    print('6379:', type(e).__name__)\n"
        f"s = socket.create_connection(({REDIS!r}, {TLS_PORT}), timeout=5)\n"
        "s.sendall(b'PING\\r\\n')\n"
        "try:\n"
        "    print('6380:', s.recv(100) or b'closed')\n"
        "except OSError as e:\n"
        "    print('6380:', type(e).__name__)\n"
    )
    reply = node(WORKER).check("python3 -", stdin=script)
    print(reply)
    assert "6379: ConnectionRefusedError" in reply
    assert "PONG" not in reply


def _redis_py(ca: str | None) -> str:
    """A redis-py client (the app's virtualenv) with the client certificate, as the worker user."""
    ca_arg = f", ssl_ca_certs={ca!r}" if ca else ""
    script = (
        "import os, redis\n"
        f"c = redis.Redis(host={REDIS!r}, port={TLS_PORT}, username='worker', password=os.environ['CF_PW'],\n"
        f"    ssl=True, ssl_cert_reqs='required', ssl_certfile='{TLS_DIR}/client.crt',\n"
        f"    ssl_keyfile='{TLS_DIR}/client.key', socket_timeout=10{ca_arg})\n"
        "try:\n"
        "    print('PING', c.ping())\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    return node(WORKER).check(
        f"{LAYOUT['venv']}/bin/python -", stdin=script, secret_env={"CF_PW": acl_password("worker")}
    )


def test_a_client_without_the_ca_fails_verification_and_with_it_gets_in() -> None:
    without = _redis_py(None)
    print(f"system CAs only: {without.strip()}")
    assert "certificate verify failed" in without.lower()
    assert _redis_py(f"{TLS_DIR}/ca.crt").strip() == "PING True"


SNIFFER = """
import json, os, socket, sys, time
needles = [n.encode() for n in os.environ["CF_NEEDLES"].split("\\n") if n]
marker = os.environ["CF_MARKER"].encode()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.settimeout(0.5)
open("/run/cf-sniff.ready", "w").close()
end = time.monotonic() + float(sys.argv[1])
packets, bytes_seen, hits, marker_seen = 0, 0, 0, False
while time.monotonic() < end and not os.path.exists("/run/cf-sniff.stop"):
    try:
        data = s.recv(65535)
    except socket.timeout:
        continue
    packets += 1
    bytes_seen += len(data)
    marker_seen = marker_seen or marker in data
    hits += sum(n in data for n in needles)
print(json.dumps({"packets": packets, "bytes": bytes_seen, "marker": marker_seen, "password_hits": hits}))
"""


def test_no_password_crosses_the_network_in_clear() -> None:
    marker = f"cf-plaintext-control-{time.time_ns()}"
    broker = node(REDIS)
    broker.check(
        "rm -f /run/cf-sniff.ready /run/cf-sniff.stop /run/cf-sniff.out && cat > /run/cf-sniff.py",
        stdin=SNIFFER,
    )
    broker.check(
        "nohup python3 /run/cf-sniff.py 120 < /dev/null > /run/cf-sniff.out 2>&1 &",
        secret_env={"CF_NEEDLES": "\n".join(secrets()), "CF_MARKER": marker},
    )
    wait_until(lambda: broker.exists("/run/cf-sniff.ready") or None, timeout=20, what="the capture")
    # A live check as the worker user (the app's celery command), a producer's task and its result.
    worker = node(WORKER)
    print(worker.check(worker.celery("inspect ping --timeout 5"))[-300:])
    publish = "-c " + shlex.quote(
        "import celery_fleet_app\nfrom celery_demo.tasks import PING_TASKS\n"
        "print(PING_TASKS['high_priority'].apply_async(queue='high_priority').get(timeout=30))"
    )
    print(node(OPS).check(node(OPS).python(publish))[-300:])
    # The control: a word sent in plaintext to the TLS port must be in the capture.
    worker.run(
        f"python3 -c \"import socket; s = socket.create_connection(('{REDIS}', {TLS_PORT}), timeout=5); "
        f"s.sendall(b'{marker}\\r\\n'); s.close()\""
    )
    # The capture ends once the stop file is there (at most 120 s after it began).
    time.sleep(1)
    broker.check("touch /run/cf-sniff.stop")
    result, _ = wait_until(
        lambda: broker.run("cat /run/cf-sniff.out").stdout.strip() or None,
        timeout=30,
        what="the capture's result",
    )
    report = json.loads(result.splitlines()[-1])
    print(f"capture on {REDIS}: {report}")
    assert report["marker"], "the capture did not see the plaintext control word: it proves nothing"
    assert report["packets"] > 20
    assert report["password_hits"] == 0, "a password of the scenario crossed the network in clear"
