"""The Sentinels' own password changes without a window where anything is refused (issue 18).

After the failovers (the master is no longer the initial one):
- the new password set in one step stops the run before any change, naming the field: every
  Sentinel refuses it, and taking that for "no Sentinel runs yet" would have put the initial master
  back in charge (lib/celery_fleet/sentinel.py);
- phase 1 of the rotation (the new password current, the old one in
  redis_sentinel_previous_passwords), deployed with ``--tags redis``: every Sentinel accepts both,
  the Sentinels still log into each other (with the old one) and reach their quorum, the master
  stays where it is, and the workers, still on the old password, keep answering. The same run is
  step 1 of the replication user's rotation (conftest ROTATIONS_PHASE_ONE), which
  test_zo_replication_password checks and takes on from: one ``--tags redis`` run less (65 s).
Phase 2 (the list emptied) renders what every other run of the scenario renders, with the new
password. The extra variables go to ansible-playbook in a 0600 file (`-e @file`), never argv.
Runs after test_zm_monitoring (file order), before test_zz_secrets, which also looks for the new
password in argv and the logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery_fleet.recap import changed_per_host  # lib/ is on sys.path through fleetnode
from conftest import (
    DATA_NODES,
    MASTER_NAME,
    NEXT_REPLICATION_PASSWORD,
    NEXT_SENTINEL_PASSWORD,
    ROTATIONS_PHASE_ONE,
    SENTINEL_PORT,
    SENTINELS,
    VARS,
    WRONG_PASSWORD,
    cli,
    converge,
    master_by_sentinel,
    records,
    wait_until,
)
from fleetnode import Node

OLD = VARS["redis_sentinel_password"]
CLIENT = "sentinel-client"


@pytest.fixture
def extra_vars(tmp_path: Path) -> Iterator[Callable[[dict], str]]:
    def write(values: dict) -> str:
        path = tmp_path / "sentinel-password.json"
        path.write_text(json.dumps(values))
        path.chmod(0o600)
        return f"@{path}"

    yield write


def sentinel_says(sentinel: str, password: str, command: str = "PING") -> str:
    """What a Sentinel answers ``command`` with ``password``, refusals included."""
    return cli(sentinel, command, password=password, port=SENTINEL_PORT, check=False)


def test_a_sentinel_password_changed_in_one_step_stops_the_run_before_any_change(
    extra_vars, servers_before_the_rotations
) -> None:
    masters = {master_by_sentinel(s) for s in SENTINELS}

    result = converge(
        Path(__file__).resolve().parents[1] / "converge.yml",
        "--tags",
        "redis",
        "-e",
        extra_vars({"redis_sentinel_password": NEXT_SENTINEL_PASSWORD}),
    )

    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "field 'redis_sentinel_password'" in out, out[-3000:]
    assert "refuse it" in out and "redis_sentinel_previous_passwords" in out, out[-3000:]
    assert NEXT_SENTINEL_PASSWORD not in out and OLD not in out
    changed = changed_per_host(result.stdout)
    assert changed and not any(changed.values()), changed
    assert {master_by_sentinel(s) for s in SENTINELS} == masters
    for s in SENTINELS:
        assert sentinel_says(s, OLD) == "PONG", s
        assert "WRONGPASS" in sentinel_says(s, NEXT_SENTINEL_PASSWORD), s


def test_phase_one_of_a_rotation_accepts_both_passwords_and_keeps_the_fleet(extra_vars) -> None:
    masters = {master_by_sentinel(s) for s in SENTINELS}
    assert len(masters) == 1

    result = converge(
        Path(__file__).resolve().parents[1] / "converge.yml",
        "--tags",
        "redis",
        "-e",
        extra_vars(ROTATIONS_PHASE_ONE),
    )

    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert NEXT_SENTINEL_PASSWORD not in out and OLD not in out and NEXT_REPLICATION_PASSWORD not in out
    changed = changed_per_host(result.stdout)
    assert all(changed[n] > 0 for n in DATA_NODES), changed  # each Sentinel got the new file
    for s in SENTINELS:
        assert sentinel_says(s, NEXT_SENTINEL_PASSWORD) == "PONG", s
        assert sentinel_says(s, OLD) == "PONG", s
        assert "WRONGPASS" in sentinel_says(s, WRONG_PASSWORD), s
        named = sentinel_says(s, NEXT_SENTINEL_PASSWORD, f"SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER_NAME}")
        assert ":".join(named.split()) in masters, (s, named)

    # The Sentinels log into each other with the old password (sentinel-pass) while the new one is
    # current: each one knows the other two, none flagged down or disconnected, each answered a
    # ping (they come every second) within the last 2 s, and the quorum is reached.
    def peers_up(s: str) -> bool:
        peers = records(sentinel_says(s, NEXT_SENTINEL_PASSWORD, f"SENTINEL SENTINELS {MASTER_NAME}"))
        return len(peers) == len(SENTINELS) - 1 and all(
            "down" not in p.get("flags", "down")
            and "disconnected" not in p["flags"]
            and int(p.get("last-ok-ping-reply", 10**9)) < 2000
            for p in peers
        )

    for s in SENTINELS:
        wait_until(lambda s=s: peers_up(s), timeout=30, what=f"{s} sees the other Sentinels up")
        quorum = sentinel_says(s, NEXT_SENTINEL_PASSWORD, f"SENTINEL CKQUORUM {MASTER_NAME}")
        assert quorum.startswith("OK"), (s, quorum)

    # The workers still hold the old password (their play did not run): they answer all the same.
    c = Node(CLIENT, app="celerydemo")
    nodes = {f"worker-{w}@{c.hostname()}" for w in ("main", "assets")}
    assert set(c.inspect("ping", nodes)) >= nodes
