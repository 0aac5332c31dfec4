"""Unit tests of lib/celery_fleet/redis_acl.py: the ACL file's change as ACL SETUSER/DELUSER lines."""

from __future__ import annotations

import pytest
from celery_fleet.errors import FleetError
from celery_fleet.redis_acl import acl_users, cli_line, live_commands

OLD = """\
user default off resetpass ~* &* +@all
user worker on #aaa ~cf:* &cf:* -@all +ping
user gone on #bbb ~* +@all
user admin on #ccc ~* &* +@all
"""


def test_users_are_read_in_file_order_with_their_rules():
    users = acl_users(OLD + "\n")

    assert list(users) == ["default", "worker", "gone", "admin"]
    assert users["worker"] == "on #aaa ~cf:* &cf:* -@all +ping"


def test_an_unchanged_file_needs_no_command():
    assert live_commands(OLD, OLD) == []


def test_a_changed_or_new_user_is_set_from_scratch_and_a_removed_one_deleted_last():
    new = (
        OLD.replace("#aaa", "#ddd #aaa").replace("user gone on #bbb ~* +@all\n", "")
        + "user new on #eee +ping\n"
    )

    commands = live_commands(OLD, new)

    clear = "resetpass resetkeys resetchannels off clearselectors -@all"
    assert commands == [
        f"ACL SETUSER worker {clear} on #ddd #aaa ~cf:* &cf:* -@all +ping",
        f"ACL SETUSER new {clear} on #eee +ping",
        "ACL DELUSER gone",
    ]


def test_whitespace_alone_is_no_change():
    assert live_commands(OLD, OLD.replace("on #aaa ", "on  #aaa   ")) == []


def test_a_line_that_is_not_a_user_is_refused_naming_its_number():
    with pytest.raises(FleetError, match="line 2: every line must be 'user <name> <rules>'"):
        acl_users("user default on nopass\nrequirepass x\n")


@pytest.mark.parametrize(
    ("words", "line"),
    [
        (
            ("CONFIG", "SET", "masterauth", "plain-0123456789"),
            '"CONFIG" "SET" "masterauth" "plain-0123456789"',
        ),
        (("x", 'a "quoted" pass'), '"x" "a \\"quoted\\" pass"'),
        (("x", "back\\slash\\x41"), '"x" "back\\\\slash\\\\x41"'),
    ],
)
def test_a_cli_line_quotes_every_word_so_redis_cli_splits_it_back(words, line):
    assert cli_line(words) == line


@pytest.mark.parametrize("word", ["two\nlines", "carriage\rreturn"])
def test_a_cli_line_refuses_a_line_break_without_naming_the_word(word):
    with pytest.raises(FleetError) as raised:
        cli_line(["CONFIG", "SET", "masterauth", word])

    assert word not in str(raised.value) and "line break" in str(raised.value)
