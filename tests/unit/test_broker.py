"""lib/celery_fleet/broker.py: the options every service gets, and the Redis ACL rule sets."""

from __future__ import annotations

import pytest
from celery_fleet.broker import (
    acl_rulesets,
    key_prefix_problems,
    option_errors,
    scoping_errors,
    transport_options,
)
from celery_fleet.errors import FleetError

COMMANDS = "-@all +ping  +brpop\n+lpush"


def test_no_prefix_allows_every_key_and_channel_and_adds_no_pattern_after_the_star():
    # Act
    rules = acl_rulesets("", 0, COMMANDS)

    # Assert: Redis refuses a channel pattern after `&*`, so the fanout patterns are left out.
    assert rules == {
        name: "resetkeys ~* resetchannels &* -@all +ping +brpop +lpush"
        for name in ("celery_worker", "celery_producer", "celery_flower")
    }


def test_a_prefix_scopes_keys_channels_and_kombus_fanout_patterns():
    # Act
    rules = acl_rulesets("cf:", 2, COMMANDS)

    # Assert
    assert rules["celery_worker"] == (
        "resetkeys ~cf:* resetchannels &cf:* &cf:/2.celery.pidbox &cf:/2.celeryev/worker.* "
        "-@all +ping +brpop +lpush"
    )
    assert rules["celery_producer"] == "resetkeys ~cf:* resetchannels &cf:* -@all +ping +brpop +lpush"
    assert (
        rules["celery_flower"]
        == "resetkeys ~cf:* resetchannels &cf:* &cf:/2.celeryev/* -@all +ping +brpop +lpush"
    )


@pytest.mark.parametrize("prefix", ["*", "cf:*", "a b", "x?", "[a]", "back\\slash", "é", "x" * 65, 3, None])
def test_a_prefix_that_would_change_the_acl_patterns_is_refused(prefix):
    # Act
    problems = key_prefix_problems(prefix, "redis_acl_key_prefix")

    # Assert
    assert len(problems) == 1
    assert str(problems[0]).startswith("field 'redis_acl_key_prefix': ")
    with pytest.raises(FleetError, match="redis_acl_key_prefix"):
        acl_rulesets(prefix, 0, COMMANDS)


@pytest.mark.parametrize("prefix", ["", "cf:", "app-1/", "a.b_c:", "x" * 64])
def test_plain_prefixes_are_accepted(prefix):
    assert key_prefix_problems(prefix, "celery_broker_key_prefix") == []


def test_a_bad_database_number_is_refused():
    with pytest.raises(FleetError, match="redis_acl_celery_db"):
        acl_rulesets("", -1, COMMANDS)


def test_transport_options_always_carry_the_visibility_timeout_and_the_prefix_only_when_set():
    assert transport_options() == {"broker": {"visibility_timeout": 3600}, "backend": {}}
    assert transport_options(7200, "cf:") == {
        "broker": {"visibility_timeout": 7200, "global_keyprefix": "cf:"},
        "backend": {"global_keyprefix": "cf:"},
    }


@pytest.mark.parametrize("timeout", [0, -5, "soon", True])
def test_transport_options_refuse_a_visibility_timeout_that_is_not_seconds(timeout):
    with pytest.raises(FleetError, match="celery_broker_visibility_timeout"):
        transport_options(timeout)


def test_option_errors_name_each_missing_or_different_option():
    # Act
    errors = option_errors(
        "host 'w1', worker 'io'",
        {"visibility_timeout": 7200, "global_keyprefix": "cf:", "max_connections": 20},
        {"visibility_timeout": 3600, "max_connections": 20, "socket_keepalive": True},
    )

    # Assert: the app's own extra option is not an error.
    assert errors == [
        "host 'w1', worker 'io': broker transport option visibility_timeout is 3600, the inventory says 7200",
        "host 'w1', worker 'io': broker transport option global_keyprefix is not set (the fleet sets 'cf:')",
    ]
    assert option_errors("w", {"visibility_timeout": 1}, None) == [
        "w: reported no broker transport options (expected {'visibility_timeout': 1})"
    ]


def test_scoping_errors_name_the_host_whose_prefix_differs_from_the_brokers():
    # Act
    errors = scoping_errors({"w1": "cf:", "w2": None, "w3": "a b"}, {"w1": 7200, "w2": 0}, "cf:")

    # Assert
    assert errors == [
        "host 'w2': field 'celery_broker_visibility_timeout': 0 is not a number of seconds >= 1",
        "host 'w3': field 'celery_broker_key_prefix': 'a b' is not allowed: up to 64 of the characters "
        'A-Z a-z 0-9 _ . : / - ("" turns key scoping off; * ? [ ] \\ and spaces '
        "would change the ACL patterns)",
    ]
    assert scoping_errors({"w1": "cf:"}, {}, "") == [
        "host 'w1': field 'celery_broker_key_prefix': 'cf:' differs from the broker's "
        "redis_acl_key_prefix '': "
        'set both to the same value ("" for no key scoping)'
    ]
    assert scoping_errors({"w1": None}, {}, None) == []
    assert scoping_errors({}, {}, "x y")[0].startswith("field 'redis_acl_key_prefix'")
