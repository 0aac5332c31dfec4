"""TLS-only Redis (issue 18): with redis_port 0 the plaintext port is closed and clients verify the CA.

The Debian 12 host is converged again with redis_port 0 (TLS on, as in the whole scenario), then
put back to the scenario's settings (its redis.conf and a restart). While TLS-only: nothing
listens on the plaintext port, a client with the scenario's throwaway CA and its client
certificate gets in with its ACL user, a client that trusts another CA fails verification, and
the server kept its data.
"""

from __future__ import annotations

import json

import pytest
from conftest import all_brokers, run_playbook
from fleetnode import wait_until

CA = "/etc/ssl/redis-test/ca.crt"
CLIENT = ("--cert", "/etc/ssl/redis-test/client.crt", "--key", "/etc/ssl/redis-test/client.key")
OTHER_CA = "/run/other-ca.crt"


def _tls(ca: str = CA) -> tuple[str, ...]:
    return ("--tls", "--cacert", ca, *CLIENT, "-h", "127.0.0.1", "-p", "6380")


# The scenario's redis.conf of the Debian 12 host, kept while it runs TLS-only.
SAVED_CONF = "/run/redis.conf.before-tls-only"


@pytest.fixture(scope="module")
def tls_only():
    broker = next(b for b in all_brokers() if b.container.endswith("bookworm"))
    conf = f"{broker.config_dir}/{broker.server}.conf"
    keys_before = broker.admin("DBSIZE")
    saved = broker.sh(f"cp -a {conf} {SAVED_CONF} && sha256sum < {conf}")
    assert saved.returncode == 0, saved.stderr
    result = run_playbook("-l", broker.container, "-e", json.dumps({"redis_port": 0}))
    sockets = broker.sh("ss -Hltn").stdout
    yield broker, result, keys_before, sockets
    # Back to the scenario's settings without a second converge (about 60 s on 2 busy cores):
    # redis_port is read by redis.conf.j2 only, so the scenario's file (owner, mode, content) and a
    # restart are what that converge would do. test_redis_users_live.py converges this host next and
    # proves the state is the role's: its phase 1 fails if that run restarts the server.
    back = broker.sh(
        f"cp -a {SAVED_CONF} {conf} && rm {SAVED_CONF} && systemctl restart {broker.service}"
        f" && sha256sum < {conf}"
    )
    assert back.returncode == 0, back.stderr
    assert back.stdout == saved.stdout
    wait_until(lambda: broker.admin("PING") == "PONG", timeout=30, interval=0.2, what="the server on 6379")


def test_the_role_deploys_tls_only_redis(tls_only):
    _, result, *_ = tls_only
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]


def test_only_the_tls_port_listens(tls_only):
    _, _, _, sockets = tls_only
    ports = {line.split()[3].rsplit(":", 1)[1] for line in sockets.splitlines()}
    print(f"listening ports: {sorted(ports)}")
    assert "6380" in ports
    assert "6379" not in ports


def test_a_plaintext_client_is_refused(tls_only):
    broker, *_ = tls_only
    reply = broker.cli_run("PING", user="worker")
    print(f"plaintext: {reply!r}")
    assert "PONG" not in reply
    assert "refused" in reply.lower()


def test_a_client_verifying_the_ca_gets_in_with_its_acl_user_and_the_data_is_kept(tls_only):
    broker, _, keys_before, _ = tls_only
    assert broker.cli_run("PING", user="worker", cli_args=_tls()) == "PONG"
    assert broker.cli_run("DBSIZE", user="admin", cli_args=_tls()) == keys_before


def test_a_client_that_trusts_another_ca_fails_verification(tls_only):
    broker, *_ = tls_only
    made = broker.sh(
        f"openssl req -x509 -newkey rsa:2048 -nodes -keyout /run/other-ca.key -out {OTHER_CA} "
        "-days 1 -subj /CN=other-test-ca 2>&1"
    )
    assert made.returncode == 0, made.stdout
    reply = broker.cli_run("PING", user="worker", cli_args=_tls(OTHER_CA))
    print(f"other CA: {reply!r}")
    assert "PONG" not in reply
    assert "certificate verify failed" in reply.lower()
