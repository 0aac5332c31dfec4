"""The TLS private keys on the host (issue 18), deployed over SSH + sudo: each root-owned or its
service's, 0600 or 0640, out of the app user's reach where the app needs none; the key material of
each (a line of its PEM body) in its own files only, anywhere on the host; the throwaway CA's key
never on the host at all. Whether a key reached a log, argv, a unit, a world-readable file or the
-v output of the runs is judged by test_secrets.py (a line of every key is among its secrets).
"""

from __future__ import annotations

import pytest
from conftest import APP, KEYS, NODE, grep_files, key_lines, ssh

LAYOUT = NODE.layout


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        # The throwaway CA's copy for the broker (playbooks/throwaway-ca.yml) and Redis' own.
        ("/etc/ssl/celery-fleet-throwaway/server.key", "root", "root", 0o600),
        ("/etc/redis/tls/server.key", "redis", "redis", 0o600),
        # The clients' key: the app's services read it through their group.
        (LAYOUT["tls_key_file"], "root", APP, 0o640),
        ("/etc/prometheus-redis-exporter/client.key", "root", "prometheus", 0o640),
        # nginx's master reads Flower's as root.
        (LAYOUT["flower_tls_key_file"], "root", "root", 0o600),
    ],
)
def test_key_file_has_its_owner_and_mode(path: str, owner: str, group: str, mode: int) -> None:
    assert NODE.stat(path) == (owner, group, mode)


SERVER_KEYS = [
    "/etc/ssl/celery-fleet-throwaway/server.key",
    "/etc/redis/tls/server.key",
    LAYOUT["flower_tls_key_file"],
]


@pytest.mark.parametrize("path", SERVER_KEYS)
def test_the_app_user_cannot_read_a_server_key(path: str) -> None:
    result = ssh(f"runuser -u {APP} -- cat {path} > /dev/null")
    assert result.returncode != 0
    assert "Permission denied" in result.stderr


def test_key_material_only_in_its_own_files_and_the_cas_key_nowhere() -> None:
    lines = key_lines()
    # Every regular file of every local file system of the host (the root, /run, /tmp); grep -o
    # prints file:line, mapped back to the key's name here (-a: binary files too, the journal's).
    out = grep_files(["/", "/run", "/tmp"], list(lines.values()), "-aHo")
    names = {line: name for name, line in lines.items()}
    found: dict[str, set[str]] = {name: set() for name in KEYS}
    for hit in out.splitlines():
        path, _, matched = hit.rpartition(":")
        found[names[matched]].add(path)
    print(f"\nkey material on the host: { {name: sorted(paths) for name, paths in found.items()} }")
    assert found == {name: set(paths) for name, paths in KEYS.items()}
