"""After the whole run (deploy, tasks, results, chords, inspect, Flower, kills, restarts), the
least-privilege Redis users never hit a denial: they are sufficient, not merely present."""

from __future__ import annotations

from conftest import OPS, node, redis_admin, vault


def test_flower_pages_work_for_its_user() -> None:
    password = vault()["vault_flower_admin_password"]
    curl = "curl -s -o /dev/null -w '%{http_code}'"
    anonymous = node(OPS).run(f"{curl} http://127.0.0.1:5555/api/workers").stdout
    # The password goes through curl's config on stdin, not argv.
    authed = (
        node(OPS)
        .run(
            f"{curl} -K - 'http://127.0.0.1:5555/api/workers?refresh=1'", stdin=f'user = "admin:{password}"\n'
        )
        .stdout
    )
    print(f"\nFlower /api/workers: anonymous {anonymous}, admin {authed}")
    assert anonymous == "401"
    assert authed == "200"


def test_redis_acl_log_is_empty_after_the_whole_run() -> None:
    log = redis_admin("ACL LOG")
    entries = log.count("\nreason\n") + (1 if log.startswith("reason\n") else 0)
    print(f"\nRedis ACL LOG entries: {entries}")
    assert log.strip() == "", log[:2000]
