"""A redis_dir change that would start the broker on an empty directory is refused before any change.

The Debian 12 host runs with redis_dir /srv/redis-data and holds keys. A run that moves redis_dir
elsewhere, with the data left where it is, must stop before the host changes, naming the field,
both directories and what to do; the server keeps running with its data. The override
(redis_dir_start_empty: true) is accepted, shown here in check mode, which changes nothing.
"""

from __future__ import annotations

import json

import pytest
from conftest import all_brokers, run_playbook

MOVED = "/srv/redis-moved"
KEY = "cf:test:data-dir"


def _fingerprint(broker) -> tuple[str, int, str, bool]:
    files = broker.sh(f"sha256sum {broker.config_dir}/redis.conf {broker.config_dir}/users.acl").stdout
    return files, broker.main_pid(), broker.admin("DBSIZE"), broker.sh(f"test -e {MOVED}").returncode == 0


@pytest.fixture(scope="module")
def bookworm():
    broker = next(b for b in all_brokers() if b.container.endswith("bookworm"))
    assert broker.data_dir == "/srv/redis-data", broker.data_dir
    assert broker.admin("SET", KEY, "kept") == "OK"
    return broker


@pytest.fixture(scope="module")
def refused(bookworm):
    before = _fingerprint(bookworm)
    result = run_playbook("-l", bookworm.container, "-e", json.dumps({"redis_dir": MOVED}))
    return result, before, _fingerprint(bookworm)


def test_a_moved_redis_dir_with_the_data_left_behind_is_refused_naming_both_directories(refused):
    result, *_ = refused
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output[-1500:]
    for part in ("field 'redis_dir'", "/srv/redis-data", MOVED, "key(s)", "Nothing was changed", "cp -a"):
        assert part in output, (part, output[-2000:])
    assert "redis_dir_start_empty: true" in output
    # Before any change: the failure is the data directory check, not a later task.
    assert "Refuse a redis_dir that would start the server without its data" in output


def test_the_refused_run_leaves_the_broker_running_with_its_data(bookworm, refused):
    _, before, after = refused
    assert after == before
    assert before[3] is False  # the new directory was not created
    assert bookworm.admin("GET", KEY) == "kept"


def test_the_override_is_accepted(bookworm):
    before = _fingerprint(bookworm)
    result = run_playbook(
        "-l",
        bookworm.container,
        "--check",
        "-e",
        json.dumps({"redis_dir": MOVED, "redis_dir_start_empty": True}),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert "Nothing was changed" not in output
    assert _fingerprint(bookworm) == before
