"""Redis Sentinel high availability (roles/redis, redis_sentinel_enabled): replication, the
Sentinels' agreement, authentication everywhere, a failover after `kill -9` of the master. The
tests run in file order: the failover moves the master; test_under_load.py goes on from there and
ends with a re-run of site.yml against the moved master."""

from __future__ import annotations

import re
import time

import pytest
from conftest import (
    DATA_NODES,
    DATA_PORT,
    DOWN_AFTER_MS,
    MASTER_NAME,
    SENTINEL_PORT,
    SENTINELS,
    TLS,
    VARS,
    WRONG_PASSWORD,
    address,
    admin,
    cli,
    master_by_sentinel,
    master_node,
    node,
    records,
    role,
    sentinel,
    wait_until,
)


def test_one_master_and_every_replica_in_sync():
    master = master_node()

    replication = admin(master, "INFO replication")

    assert "connected_slaves:2" in replication, replication
    for replica in set(DATA_NODES) - {master}:
        info = admin(replica, "INFO replication")
        assert "role:slave" in info
        assert f"master_host:{address(master)}" in info
        assert "master_link_status:up" in info, info


@pytest.mark.parametrize("name", SENTINELS)
def test_every_sentinel_names_the_master_and_reaches_its_quorum(name):
    master = master_node()

    assert master_by_sentinel(name) == f"{address(master)}:{DATA_PORT}"
    assert sentinel(name, f"SENTINEL CKQUORUM {MASTER_NAME}").startswith("OK 3 usable Sentinels")


def test_the_initial_master_is_the_first_data_node():
    # redis_sentinel_initial_master defaults to the first host of group redis; no failover yet.
    assert master_node() == DATA_NODES[0]


def test_the_master_needs_a_replica_to_accept_writes():
    settings = admin(master_node(), "CONFIG GET min-replicas-to-write").split()

    assert settings == ["min-replicas-to-write", str(VARS.get("redis_min_replicas_to_write", 1))]


@pytest.mark.parametrize("name", DATA_NODES)
def test_unauthenticated_client_gets_noauth_from_a_data_node(name):
    for command in ("PING", "INFO replication", "ROLE", "GET anything"):
        assert cli(name, command).startswith("NOAUTH"), command


@pytest.mark.parametrize("name", SENTINELS)
def test_unauthenticated_client_gets_noauth_from_a_sentinel(name):
    for command in ("PING", f"SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER_NAME}", "SENTINEL MASTERS", "INFO"):
        assert cli(name, command, port=SENTINEL_PORT).startswith("NOAUTH"), command


def test_a_wrong_sentinel_password_is_refused():
    reply = cli(SENTINELS[0], "PING", password=WRONG_PASSWORD, port=SENTINEL_PORT, check=False)

    assert "WRONGPASS" in reply, reply
    assert "PONG" not in reply


# The system's CAs: a client that trusts them, not the fleet's CA.
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"


@pytest.mark.skipif(not TLS, reason="the fleet runs without TLS")
@pytest.mark.parametrize("name", DATA_NODES)
def test_tls_only_no_plaintext_and_no_unverified_client(name):
    # The data node's plaintext port is closed (redis_port 0); its TLS port and the Sentinel's,
    # spoken to in plaintext with the right password, give nothing.
    password = {"password": VARS["redis_sentinel_password"]}
    assert "Connection refused" in cli(name, "PING", port=6379, tls=False, check=False, **password)
    for port in (DATA_PORT, SENTINEL_PORT):
        reply = cli(name, "PING", port=port, tls=False, check=False, **password)
        assert "PONG" not in reply and "NOAUTH" not in reply and "WRONGPASS" not in reply, (port, reply)
    # A client without the fleet's CA does not trust the server (redis-cli verifies by default)...
    system_ca = node(name).run(
        f"redis-cli -h {address(name)} -p {SENTINEL_PORT} --tls --cacert {SYSTEM_CA} PING"
    )
    assert "PONG" not in system_ca.stdout and "verify failed" in system_ca.stdout + system_ca.stderr, (
        system_ca
    )
    # ...and one without a client certificate is refused by the server (redis_tls_auth_clients yes).
    no_cert = node(name).run(
        f"redis-cli -h {address(name)} -p {SENTINEL_PORT} --tls --cacert /etc/redis/tls/ca.crt PING"
    )
    assert "PONG" not in no_cert.stdout and "NOAUTH" not in no_cert.stdout, no_cert


@pytest.mark.skipif(not TLS, reason="the fleet runs without TLS")
def test_replication_and_the_sentinels_links_run_over_tls():
    # The replicas reach the master on its TLS port (the only one open) and are in sync; the Sentinels
    # know every replica and each other there, none disconnected.
    master = master_node()
    for replica in set(DATA_NODES) - {master}:
        info = admin(replica, "INFO replication")
        assert f"master_port:{DATA_PORT}" in info and "master_link_status:up" in info, info
    for name in SENTINELS:
        replicas = records(sentinel(name, f"SENTINEL REPLICAS {MASTER_NAME}"))
        assert {r["port"] for r in replicas} == {str(DATA_PORT)}, replicas
        assert all("disconnected" not in r["flags"] for r in replicas), replicas
        peers = records(sentinel(name, f"SENTINEL SENTINELS {MASTER_NAME}"))
        assert len(peers) == len(SENTINELS) - 1, peers
        assert all("disconnected" not in p["flags"] for p in peers), peers


def test_the_replication_and_sentinel_users_get_only_their_commands():
    master = master_node()
    replication = (VARS.get("redis_replication_user", "replication"), VARS["redis_replication_password"])
    sentinel_user = (VARS.get("redis_sentinel_auth_user", "sentinel"), VARS["redis_sentinel_auth_password"])

    assert cli(master, "PING", user=replication[0], password=replication[1]) == "PONG"
    assert cli(master, "GET anything", user=replication[0], password=replication[1]).startswith("NOPERM")
    assert cli(master, "ROLE", user=sentinel_user[0], password=sentinel_user[1]).startswith("master")
    for command in ("GET anything", "FLUSHALL", "CONFIG SET maxmemory 1", "KEYS '*'"):
        assert cli(master, command, user=sentinel_user[0], password=sentinel_user[1]).startswith("NOPERM"), (
            command
        )


@pytest.mark.parametrize("name", DATA_NODES)
def test_files_holding_passwords_are_closed_to_others(name):
    listing = node(name).check(
        "stat -c '%n %a %U %G' /etc/redis /etc/redis/redis.conf /etc/redis/sentinel.conf /etc/redis/users.acl"
    )

    for line in listing.splitlines():
        _path, mode, _owner, group = line.split()
        assert int(mode[-1]) == 0, line  # nothing for others
        assert group == "redis", line


def test_kill_9_of_the_master_elects_a_new_master_in_bounded_time():
    old = master_node()
    old_address = f"{address(old)}:{DATA_PORT}"
    # Debian's unit restarts a killed server within 100 ms (Restart=always), long before Sentinel's
    # down-after: masked for the test, the server stays down as a crashed host would.
    node(old).check("systemctl mask --runtime redis-server")
    started = time.monotonic()
    node(old).check("systemctl kill --signal=SIGKILL --kill-whom=main redis-server")

    def new_master() -> str | None:
        named = {master_by_sentinel(s) for s in SENTINELS}
        return named.pop() if len(named) == 1 and old_address not in named else None

    elected, _ = wait_until(new_master, timeout=60, what="a new master named by every Sentinel", interval=0.2)
    seconds = time.monotonic() - started
    ratio = seconds * 1000 / DOWN_AFTER_MS
    print(
        f"\nfailover: {old_address} -> {elected} in {seconds:.1f} s",
        f"(x{ratio:.2f} of down-after {DOWN_AFTER_MS} ms)",
    )

    new = next(n for n in DATA_NODES if f"{address(n)}:{DATA_PORT}" == elected)
    assert role(new) == "master"
    # Bounded: down-after plus the election and promotion (the ratio itself is a benchmark).
    assert seconds < DOWN_AFTER_MS / 1000 + 25

    # The old master comes back and Sentinel turns it into a replica of the new one.
    node(old).check("systemctl unmask --runtime redis-server && systemctl start redis-server")
    wait_until(
        lambda: "master_link_status:up" in admin(old, "INFO replication") and role(old) == "slave",
        timeout=60,
        what=f"{old} back as a replica of {new}",
    )
    # What Sentinel persisted (CONFIG REWRITE) on the old master: replicaof the new one.
    assert re.search(
        rf"^replicaof {re.escape(elected.replace(':', ' '))}$", node(old).read("/etc/redis/redis.conf"), re.M
    )
