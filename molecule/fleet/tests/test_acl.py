"""After the whole run (deploy, tasks, results, chords, inspect, Flower, kills, restarts), the
least-privilege Redis users never hit a denial: they are sufficient, not merely present."""

from __future__ import annotations

import subprocess

from conftest import OPS, host, redis_admin, vault


def test_flower_pages_work_for_its_user() -> None:
    password = vault()["vault_flower_admin_password"]
    anonymous = (
        host(OPS).run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5555/api/workers").stdout
    )
    # The password goes through curl's config on stdin, not argv.
    authed = subprocess.run(
        [
            "docker",
            "exec",
            "-i",
            OPS,
            "curl",
            "-s",
            "-K",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:5555/api/workers?refresh=1",
        ],
        input=f'user = "admin:{password}"\n',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    print(f"\nFlower /api/workers: anonymous {anonymous}, admin {authed}")
    assert anonymous == "401"
    assert authed == "200"


def test_redis_acl_log_is_empty_after_the_whole_run() -> None:
    log = redis_admin("ACL LOG")
    entries = log.count("\nreason\n") + (1 if log.startswith("reason\n") else 0)
    print(f"\nRedis ACL LOG entries: {entries}")
    assert log.strip() == "", log[:2000]
