"""After the deploy, the app's workload, beat, Flower and inspect, the least-privilege Redis users
never hit a denial with the default key settings."""

from __future__ import annotations

from conftest import redis_admin


def test_redis_acl_log_is_empty() -> None:
    log = redis_admin("ACL", "LOG")
    entries = log.count("\nreason\n") + (1 if log.startswith("reason\n") else 0)
    print(f"\nRedis ACL LOG entries: {entries}")
    assert log.strip() == "", log[:2000]


def test_the_admin_check_itself_authenticates() -> None:
    # The control of the test above: an empty LOG must come from an authenticated admin.
    assert redis_admin("ACL", "WHOAMI").strip() == "admin"
