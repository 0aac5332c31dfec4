"""The ACL file's change as live commands, for a server whose ACL LOAD drops clients (roles/redis acl.yml).

Redis before 7.2 (Debian 12's 7.0) frees every user and creates them anew at ``ACL LOAD``, which
disconnects every client authenticated as an ACL user (redis/redis#12171 changed that in 7.2).
``ACL SETUSER`` changes one user in place and keeps its clients (only a pub/sub client whose
channels were revoked is dropped), ``ACL DELUSER`` drops only the deleted user's clients. So on such
a server the role applies the difference between the previous file and the new one user by user:
each changed or new user line becomes ``ACL SETUSER <name> resetpass resetkeys resetchannels off
clearselectors -@all <its rules>`` (the user cleared first, so it ends as the file declares it, as
ACL LOAD would make it; not ``reset``, which also sets ``sanitize-payload``, a flag a user loaded
from the file does not have: measured on 7.0.15, ACL LIST identical only without it), each user gone
from the file ``ACL DELUSER <name>``, deletions last. The lines carry password hashes: the role sends them on
redis-cli's stdin, never in argv. ``cli_line`` quotes any other command for that stdin (the live
``CONFIG SET masterauth`` of a replication password rotation).
"""

from __future__ import annotations

from collections.abc import Sequence

from celery_fleet.errors import FleetError, Problem

# What a user made by ACL LOAD starts from (Redis 7.0's ``reset`` without ``sanitize-payload``).
CLEAR = "resetpass resetkeys resetchannels off clearselectors -@all"


def acl_users(text: str) -> dict[str, str]:
    """User name -> its rules (whitespace normalised), in file order, from an ACL file's text."""
    users: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if words[0] != "user" or len(words) < 2:
            raise FleetError(
                [Problem("users.acl", f"line {number}: every line must be 'user <name> <rules>'")]
            )
        users[words[1]] = " ".join(words[2:])
    return users


def live_commands(old: str, new: str) -> list[str]:
    """The redis-cli command lines that turn the users of ``old`` into those of ``new``."""
    before, after = acl_users(old), acl_users(new)
    commands = [
        f"ACL SETUSER {name} {CLEAR} {rules}".rstrip()
        for name, rules in after.items()
        if before.get(name) != rules
    ]
    commands += [f"ACL DELUSER {name}" for name in before if name not in after]
    return commands


def cli_line(words: Sequence[str]) -> str:
    """One redis-cli stdin line whose words redis-cli splits back exactly as given.

    redis-cli splits a line read from stdin like the server splits inline commands (sdssplitargs):
    inside double quotes a backslash escapes the next character, so a word with spaces, quotes or
    backslashes arrives as one argument, byte for byte. A line break cannot be carried (the line
    would end there): refused, naming no value.
    """
    if any("\n" in w or "\r" in w for w in words):
        raise FleetError([Problem("redis-cli", "a word of the command holds a line break")])
    return " ".join('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in words)
