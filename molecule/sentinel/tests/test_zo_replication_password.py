"""The replication password rotates with every data node running (issue 18).

roles/redis/README.md "Rotating a password without downtime", the replication user's runs, each
``site.yml --tags redis`` as an operator runs it:
1. the new password only in ``redis_replication_previous_passwords``: every data node accepts both,
   live (ACL SETUSER on Debian 12's Redis 7.0), no restart (deployed by test_zn's run, with the
   Sentinels' phase 1: conftest ROTATIONS_PHASE_ONE);
2. the swap (``redis_replication_password`` new, the old one previous): every data node takes the new
   ``masterauth`` with ``CONFIG SET`` and gets the file written, no restart (same ``run_id`` and
   pid), the run says so for each, and the checksum without masterauth recorded beside the file
   stays what it was (so the next run changes nothing).
Then the master drops its replicas' links (``CLIENT KILL TYPE replica``): every replica connects
again, authenticating with the new password (the only one it holds), and is back in sync, with no
denial in any ``ACL LOG``. (The third run, the list emptied, is a users.acl change like the
worker's, tested in the redis and monitoring scenarios.)

The swap keeps the Sentinels' phase-1 variables (else it would move their password back). The
variables go to ansible-playbook in a 0600 file, never argv. Runs after test_zn_sentinel_password
(file order), before test_zz_secrets, which searches argv and the logs for the new password too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import (
    DATA_NODES,
    NEXT_REPLICATION_PASSWORD,
    ROTATIONS_PHASE_ONE,
    VARS,
    WRONG_PASSWORD,
    admin,
    cli,
    converge,
    master_node,
    node,
    server,
    wait_until,
)

OLD = VARS["redis_replication_password"]
NEW = NEXT_REPLICATION_PASSWORD
USER = VARS.get("redis_replication_user", "replication")
SAID = "no restart: masterauth set live (CONFIG SET), redis.conf written"


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Callable[[dict], str]]:
    """Run ``site.yml --tags redis`` with these variables (from a 0600 file); return its output."""

    def run(values: dict) -> str:
        path = tmp_path / "replication-password.json"
        path.write_text(json.dumps({**ROTATIONS_PHASE_ONE, **values}))
        path.chmod(0o600)
        result = converge(
            Path(__file__).resolve().parents[1] / "converge.yml", "--tags", "redis", "-e", f"@{path}"
        )
        out = result.stdout + result.stderr
        assert result.returncode == 0, out[-3000:]
        assert OLD not in out and NEW not in out
        return result.stdout

    yield run


def accepts(name: str, password: str) -> bool:
    return cli(name, "PING", user=USER, password=password, check=False) == "PONG"


def denials(name: str) -> int:
    return len(re.findall(r"^reason$", admin(name, "ACL LOG"), re.M))


def recorded(name: str) -> tuple[str, str]:
    """The checksums the role recorded beside redis.conf: the file as declared, and without masterauth."""
    full, without = node(name).check("cat /etc/redis/redis.conf.declared-sha256").split()
    return full, without


def test_the_replication_password_rotates_without_a_restart(deploy, servers_before_the_rotations) -> None:
    # Step 1 was test_zn's run: both passwords accepted, no server restarted.
    servers = servers_before_the_rotations
    for n in DATA_NODES:
        assert accepts(n, NEW) and accepts(n, OLD), n
        assert not accepts(n, WRONG_PASSWORD), n
    assert {n: server(n) for n in DATA_NODES} == servers
    # From here on, no denial: the wrong password just tried is the last one logged.
    logged = {n: denials(n) for n in DATA_NODES}

    records = {n: recorded(n) for n in DATA_NODES}
    out = deploy({"redis_replication_password": NEW, "redis_replication_previous_passwords": [OLD]})

    assert out.count(SAID) == len(DATA_NODES), re.findall(r"restart: [^\"]*", out)
    assert {n: server(n) for n in DATA_NODES} == servers
    for n in DATA_NODES:
        # The running server's and the file's masterauth are the new password (compared here and on
        # the host, never printed).
        running = admin(n, "CONFIG GET masterauth").splitlines()[-1] == NEW
        assert running, f"{n}: CONFIG GET masterauth is not the new password"
        in_file = (
            node(n).check("grep -cxF -f - /etc/redis/redis.conf || true", stdin=f"masterauth {NEW}\n").strip()
        )
        assert in_file == "1", f"{n}: redis.conf holds masterauth with the new password {in_file} times"
        backups = node(n).check("ls /etc/redis | grep -c '^redis\\.conf\\..*~$' || true").strip()
        assert backups == "0", f"{n}: the copy of the previous redis.conf was left behind"
        # The record beside the file: the whole file's checksum moved on, the one without masterauth
        # did not. The next run compares with the first, so it changes nothing.
        (full, without), (new_full, new_without) = records[n], recorded(n)
        assert new_full != full and new_without == without, (n, records[n], recorded(n))

    # Every replica connects again with the new password.
    master = master_node()
    replicas = sorted(set(DATA_NODES) - {master})
    before = admin(master, "CLIENT LIST TYPE replica")
    ids = set(re.findall(r"\bid=(\d+)", before))
    assert len(ids) == len(replicas), before
    admin(master, "CLIENT KILL TYPE replica")

    def relinked() -> bool:
        listed = admin(master, "CLIENT LIST TYPE replica")
        new_ids = set(re.findall(r"\bid=(\d+)", listed))
        return (
            len(new_ids) == len(replicas)
            and not new_ids & ids
            and set(re.findall(r"\buser=(\S+)", listed)) == {USER}
            and all("master_link_status:up" in admin(r, "INFO replication") for r in replicas)
        )

    wait_until(relinked, timeout=60, what="every replica linked to the master again")
    assert {n: server(n) for n in DATA_NODES} == servers
    assert {n: denials(n) for n in DATA_NODES} == logged
