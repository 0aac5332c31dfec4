"""Bad input fails the play with a message naming the variable, before the host changes."""

from __future__ import annotations

import concurrent.futures
import copy
import json
import re
import time

import pytest
from conftest import all_brokers, inventory_vars, run_playbook

# The valid base (TEST-ONLY passwords, like the scenario's); each case breaks one thing.
BASE = {
    "redis_password": "test-only-default-0123456789",
    "redis_acl_users": [
        {"name": "worker", "password": "test-only-worker-0123456789", "ruleset": "celery_worker"},
        {"name": "admin", "password": "test-only-admin-0123456789", "ruleset": "admin"},
    ],
}


def _without_password(v: dict) -> None:
    del v["redis_password"]


# Every rule is tested on the controller, message by message (tests/playbooks/test_validate.py runs
# playbooks/validate.yml over one bad input per rule). Here, one case per path through the role on a
# real host: a rule of lib/celery_fleet/redis_rules.py, the argument spec, the per-OS package check
# (needs the host's facts) and the key prefix; each must leave the host untouched.
CASES = {
    "missing password": (_without_password, ["redis_password"]),
    "eviction without override": (
        lambda v: v.update(redis_maxmemory_policy="allkeys-lru"),
        ["redis_maxmemory_policy", "silently drops queued", "redis_maxmemory_policy_override"],
    ),
    "unknown rule set": (
        lambda v: v["redis_acl_users"][0].update(ruleset="celery_wroker"),
        [
            "redis_acl_users",
            "ruleset",
            "celery_worker, celery_producer, celery_flower, redis_exporter, admin",
        ],
    ),
    "valkey on Debian 12": (
        lambda v: v.update(redis_server="valkey"),
        ["redis_server", "valkey", "Debian 12"],
    ),
    "key prefix with an ACL pattern": (
        lambda v: v.update(redis_acl_key_prefix="cf:*"),
        ["redis_acl_key_prefix", "'cf:*' is not allowed", '"" turns key scoping off'],
    ),
}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """The Debian 12 host, with a bare inventory so that no scenario variable fills a gap."""
    broker = next(b for b in all_brokers() if b.container.endswith("bookworm"))
    assert inventory_vars(broker.container).get("redis_server", "redis") == "redis"
    inventory = tmp_path_factory.mktemp("bad-input") / "hosts.ini"
    inventory.write_text(f"{broker.container} ansible_connection=community.docker.docker\n")
    return broker, str(inventory)


def fingerprint(broker) -> str:
    files = "/etc/redis/redis.conf /etc/redis/users.acl /etc/sysctl.d/60-redis.conf /etc/redis/tls/server.crt"
    sums = broker.sh(f"sha256sum {files}")
    assert sums.returncode == 0, sums.stderr
    return sums.stdout + f"pid={broker.main_pid()}"


@pytest.fixture(scope="module")
def bad_runs(target, tmp_path_factory) -> dict:
    broker, inventory = target
    before = fingerprint(broker)

    def run(name: str):
        variables = copy.deepcopy(BASE)
        CASES[name][0](variables)
        extra = tmp_path_factory.mktemp("vars") / "vars.json"
        extra.write_text(json.dumps(variables))
        start = time.monotonic()
        result = run_playbook("-e", f"@{extra}", inventory=inventory)
        return name, result, time.monotonic() - start

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        runs = {name: (result, seconds) for name, result, seconds in pool.map(run, CASES)}
    print(f"{len(CASES)} bad-input plays in {time.monotonic() - start:.1f} s")
    return {"runs": runs, "before": before, "after": fingerprint(broker)}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_naming_the_variable(bad_runs, case):
    result, seconds = bad_runs["runs"][case]
    output = " ".join((result.stdout + result.stderr).split())
    failure = output[output.find("fatal:") :][:600]
    print(f"{case}: rc={result.returncode} in {seconds:.1f} s: {failure[:300]}")
    assert result.returncode != 0
    for expected in CASES[case][1]:
        assert expected in output, f"{case}: {expected!r} not in {failure}"
    assert re.search(r"changed=0 ", output), output[-500:]
    # Failure output (argument spec errors included) shows no password.
    for password in [BASE["redis_password"], *(u["password"] for u in BASE["redis_acl_users"])]:
        assert password not in output
    # Validation comes before the first task that may change the host.
    assert "install | Install the server package" not in output


def test_bad_input_leaves_host_untouched(bad_runs):
    assert bad_runs["after"] == bad_runs["before"]
