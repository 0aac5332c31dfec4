"""The worker password rotates across the two worker hosts' batched rollout under load (issue 18).

README "Rotating a broker password", as an operator runs it, while a producer streams tasks:
1. ``site.yml --tags redis,workers`` with the new password current and the old one in the worker
   user's ``previous_passwords`` on the broker, and the new one in the worker hosts'
   ``celery_broker_password``: Redis takes both live, then the two worker hosts restart one batch
   after the other (``celery_fleet_serial`` 1), each checked through Celery;
2. ``site.yml --tags redis`` with ``previous_passwords`` emptied: the old password is refused.
Then: every task sent ran, no service on any host logged a refused password, the ACL LOG is empty,
redis-server never restarted, and each worker's warm stop in the rollout was no slower than an
ordinary ``systemctl restart`` of the same workers afterwards (the incident behind issue 18: workers
holding a refused password kept reconnecting, and their stop waited out the 600 s stop timeout).

Runs last (conftest.MODULE_ORDER): the fleet keeps the new password. The variables reach
ansible-playbook in a 0600 inventory file of host variables, never argv.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    GROUP_VARS,
    OPS,
    REDIS,
    WORKER_HOSTS,
    WORKERS,
    ansible_playbook,
    executions,
    node,
    probe,
    redis_admin,
    service,
    streaming,
    unit_timestamps,
    vault,
)
from fleetnode import PASSWORD_REFUSED  # molecule/resources, on sys.path through conftest

NEW = "test-only-worker-rotated-fleet-0123456789"  # TEST ONLY


def override(directory: Path, previous: list[str]) -> Path:
    """Host variables: the broker's users with the worker's new password (and ``previous``), the
    worker hosts' new client password."""
    users = yaml.safe_load((GROUP_VARS / "redis" / "redis.yml").read_text())["redis_acl_users"]
    users = [
        dict(u, password=NEW, previous_passwords=previous) if u["name"] == "worker" else u for u in users
    ]
    hosts: dict[str, Any] = {REDIS: {"redis_acl_users": users}}
    hosts.update({name: {"celery_broker_password": NEW} for name in WORKER_HOSTS})
    path = directory / f"rotation-{len(previous)}.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    path.chmod(0o600)
    return path


def refused_lines(since: float) -> dict[str, int]:
    """Host -> lines of its journal since ``since`` saying a password was refused."""
    return {name: node(name).journal_count(PASSWORD_REFUSED, since) for name in (REDIS, OPS, *WORKER_HOSTS)}


def worker_says(password: str) -> str:
    return (
        node(REDIS)
        .run("redis-cli --user worker --no-auth-warning PING 2>&1", secret_env={"REDISCLI_AUTH": password})
        .stdout
    )


@pytest.fixture(scope="module")
def rotation() -> dict[str, Any]:
    old = vault()["vault_redis_worker_password"]
    redis_admin("ACL LOG RESET")
    redis_pid = node(REDIS).main_pid("redis-server")
    before = unit_timestamps()
    since = time.time()
    with streaming("rotation") as producer, tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        phase1 = ansible_playbook(
            "site.yml", "-i", str(override(Path(tmp), [old])), "--tags", "redis,workers"
        )
        seconds1 = time.monotonic() - started
        during = unit_timestamps()
        phase2 = ansible_playbook("site.yml", "-i", str(override(Path(tmp), [])), "--tags", "redis")
    assert phase1.returncode == 0, phase1.stdout[-3000:]
    assert phase2.returncode == 0, phase2.stdout[-3000:]

    sent = producer["sent"]
    collected = probe("collect /tmp/rotation-ids.json --timeout 180")
    ran = executions(since)
    ids = [entry["id"] for entry in sent]
    # An ordinary restart of the same workers, for comparison: systemctl itself, host by host.
    for name, workers in WORKERS.items():
        node(name).check(f"systemctl restart {' '.join(service(w) for w in workers)}")
    ordinary = unit_timestamps()
    report = {
        "outputs": (phase1.stdout + phase1.stderr, phase2.stdout + phase2.stderr),
        "ids": ids,
        "lost": [i for i in ids if ran.get(i, 0) == 0],
        "collected": collected,
        "refused": refused_lines(since),
        "acl_log": redis_admin("ACL LOG"),
        "redis_pids": (redis_pid, node(REDIS).main_pid("redis-server")),
        "before": before,
        "during": during,
        "stops": {k: (during[k].stop_seconds, ordinary[k].stop_seconds) for k in during},
        "old": worker_says(old),
        "new": worker_says(NEW),
        "old_password": old,
    }
    print(
        f"\nworker password rotation across the two worker hosts: "
        f"phase 1 (--tags redis,workers) {seconds1:.0f} s; "
        f"producer {producer.get('report')}; sent {len(ids)}, lost {len(report['lost'])}, "
        f"results {collected['states']}; refused-password lines {report['refused']}; "
        f"warm stops in the rollout / in an ordinary restart (s): "
        f"{ {f'{w}@{h}': (round(a, 2), round(b, 2)) for (h, w), (a, b) in report['stops'].items()} }"
    )
    return report


def test_both_phases_loaded_the_users_live_and_no_secret_was_printed(rotation) -> None:
    for out in rotation["outputs"]:
        assert "no restart: only users.acl changed, loaded live" in out
        assert NEW not in out and rotation["old_password"] not in out
    before, after = rotation["redis_pids"]
    assert before == after != 0


def test_every_task_sent_during_the_rotation_ran(rotation) -> None:
    assert len(rotation["ids"]) >= 500
    assert rotation["lost"] == [], f"{len(rotation['lost'])} never ran: {rotation['lost'][:20]}"
    assert rotation["collected"]["not_success"] == [], rotation["collected"]


def test_no_service_was_refused_its_password(rotation) -> None:
    assert rotation["refused"] == dict.fromkeys((REDIS, OPS, *WORKER_HOSTS), 0)
    assert rotation["acl_log"].strip() == "", rotation["acl_log"][:2000]


def test_every_worker_restarted_in_two_batches_and_stopped_as_fast_as_an_ordinary_restart(rotation) -> None:
    during, before = rotation["during"], rotation["before"]
    assert all(during[k].active_since != before[k].active_since for k in during)
    # celery_fleet_serial 1: each host's last worker back before the other host's first one stopped.
    spans = sorted(
        (
            min(during[(h, w["name"])].stop_began for w in WORKERS[h]),
            max(during[(h, w["name"])].active_since for w in WORKERS[h]),
            h,
        )
        for h in WORKER_HOSTS
    )
    (_, first_back, first), (second_stop, _, second) = spans
    assert first_back < second_stop, (first, second)
    for (host, worker), (in_rollout, ordinary) in rotation["stops"].items():
        stamp = during[(host, worker)]
        assert in_rollout <= 2 * ordinary + 5, (
            f"{worker}@{host} stopped in {in_rollout} s in the rollout, {ordinary} s in an ordinary "
            f"restart (all: {rotation['stops']}); its journal from 30 s before that stop to its end: "
            + node(host).stop_journal(
                service(next(w for w in WORKERS[host] if w["name"] == worker)),
                stamp.stop_began,
                stamp.stop_ended,
            )[-8000:]
        )


def test_the_old_password_is_refused_at_the_end(rotation) -> None:
    assert "WRONGPASS" in rotation["old"], rotation["old"]
    assert rotation["new"].strip() == "PONG", rotation["new"]
    assert not re.search(PASSWORD_REFUSED, rotation["new"])
