"""The worker password rotates under load without a Redis restart and without a refused client
(issue 18, roles/redis README "Rotating a password without downtime").

A producer on the ops host streams ping tasks to both queues (at least 500) while phase 1 runs
(`site.yml --tags redis,workers`: the broker gets the new password beside the old one through ACL
LOAD, then the worker host's rollout moves its workers to the new one); phase 2 (`site.yml --tags
redis`) removes the old password. Then: every task succeeded, no service logged WRONGPASS, the
ACL LOG is empty, redis-server never restarted, and the old password is refused.

Runs last in this scenario (file name): the worker's password stays the new one afterwards.
Redis here is Debian 12's 7.0, where the role changes the users with ACL SETUSER (ACL LOAD would drop
every ACL user's connection): the workers' reconnections are counted and printed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import kept_playbook
import pytest
import yaml
from conftest import (
    OPS,
    REDIS,
    REDIS_SOCKET,
    WORKER,
    node,
    redis_cli,
    scenario_vars,
    service,
    wait_until,
    workers,
)
from fleetnode import (  # molecule/resources, on sys.path through conftest
    PASSWORD_REFUSED,
    RETRIED_RECORD,
    UnitStamps,
)

PROJECT = Path(__file__).resolve().parents[3]
NEW = "test-only-worker-rotated-0123456789"  # TEST ONLY
STREAM = "/tmp/cf-rotation-stream.py"
STREAM_SCRIPT = """\
import json, pathlib, sys, time
import celery_fleet_app  # noqa: F401  (the fleet's settings: TLS, key prefix)
from celery_demo.tasks import PING_TASKS

out, stop, minimum, rate = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
queues = ["high_priority", "low_priority"]
sent, errors, started = [], [], time.monotonic()
while len(sent) < minimum or not stop.exists():
    queue = queues[len(sent) % 2]
    try:
        sent.append(PING_TASKS[queue].apply_async(queue=queue).id)
    except Exception as exc:
        errors.append(type(exc).__name__)
    if len(sent) == 1:
        pathlib.Path(out + ".started").touch()
    time.sleep(max(0.0, started + len(sent) / rate - time.monotonic()))
    if time.monotonic() - started > 600:
        break
pathlib.Path(out).write_text(json.dumps({"ids": sent, "errors": errors}))
"""
COLLECT_SCRIPT = """\
import json, sys, time
from celery_fleet_app import app

ids = json.load(open(sys.argv[1]))["ids"]
deadline, states = time.monotonic() + 180, {}
for task_id in ids:
    result = app.AsyncResult(task_id)
    while result.state != "SUCCESS" and time.monotonic() < deadline:
        time.sleep(0.2)
    states[result.state] = states.get(result.state, 0) + 1
print(json.dumps({"states": states}))
"""


def playbook(
    override: dict[str, Any], tags: str, directory: Path
) -> tuple[subprocess.CompletedProcess, float]:
    """site.yml as an operator runs it, with host variables of an extra inventory source (they
    outrank the scenario's group_vars)."""
    path = directory / f"override-{tags.replace(',', '-')}.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": override}}))
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.cfg")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    started = time.monotonic()
    result = subprocess.run(
        [
            kept_playbook.command(str(PROJECT / ".venv" / "bin" / "ansible-playbook")),
            "-i",
            str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent),
            "-i",
            str(path),
            "--tags",
            tags,
            str(PROJECT / "site.yml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return result, time.monotonic() - started


def worker_users(password: str, previous: list[str]) -> list[dict[str, Any]]:
    users = []
    for user in scenario_vars()["redis_acl_users"]:
        if user["name"] == "worker":
            user = {**user, "password": password, "previous_passwords": previous}
        users.append(user)
    return users


def refused_words(since: float) -> dict[str, int]:
    """Host -> lines of its journal since ``since`` saying a password was refused."""
    return {name: node(name).journal_count(PASSWORD_REFUSED, since) for name in (REDIS, WORKER, OPS)}


def last_stops() -> dict[str, UnitStamps]:
    """Worker service -> its unit's last stop and start (``Node.unit_stamps``)."""
    return {service(w): node(WORKER).unit_stamps(service(w)) for w in workers()}


def took(stops: dict[str, UnitStamps]) -> dict[str, float]:
    return {name: round(stamps.stop_seconds, 2) for name, stamps in stops.items()}


@pytest.fixture(scope="module")
def rotation(tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("rotation")
    ops, broker = node(OPS), node(REDIS)
    old = next(u["password"] for u in scenario_vars()["redis_acl_users"] if u["name"] == "worker")
    redis_cli("ACL LOG RESET")
    redis_pid = broker.main_pid("redis-server")
    since = time.time()
    ops.check(
        f"rm -f /tmp/cf-stream.json* /tmp/cf-stream.stop && cat > {STREAM} && chmod 0644 {STREAM}",
        stdin=STREAM_SCRIPT,
    )
    ops.check(
        "nohup bash -c "
        + shlex.quote(ops.python(f"{STREAM} /tmp/cf-stream.json /tmp/cf-stream.stop 500 20"))
        + " </dev/null >/tmp/cf-stream.log 2>&1 &"
    )
    wait_until(
        lambda: ops.exists("/tmp/cf-stream.json.started") or None,
        timeout=60,
        what="the producer's first task",
    )

    phase1, seconds1 = playbook(
        {REDIS: {"redis_acl_users": worker_users(NEW, [old])}, WORKER: {"celery_broker_password": NEW}},
        "redis,workers",
        tmp,
    )
    pid1 = broker.main_pid("redis-server")
    rotation_stops = last_stops()
    phase2, seconds2 = playbook(
        {REDIS: {"redis_acl_users": worker_users(NEW, [])}, WORKER: {"celery_broker_password": NEW}},
        "redis",
        tmp,
    )
    ops.check("touch /tmp/cf-stream.stop")
    wait_until(lambda: ops.exists("/tmp/cf-stream.json") or None, timeout=60, what="the producer's end")
    sent = json.loads(ops.read("/tmp/cf-stream.json"))
    ops.check(
        "cat > /tmp/cf-rotation-collect.py && chmod 0644 /tmp/cf-rotation-collect.py", stdin=COLLECT_SCRIPT
    )
    collected = json.loads(
        ops.check(ops.python("/tmp/cf-rotation-collect.py /tmp/cf-stream.json")).splitlines()[-1]
    )
    worker_log = node(WORKER).run(f"journalctl --since @{int(since)} --no-pager").stdout
    report = {
        "phase1": phase1,
        "phase2": phase2,
        "seconds": (seconds1, seconds2),
        "sent": sent,
        "collected": collected,
        "refused": refused_words(since),
        "acl_log": redis_cli("ACL LOG"),
        "pids": (redis_pid, pid1, broker.main_pid("redis-server")),
        "reconnections": len(re.findall(r"Connection to broker lost", worker_log)),
        # The entry module's retries of a delivery's unacked record (deliveries_survive_a_failover).
        "retried": [line for line in worker_log.splitlines() if RETRIED_RECORD in line],
        "old": broker.run(
            f"redis-cli -s {REDIS_SOCKET} --user worker --no-auth-warning PING 2>&1",
            secret_env={"REDISCLI_AUTH": old},
        ).stdout,
        "new": broker.run(
            f"redis-cli -s {REDIS_SOCKET} --user worker --no-auth-warning PING 2>&1",
            secret_env={"REDISCLI_AUTH": NEW},
        ).stdout,
    }
    # An ordinary restart of the same workers, for comparison (outside Ansible: systemctl itself).
    node(WORKER).check(f"systemctl restart {' '.join(service(w) for w in workers())}")
    report["stamps"] = rotation_stops
    report["stops"] = (took(rotation_stops), took(last_stops()))
    print(
        f"\nrotation under load: phase 1 (site.yml --tags redis,workers) {seconds1:.0f} s, "
        f"phase 2 (--tags redis) {seconds2:.0f} s; sent {len(sent['ids'])}, publish errors {sent['errors']}, "
        f"results {collected['states']}; refused-password lines {report['refused']}; "
        f"worker reconnections {report['reconnections']}; unacked records retried {len(report['retried'])} "
        f"{report['retried'][:3]}; redis-server PIDs {report['pids']}; "
        f"warm stops of the workers (s): in phase 1 {report['stops'][0]}, "
        f"in an ordinary restart {report['stops'][1]}"
    )
    return report


def test_both_phases_ran(rotation) -> None:
    for phase in ("phase1", "phase2"):
        result = rotation[phase]
        assert result.returncode == 0, result.stdout[-3000:]
        assert "no restart: only users.acl changed, loaded live" in result.stdout


def test_redis_never_restarted(rotation) -> None:
    before, after1, after2 = rotation["pids"]
    assert before == after1 == after2 != 0


def test_every_task_sent_during_the_rotation_ran(rotation) -> None:
    assert len(rotation["sent"]["ids"]) >= 500
    assert rotation["sent"]["errors"] == []
    assert rotation["collected"]["states"] == {"SUCCESS": len(rotation["sent"]["ids"])}


def test_no_service_was_refused_its_password(rotation) -> None:
    assert rotation["refused"] == dict.fromkeys((REDIS, WORKER, OPS), 0)
    assert rotation["acl_log"].strip() == "", rotation["acl_log"]


def test_the_rollout_stops_the_workers_as_fast_as_an_ordinary_restart(rotation) -> None:
    # The incident behind issue 18: workers left with a refused password kept reconnecting, and their
    # warm stop waited out the whole stop timeout (600 s) in the rollout. Each worker's last stop
    # (systemd: from leaving active to inactive) in phase 1 against an ordinary systemctl restart
    # of the same idle workers afterwards.
    during, ordinary = rotation["stops"]
    assert set(during) == {service(w) for w in workers()}
    for name, seconds in during.items():
        stamps = rotation["stamps"][name]
        assert seconds <= 2 * ordinary[name] + 5, (
            f"{name} stopped in {seconds} s in the rollout, {ordinary[name]} s in an ordinary restart "
            f"(all: {during} / {ordinary}); records retried {rotation['retried'][:6]}; its journal from "
            f"30 s before that stop to its end: "
            f"{node(WORKER).stop_journal(name, stamps.stop_began, stamps.stop_ended)[-8000:]}"
        )


def test_the_old_password_is_refused_at_the_end(rotation) -> None:
    assert "WRONGPASS" in rotation["old"], rotation["old"]
    assert rotation["new"].strip() == "PONG", rotation["new"]
