"""ACL changes reach the running server without a restart, and a password rotates in two phases
(issue 18, "Rotation without downtime"; roles/redis README "Rotating a password without downtime").

Re-runs of the role's converge with changed users (Redis 7.0, Redis 8.0, Valkey 8.1):
1. phase 1, three hosts: the worker and the admin get a new password, the old one kept in
   ``previous_passwords`` (the role's own admin password among them: it must authenticate with
   the old one);
2. phase 2, three hosts: the old passwords removed;
3. Redis 8.0 only: back to the inventory in one step: the admin's change cannot be live (the running
   server knows none of its passwords), so the server restarts, and the run says why;
4. Redis 7.0 and Valkey: a file the running server refuses (Valkey: ACL LOAD; Redis 7.0: ACL
   SETUSER): the run fails, the running users and the file stay as they were, no restart.
A client of the worker user stays connected through the whole rotation on every server; a bare
ACL LOAD drops it on Redis 7.0 only (why the role uses ACL SETUSER there).
The last file of the scenario (its name): the hosts keep the rotated passwords afterwards.
"""

from __future__ import annotations

import concurrent.futures
import json
import re

import pytest
from conftest import ADMIN, Broker, all_brokers, run_playbook
from scenario_inventory import inventory_vars

NEW_WORKER = "test-only-worker-rotated-0123456789"  # TEST ONLY
NEW_ADMIN = "test-only-admin-rotated-0123456789"  # TEST ONLY
CHANNEL = "rotation"


def users_with(broker: Broker, changes: dict[str, dict]) -> list[dict]:
    """The scenario's redis_acl_users with some users' fields replaced."""
    return [{**u, **changes.get(u["name"], {})} for u in inventory_vars(broker.container)["redis_acl_users"]]


def run_with(tmp_path, name: str, variables: dict, *args: str):
    """Run the converge with extra variables from a file (the passwords stay off the command line)."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(variables))
    result = run_playbook("-e", f"@{path}", *args)
    return result, " ".join((result.stdout + result.stderr).split())


def ping(broker: Broker, user: str, password: str) -> str:
    return broker.cli_run("PING", user=user, password=password)


def server_identity(broker: Broker, password: str) -> tuple[int, str]:
    """(main PID, run_id): both change when the server restarts."""
    info = broker.cli_run("INFO", "server", user=ADMIN, password=password)
    run_id = re.search(r"^run_id:(\w+)", info, re.M)
    assert run_id, info
    return broker.main_pid(), run_id.group(1)


def acl_log(broker: Broker, password: str) -> list[dict[str, str]]:
    """ACL LOG entries as {field: value} (redis-cli prints each field and value on its own line)."""
    lines = broker.cli_run("ACL", "LOG", user=ADMIN, password=password).splitlines()
    entries: list[dict[str, str]] = []
    for i, line in enumerate(lines[:-1]):
        if line == "count":
            entries.append({})
        if entries and line in ("count", "reason", "username", "object", "context"):
            entries[-1][line] = lines[i + 1]
    return entries


def subscriber_ids(broker: Broker, password: str) -> set[str]:
    clients = broker.cli_run("CLIENT", "LIST", "TYPE", "pubsub", user=ADMIN, password=password)
    return {m.group(1) for m in re.finditer(r"\bid=(\d+)\b.*\buser=worker\b", clients)}


def start_subscriber(broker: Broker, admin: str, worker: str) -> tuple[str, str]:
    """A worker client that stays connected (SUBSCRIBE): (its shell PID, its client id)."""
    channel = broker.key_prefix + CHANNEL
    before = subscriber_ids(broker, admin)
    started = broker.node.run(
        f"nohup {broker.cli} -h 127.0.0.1 -p 6379 --user worker SUBSCRIBE {channel} >/dev/null 2>&1 &"
        " echo $!",
        secret_env={"REDISCLI_AUTH": worker},
    )
    pid = started.stdout.strip()
    for _ in range(50):
        new = subscriber_ids(broker, admin) - before
        if new:
            return pid, new.pop()
    raise AssertionError(f"{broker.container}: the subscriber never connected ({started.stderr})")


@pytest.fixture(scope="module")
def rotation(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("rotation")
    brokers = all_brokers()
    state = {}
    for broker in brokers:
        broker.admin("ACL", "LOG", "RESET")
        state[broker.container] = {
            "before": server_identity(broker, broker.password(ADMIN)),
            "subscriber": start_subscriber(broker, broker.password(ADMIN), broker.password("worker")),
        }
    orig = {b.container: (b.password("worker"), b.password(ADMIN)) for b in brokers}
    # Every host has the same users; the group's list is the base of each phase.
    base = brokers[0]

    phase1 = {
        "redis_acl_users": users_with(
            base,
            {
                "worker": {"password": NEW_WORKER, "previous_passwords": [orig[base.container][0]]},
                ADMIN: {"password": NEW_ADMIN, "previous_passwords": [orig[base.container][1]]},
            },
        )
    }
    result1, out1 = run_with(tmp_path, "phase1", phase1)
    for broker in brokers:
        s = state[broker.container]
        s["after1"] = server_identity(broker, NEW_ADMIN)
        s["accepted1"] = {
            "worker new": ping(broker, "worker", NEW_WORKER),
            "worker old": ping(broker, "worker", orig[broker.container][0]),
            "admin new": ping(broker, ADMIN, NEW_ADMIN),
            "admin old": ping(broker, ADMIN, orig[broker.container][1]),
        }
        s["subscriber after1"] = s["subscriber"][1] in subscriber_ids(broker, NEW_ADMIN)

    phase2 = {
        "redis_acl_users": users_with(
            base, {"worker": {"password": NEW_WORKER}, ADMIN: {"password": NEW_ADMIN}}
        )
    }
    result2, out2 = run_with(tmp_path, "phase2", phase2)
    for broker in brokers:
        s = state[broker.container]
        s["after2"] = server_identity(broker, NEW_ADMIN)
        # Read before the refusals below, which log auth failures themselves.
        s["log"] = acl_log(broker, NEW_ADMIN)
        s["subscriber after2"] = s["subscriber"][1] in subscriber_ids(broker, NEW_ADMIN)
        s["accepted2"] = {
            "worker new": ping(broker, "worker", NEW_WORKER),
            "worker old": ping(broker, "worker", orig[broker.container][0]),
            "admin new": ping(broker, ADMIN, NEW_ADMIN),
            "admin old": ping(broker, ADMIN, orig[broker.container][1]),
        }

    for broker in brokers:
        broker.sh(f"kill {state[broker.container]['subscriber'][0]} 2>/dev/null; true")
    return brokers, state, (result1, out1), (result2, out2), phase2["redis_acl_users"]


def test_phase_one_adds_the_new_password_live_beside_the_old(rotation):
    brokers, state, (result, output), *_ = rotation
    assert result.returncode == 0, output[-2000:]
    assert "no restart: only users.acl changed, loaded live" in output
    for broker in brokers:
        s = state[broker.container]
        print(f"{broker.container}: phase 1 {s['accepted1']}, server {s['before']} -> {s['after1']}")
        assert s["after1"] == s["before"], "the server restarted"
        assert set(s["accepted1"].values()) == {"PONG"}, s["accepted1"]


def test_phase_two_removes_the_old_password_live(rotation):
    brokers, state, _, (result, output), _ = rotation
    assert result.returncode == 0, output[-2000:]
    for broker in brokers:
        s = state[broker.container]
        print(f"{broker.container}: phase 2 {s['accepted2']}, server {s['after2']}")
        assert s["after2"] == s["before"], "the server restarted"
        assert s["accepted2"]["worker new"] == s["accepted2"]["admin new"] == "PONG"
        assert "WRONGPASS" in s["accepted2"]["worker old"], s["accepted2"]
        assert "WRONGPASS" in s["accepted2"]["admin old"], s["accepted2"]


def test_the_rotation_left_the_acl_log_clean(rotation):
    """Only the role's own try of the admin's new password against the old users (phase 1) may be
    there: no command, key or channel was refused, and no client failed to authenticate."""
    brokers, state, *_ = rotation
    for broker in brokers:
        log = state[broker.container]["log"]
        print(f"{broker.container}: ACL LOG after the rotation: {log}")
        assert [e for e in log if (e.get("reason"), e.get("username")) != ("auth", ADMIN)] == [], log
        assert sum(int(e.get("count", "0")) for e in log) <= 1, log


def test_a_connected_client_stays_through_the_rotation(rotation):
    brokers, state, *_ = rotation
    for broker in brokers:
        s = state[broker.container]
        print(
            f"{broker.container}: worker subscriber connected after phase 1: {s['subscriber after1']}, "
            f"after phase 2: {s['subscriber after2']}"
        )
        assert s["subscriber after1"] and s["subscriber after2"]


def test_a_bare_acl_load_drops_acl_clients_on_redis_7_0_only(rotation):
    """Redis 7.0 frees every user at ACL LOAD and makes them anew; 7.2+ and Valkey keep the
    connections of users that still exist (redis/redis#12171)."""
    for broker in rotation[0]:
        pid, client = start_subscriber(broker, NEW_ADMIN, NEW_WORKER)
        reply = broker.cli_run("ACL", "LOAD", user=ADMIN, password=NEW_ADMIN)
        kept = client in subscriber_ids(broker, NEW_ADMIN)
        broker.sh(f"kill {pid} 2>/dev/null; true")
        print(f"{broker.container}: ACL LOAD -> {reply!r}; subscriber kept: {kept}")
        assert reply == "OK"
        assert kept is not broker.container.endswith("bookworm")


@pytest.fixture(scope="module")
def last_runs(rotation, tmp_path_factory):
    """The two runs that end the scenario, at once: their hosts are disjoint (one_step: Redis 8.0;
    refused_load: Valkey and Redis 7.0) and each test reads only its own hosts, so overlapping them
    proves the same as running them one after the other, in the time of the longer (they took 51 s
    and 70 s one after the other on 2 busy cores)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        one = pool.submit(run_one_step, rotation, tmp_path_factory.mktemp("one-step"))
        refused = pool.submit(run_refused_load, rotation, tmp_path_factory.mktemp("refused"))
        return one.result(), refused.result()


def run_one_step(rotation, tmp_path):
    """Redis 8.0 back to the inventory: the worker's password changes live, the admin's cannot."""
    broker = next(b for b in rotation[0] if b.container == "redis-trixie")
    before = server_identity(broker, NEW_ADMIN)
    result, output = run_with(
        tmp_path,
        "one-step",
        {"redis_acl_users": inventory_vars(broker.container)["redis_acl_users"]},
        "-l",
        broker.container,
    )
    after = server_identity(broker, broker.password(ADMIN))
    accepted = {
        "worker new": ping(broker, "worker", NEW_WORKER),
        "worker inventory": ping(broker, "worker", broker.password("worker")),
    }
    return broker, result, output, before, after, accepted


@pytest.fixture(scope="module")
def one_step(last_runs):
    return last_runs[0]


def test_an_admin_password_changed_in_one_step_restarts_and_says_why(one_step):
    broker, result, output, before, after, accepted = one_step
    print(f"{broker.container}: back to the inventory {accepted}, server {before} -> {after}")
    assert result.returncode == 0, output[-2000:]
    assert "so ACL LOAD cannot authenticate: the server restarts to read the new users" in output
    assert after[1] != before[1], "no restart"
    assert accepted["worker inventory"] == "PONG"
    assert "WRONGPASS" in accepted["worker new"]


def run_refused_load(rotation, tmp_path):
    """A file the running server refuses (ACL LOAD on Valkey, ACL SETUSER on Redis 7.0). The role's
    own check (the server binary parses the candidate) refuses it before it is written, so it is
    turned off here, as it would be blind to the case it stands for: a package upgraded on disk
    whose running server is still older."""
    brokers = [b for b in rotation[0] if b.server == "valkey" or b.container.endswith("bookworm")]

    def state(broker: Broker) -> tuple:
        return (
            broker.sh(f"sha256sum {broker.config_dir}/users.acl").stdout,
            broker.cli_run("ACL", "LIST", user=ADMIN, password=NEW_ADMIN),
            server_identity(broker, NEW_ADMIN),
        )

    before = {b.container: state(b) for b in brokers}
    # "worker" changes too, before "broken" in the file: on 7.0 it is set before the refusal.
    users = [{**u, "previous_passwords": [NEW_ADMIN]} if u["name"] == "worker" else u for u in rotation[4]]
    users.append({"name": "broken", "password": NEW_WORKER, "rules": "+nosuchcommand"})
    result, output = run_with(
        tmp_path,
        "refused",
        {"redis_acl_users": users, "__redis_check_acl": "/bin/true %s"},
        "-l",
        ",".join(b.container for b in brokers),
    )
    after = {b.container: state(b) for b in brokers}
    leftovers = {
        b.container: [n for n in b.sh(f"ls {b.config_dir}").stdout.split() if "~" in n] for b in brokers
    }
    return result, output, before, after, leftovers


@pytest.fixture(scope="module")
def refused_load(last_runs):
    return last_runs[1]


def test_a_file_the_server_refuses_fails_the_run_and_changes_nothing(refused_load):
    result, output, before, after, leftovers = refused_load
    assert result.returncode != 0
    assert after == before  # same file, same running users, same server process
    assert all(names == [] for names in leftovers.values()), leftovers
    for method, server in (("ACL LOAD", "valkey"), ("ACL SETUSER", "redis")):
        said = (
            f"{method}: the running {server}-server refused the new /etc/{server}/users.acl "
            "and keeps the users it had"
        )
        start = output.find(said)
        print(f"refused: {output[start : start + 400]}")
        assert start != -1, output[-3000:]
