"""A change of ``redis_dir`` must not start the broker on an empty directory (roles/redis data_dir.yml).

Redis reads its data (AOF and RDB files) only from its ``dir`` at start. A new ``redis_dir`` in the
inventory would make the role restart the server on the new, empty directory: every queue, every
unacknowledged task and every result gone from the broker, while the files stay in the old
directory. The role therefore compares the directory of the installed server's configuration with
the one it is about to write, before it changes anything, and refuses the change while the old
directory holds the data and the new one none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from celery_fleet.errors import Problem

DIR_RE = re.compile(r"^dir\s+(\S+)\s*$", re.M)
KEYSPACE_RE = re.compile(r"^db\d+:keys=(\d+)", re.M)
# The variable that accepts starting on the new directory without the data.
START_EMPTY = "redis_dir_start_empty"


def configured_dir(config: str, default: str) -> str:
    """The ``dir`` of a redis.conf text (the last one wins, as in Redis); ``default`` without one."""
    found = DIR_RE.findall(config or "")
    value = found[-1] if found else default
    return value.strip("\"'")


def keyspace_keys(info: str) -> int | None:
    """Keys over every database of an ``INFO keyspace`` reply; None when it is not one (no answer)."""
    if "# Keyspace" not in (info or ""):
        return None
    return sum(int(count) for count in KEYSPACE_RE.findall(info))


def _data_files(files: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [f for f in files or [] if int(f.get("size", 0) or 0) > 0]


def data_dir_problems(
    old_dir: str,
    new_dir: str,
    old_keys: int | None,
    old_files: Iterable[Mapping[str, Any]],
    new_files: Iterable[Mapping[str, Any]],
    start_empty: bool = False,
    service: str = "redis-server",
    user: str = "redis",
) -> list[str]:
    """Why the server must not be moved from ``old_dir`` to ``new_dir`` now (empty: it may).

    ``old_keys``: the running server's key count (``INFO keyspace``), None when it is not running
    or did not answer; then any non-empty AOF/RDB file in ``old_dir`` counts as data (an empty
    server's files are not empty either: refused, with the override named). ``old_files`` and
    ``new_files``: the AOF/RDB files (``path``, ``size``) found in each directory (Ansible's
    ``find``). A new directory that already holds data files was filled by the user: allowed.
    """
    if not old_dir or os.path.normpath(old_dir) == os.path.normpath(new_dir) or start_empty:
        return []
    if _data_files(new_files):
        return []
    held = _data_files(old_files)
    if old_keys is not None:
        if old_keys == 0:
            return []
        what = f"the running server holds {old_keys} key(s)"
    elif held:
        what = f"it holds {len(held)} data file(s) ({sum(int(f['size']) for f in held)} bytes)"
    else:
        return []
    return [
        str(
            Problem(
                "redis_dir",
                f"the server's data is in {old_dir} ({what}) and redis_dir is now {new_dir}, which holds "
                "none: Redis would restart on the empty directory, and every queue, unacknowledged "
                f"task and result would be gone from the broker (the files stay in {old_dir}). Nothing "
                f"was changed. Move the data first (with the producers and workers stopped: systemctl "
                f"stop {service}; cp -a {old_dir}/. {new_dir}/; chown -R {user}: {new_dir}), then run "
                f"again; or set {START_EMPTY}: true to start on the empty directory on purpose, or put "
                f"redis_dir back to {old_dir}.",
            )
        )
    ]
