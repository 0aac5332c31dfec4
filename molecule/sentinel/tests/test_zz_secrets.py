"""The Sentinel topology's own passwords never reach a command line or a log (issue 16).

The Sentinels' password (``redis_sentinel_password``, the clients' ``celery_broker_sentinel_password``)
and the passwords of the ACL users ``replication`` and ``sentinel`` are searched for in every
process's argv (``ps``) on every data node, Sentinel host and the client, in the journal of
redis-server, redis-sentinel and the app's Celery services (every field: ``-o json`` holds the
_CMDLINE of whoever logged), in Redis' and Sentinel's own log files, and in sudo's log (its journal
entries and /var/log/auth.log: empty where the image has no sudo, which is printed). As the redis
scenario does for the broker password: the passwords go to grep on stdin, never on its command
line, and a failure names the place and the password's inventory name, never the password.

Named to run last (file order): what the failovers, the switchover-free stream, the re-run of
site.yml and the rotations of the Sentinels' and the replication password in the earlier files did
is judged too.
"""

from __future__ import annotations

import pytest
from conftest import DATA_NODES, NEXT_REPLICATION_PASSWORD, NEXT_SENTINEL_PASSWORD, VARS, node

CLIENT = "sentinel-client"
APP = "celerydemo"
SECRETS = {
    **{
        name: VARS[name]
        for name in ("redis_sentinel_password", "redis_replication_password", "redis_sentinel_auth_password")
    },
    # The rotation's new password (test_zn_sentinel_password).
    "redis_sentinel_password (rotated)": NEXT_SENTINEL_PASSWORD,
    # test_zo_replication_password's.
    "redis_replication_password (rotated)": NEXT_REPLICATION_PASSWORD,
}
SUDO_LOG = "journalctl -o json --no-pager SYSLOG_IDENTIFIER=sudo; cat /var/log/auth.log 2>/dev/null"
# host -> place -> (command, a word its output must hold: the search can find something there).
PLACES: dict[str, dict[str, tuple[str, str | None]]] = {
    **{
        host: {
            "ps -eo args": ("ps -eo args", "redis-sentinel"),
            "journal of redis-server and redis-sentinel": (
                "journalctl -o json --no-pager -u redis-server -u redis-sentinel",
                "redis-sentinel.service",
            ),
            "/var/log/redis/*.log": ("cat /var/log/redis/*.log", "Sentinel"),
            "sudo's log": (SUDO_LOG, None),
        }
        for host in DATA_NODES
    },
    CLIENT: {
        "ps -eo args": ("ps -eo args", "celery"),
        "journal of the Celery services": (f"journalctl -o json --no-pager -u '{APP}-*'", "succeeded"),
        "sudo's log": (SUDO_LOG, None),
    },
}
CASES = [(host, place) for host, places in PLACES.items() for place in places]


def search(host: str, command: str, control: str | None) -> tuple[int, int, list[int]]:
    """(lines searched, lines holding the control word, hits per password in SECRETS' order).

    The output stays on the host in a 0600 file; each password goes to grep from the patterns
    file read on stdin, one at a time, so none is ever in an argv."""
    word = control or "-"
    script = (
        "umask 077; cat > /run/secrets.pat; "
        f"{{ {command}; }} > /run/secrets.out 2>&1 || true; "
        "echo lines $(wc -l < /run/secrets.out); "
        f"echo control $(grep -cF -- '{word}' /run/secrets.out); "
        "for i in $(seq 1 $(wc -l < /run/secrets.pat)); do "
        'sed -n "${i}p" /run/secrets.pat > /run/secrets.one; '
        "echo hits $(grep -cF -f /run/secrets.one /run/secrets.out); done; "
        "rm -f /run/secrets.pat /run/secrets.out /run/secrets.one"
    )
    out = node(host).check(script, stdin="".join(f"{value}\n" for value in SECRETS.values()), timeout=300)
    words = out.split()
    assert words[0] == "lines" and words[2] == "control", out
    hits = [int(words[i + 1]) for i in range(4, len(words), 2) if words[i] == "hits"]
    assert len(hits) == len(SECRETS), out
    return int(words[1]), int(words[3]), hits


@pytest.mark.parametrize(("host", "place"), CASES, ids=[f"{h}: {p}" for h, p in CASES])
def test_no_sentinel_or_replication_password(host: str, place: str) -> None:
    command, control = PLACES[host][place]

    lines, seen, hits = search(host, command, control)

    print(f"\n{host}: {place}: {lines} lines searched, control {control!r} in {seen}")
    if place == "sudo's log":
        installed = node(host).run("command -v sudo").returncode == 0
        print(f"{host}: sudo {'installed' if installed else 'not installed (nothing can log through it)'}")
    else:
        # The search could have found something: the place holds what it should.
        assert seen > 0, f"{host}: {place} does not hold {control!r}: the search would prove nothing"
    leaked = [name for name, count in zip(SECRETS, hits, strict=True) if count]
    assert not leaked, f"{host}: {place} holds {', '.join(leaked)}"
