"""Helpers of the sentinel scenario's tests.

Commands reach the containers through molecule/resources/fleetnode.py (`docker exec`); passwords
travel in the exec's environment as REDISCLI_AUTH (only its name is in argv) and never on a
command line. Addresses are read from the containers, as Sentinel reports them.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# molecule/resources holds what every scenario's tests share.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
import kept_playbook
from fleetnode import Node, wait_until
from scenario_inventory import inventory_vars

__all__ = ["wait_until"]  # re-exported for the tests

SCENARIO_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = SCENARIO_DIR.parents[1]
DATA_NODES = ["sentinel-redis-1", "sentinel-redis-2", "sentinel-redis-3"]
SENTINELS = DATA_NODES
VARS = inventory_vars(DATA_NODES[0])
MASTER_NAME = VARS.get("redis_sentinel_master_name", "celery-fleet")
DOWN_AFTER_MS = VARS.get("redis_sentinel_down_after_milliseconds", 5000)
SENTINEL_PORT = 26379
# TLS-only fleet (molecule.yml): data nodes on their TLS port, Sentinels on theirs, every redis-cli
# with the CA and the node's own certificate as client certificate.
TLS = VARS.get("redis_tls_enabled", False) is True
DATA_PORT = int(VARS.get("redis_tls_port", 6380)) if TLS else 6379
TLS_ARGS = (
    "--tls --cacert /etc/redis/tls/ca.crt --cert /etc/redis/tls/server.crt --key /etc/redis/tls/server.key "
)


@functools.cache
def node(name: str) -> Node:
    return Node(name)


# The container's address on the scenario network (what the role announces), as a shell command:
# address() runs it alone, cli() inside its own exec.
ADDRESS = "hostname -I | cut -d' ' -f1"


def address(name: str) -> str:
    """The container's address on the scenario network (what the role announces)."""
    return node(name).check(ADDRESS).strip()


def cli(
    name: str,
    args: str,
    *,
    password: str | None = None,
    user: str | None = None,
    port: int = DATA_PORT,
    check: bool = True,
    tls: bool = TLS,
) -> str:
    """redis-cli on ``name`` against its own address (not loopback: what a peer sees), over TLS
    when the fleet is (``tls``: False tries plaintext).

    ``check``: fail unless redis-cli exits 0, and return its stdout; without it, return stdout and
    stderr together whatever the exit (a refused AUTH is reported on stderr, a command's NOAUTH or
    WRONGPASS on stdout).
    """
    who = f"--user {user} " if user else ""
    auth = {"REDISCLI_AUTH": password} if password else None
    # The address read in the same exec (the failover waits poll this every 0.2 s, and each docker
    # exec costs ~0.1 CPU-s of the shared cores: the CLI, dockerd, the shim).
    command = f'redis-cli --no-auth-warning -h "$({ADDRESS})" -p {port} {TLS_ARGS if tls else ""}{who}{args}'
    if check:
        return node(name).check(command, secret_env=auth).strip()
    result = node(name).run(command, secret_env=auth)
    return (result.stdout + result.stderr).strip()


def records(reply: str) -> list[dict[str, str]]:
    """The entries of a Sentinel reply that lists instances (SENTINEL REPLICAS / SENTINELS, as
    redis-cli prints them to a pipe: one field name, then its value, per line; ``name`` first)."""
    lines = reply.splitlines()
    entries: list[dict[str, str]] = []
    for key, value in zip(lines[::2], lines[1::2], strict=False):
        if key == "name" or not entries:
            entries.append({})
        entries[-1][key] = value
    return entries


def admin(name: str, args: str) -> str:
    return cli(name, args, user="admin", password=admin_password())


def sentinel(name: str, args: str) -> str:
    return cli(name, args, password=VARS["redis_sentinel_password"], port=SENTINEL_PORT)


# The Sentinels' next password, set by test_zn_sentinel_password's rotation (TEST ONLY); searched
# for in argv and the logs by test_zz_secrets like the inventory's.
NEXT_SENTINEL_PASSWORD = "test-only-next-sentinels-0123456789"  # TEST ONLY
# The replication user's next password, set by test_zo_replication_password's rotation (TEST ONLY).
NEXT_REPLICATION_PASSWORD = "test-only-next-replication-0123456789"  # TEST ONLY
# A password no user or Sentinel has (TEST ONLY): what every "wrong password is refused" check sends.
WRONG_PASSWORD = "test-only-wrong-password-0123"  # TEST ONLY
# Phase 1 of both rotations, deployed by one `site.yml --tags redis` run (test_zn): the Sentinels'
# new password current with the old one still accepted, and the replication user's new password
# accepted beside its current one (its step 1; test_zo checks that step, then swaps). Kept by every
# later run of those tests, else it would move the Sentinels' password back.
ROTATIONS_PHASE_ONE = {
    "redis_sentinel_password": NEXT_SENTINEL_PASSWORD,
    "redis_sentinel_previous_passwords": [VARS["redis_sentinel_password"]],
    "redis_replication_previous_passwords": [NEXT_REPLICATION_PASSWORD],
}


def admin_password() -> str:
    return next(u["password"] for u in VARS["redis_acl_users"] if u["name"] == "admin")


def master_by_sentinel(name: str) -> str:
    """``ip:port`` of the master as one Sentinel names it."""
    return ":".join(sentinel(name, f"SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER_NAME}").split())


def role(name: str) -> str:
    return re.search(r"^role:(\w+)", admin(name, "INFO replication"), re.M).group(1)


def master_node() -> str:
    """The data node whose server says role:master (there must be exactly one)."""
    masters = [n for n in DATA_NODES if role(n) == "master"]
    assert len(masters) == 1, f"masters: {masters}"
    return masters[0]


def server(name: str) -> tuple[str, str]:
    """(run_id, process_id) of a data node's server: both stay through a live change."""
    info = admin(name, "INFO server")
    return (
        re.search(r"^run_id:(\w+)", info, re.M).group(1),
        re.search(r"^process_id:(\d+)", info, re.M).group(1),
    )


@pytest.fixture(scope="session")
def servers_before_the_rotations() -> dict[str, tuple[str, str]]:
    """Every data node's server as the first password test found it (test_zn, before its runs)."""
    return {n: server(n) for n in DATA_NODES}


def converge(playbook: Path = SCENARIO_DIR / "converge.yml", *args: str) -> subprocess.CompletedProcess[str]:
    """The scenario's converge (site.yml), or another playbook, as an operator runs it; ``args``
    (``--tags``, ``-e @file``) follow the playbook. Secrets only in files, never in ``args``."""
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.cfg")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    return subprocess.run(
        [
            kept_playbook.command(str(PROJECT_DIR / ".venv" / "bin" / "ansible-playbook")),
            "-i",
            str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent),
            str(playbook),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
