"""lib/celery_fleet/redis_data.py: a redis_dir change never starts the broker without its data."""

from __future__ import annotations

import pytest
from celery_fleet.redis_data import configured_dir, data_dir_problems, keyspace_keys

OLD, NEW = "/srv/redis-data", "/srv/redis-moved"
AOF = [{"path": f"{OLD}/appendonlydir/appendonly.aof.1.base.rdb", "size": 88}]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("port 6379\ndir /srv/redis-data\n", "/srv/redis-data"),
        ('dir "/srv/a"\ndir /srv/b\n', "/srv/b"),  # the last one wins, as in Redis
        ("port 6379\n# dir /nowhere\n", "/var/lib/redis"),  # none: the package's
        ("", "/var/lib/redis"),
    ],
)
def test_the_configured_dir_is_read_from_redis_conf(config, expected):
    assert configured_dir(config, "/var/lib/redis") == expected


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ("# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb1:keys=2,expires=1,avg_ttl=9\r\n", 5),
        ("# Keyspace\r\n", 0),
        ("", None),  # not running
        ("AUTH failed: WRONGPASS invalid username-password pair", None),
    ],
)
def test_the_keys_of_the_running_server_are_counted(info, expected):
    assert keyspace_keys(info) == expected


def test_a_move_away_from_a_server_with_keys_is_refused_naming_both_directories_and_the_fixes():
    problems = data_dir_problems(OLD, NEW, 42, AOF, [], service="redis-server", user="redis")

    assert len(problems) == 1
    message = problems[0]
    assert message.startswith(
        "field 'redis_dir': the server's data is in /srv/redis-data (the running server holds 42"
    )
    assert f"redis_dir is now {NEW}" in message
    assert f"cp -a {OLD}/. {NEW}/" in message
    assert "redis_dir_start_empty: true" in message
    assert f"put redis_dir back to {OLD}" in message


def test_a_stopped_server_with_data_files_is_refused():
    problems = data_dir_problems(OLD, NEW, None, AOF, [])

    assert len(problems) == 1
    assert "it holds 1 data file(s) (88 bytes)" in problems[0]


@pytest.mark.parametrize(
    ("old_dir", "new_dir", "keys", "old_files", "new_files", "start_empty"),
    [
        (OLD, OLD, 42, AOF, [], False),  # unchanged
        (OLD, OLD + "/", 42, AOF, [], False),  # the same directory written differently
        ("", NEW, None, [], [], False),  # no installed server
        (OLD, NEW, 0, AOF, [], False),  # running and empty (its files hold an empty dataset)
        (OLD, NEW, None, [{"path": f"{OLD}/dump.rdb", "size": 0}], [], False),  # stopped, empty files
        (OLD, NEW, 42, AOF, [{"path": f"{NEW}/dump.rdb", "size": 120}], False),  # data moved by the user
        (OLD, NEW, 42, AOF, [], True),  # the override
    ],
)
def test_what_loses_no_data_is_allowed(old_dir, new_dir, keys, old_files, new_files, start_empty):
    assert data_dir_problems(old_dir, new_dir, keys, old_files, new_files, start_empty) == []
