"""Callback plugin of the test harness: AnsiballZ payloads kept from one ansible-playbook run to the next.

Every ``ansible-playbook`` run builds the payload of each module it uses once (the module and the
module_utils it imports, found by parsing their source: 0.1-0.25 CPU-s a module on this machine) in
a cache directory that lives as long as the run (``<local_tmp>/ansible-local-*/ansiballz_cache``).
A no-op ``site.yml`` of the sandbox uses 18 modules and spends 1.6 of its 13 controller CPU-s on
them; the suite runs such playbooks about 120 times. This plugin points that directory at one kept
under the project's ``.cache``, keyed by everything a payload is built from, so a run reuses what an
earlier run with the same inputs built: ansible-core's version and every collection's MANIFEST.json
(the modules and module_utils they ship), and the content of every module and module_utils
directory the run can take a module from (``library``, ``module_utils``, each role's, the
playbook's). A change to any of them is another key, hence another directory: a payload is never
reused for other sources.

Ansible still decides everything else: its own file names in that directory carry the module's
name, the compression and the extensions, and it writes each payload under its lock, atomically.

Each payload it keeps also carries bytecode: beside every ``.py`` of the zip, the ``.pyc`` the
controller's Python compiles from it (hash-based and checked, so the target's ``zipimport`` uses it
only when it matches that source and that Python version: bookworm's 3.11 does, trixie's 3.13 finds
another magic number and compiles the source, as without this). A module run imports its payload
from a zip in a temporary directory, where Python can cache no bytecode: it compiled
``module_utils/basic.py`` and the rest on every run, ~95 of a ``stat`` run's 240 ms of CPU in a
bookworm container (147 ms with the bytecode). The code that runs is the same; only its compilation
moves to the controller, once per kept payload.
Enabled in ``.config/molecule/config.yml`` and for the plays of the unit stage (``tests/conftest.py``,
by environment) only: the project's ``ansible.cfg`` stays stock for users.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import io
import marshal
import os
import shutil
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ansible import constants as C
from ansible.executor import module_common
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ANSIBLE_CORE_VERSION

# The project's root: lib/ for the tree digest, .cache/ansiballz for the kept payloads by default.
PROJECT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(PROJECT / "lib"))

from celery_fleet.hoststate import tree_digest  # noqa: E402

DOCUMENTATION = r"""
name: celery_fleet_ansiballz_cache
type: aggregate
short_description: Keep AnsiballZ module payloads across ansible-playbook runs, keyed by their sources
description:
  - Points the run's AnsiballZ cache directory at a directory kept between runs, named after a digest
    of ansible-core's version, every collection's MANIFEST.json and the content of every module and
    module_utils directory the run can load a module from.
  - Keeps the newest O(keep) such directories.
  - Adds to each payload it keeps the checked hash-based bytecode of its Python files, compiled by the
    controller's Python (used on a target whose Python has the same magic number, ignored elsewhere).
requirements:
  - enabled in callbacks_enabled
options:
  cache_dir:
    description: Where the kept payload directories live (created 0700).
    type: path
    default: ~
    env:
      - name: CELERY_FLEET_ANSIBALLZ_CACHE
  keep:
    description: How many keyed directories to keep (the newest by use).
    type: int
    default: 4
"""


def source_dirs(module_paths: Iterable[str], role_paths: Iterable[str], playbook_dir: str) -> list[Path]:
    """Every directory a run can take a module or a module_utils file from, outside the packages."""
    found: list[Path] = [Path(p) for p in module_paths]
    for roles in role_paths:
        if Path(roles).is_dir():
            for role in sorted(Path(roles).iterdir()):
                found += [role / "library", role / "module_utils"]
    found += [Path(playbook_dir) / "library", Path(playbook_dir) / "module_utils"]
    return sorted({p.resolve() for p in found if p.is_dir()})


def key(directories: Iterable[Path], versions: dict[str, str]) -> str:
    """A digest of the versions and of every file (path and content) in the directories
    (lib/celery_fleet/hoststate.py's tree digest, as the unchanged-host skip reads the code)."""
    digest = hashlib.sha256()
    for name in sorted(versions):
        digest.update(f"{name}={versions[name]}\n".encode())
    digest.update(tree_digest([str(d) for d in directories]).encode())
    return digest.hexdigest()[:32]


def versions(collection_roots: Iterable[str]) -> dict[str, str]:
    """What the packaged modules and module_utils come from: ansible-core's version, and each
    collection's MANIFEST.json (its version and the checksum of its file list) wherever Ansible can
    load one from (the collections paths and ansible_collections on sys.path)."""
    found = {
        "ansible-core": ANSIBLE_CORE_VERSION,
        "python": sys.version,
        "payload": PAYLOAD_FORMAT,
    }
    for root in collection_roots:
        for manifest in sorted(Path(root, "ansible_collections").glob("*/*/MANIFEST.json")):
            found[str(manifest)] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    return found


# Part of the key: a change to what a kept payload holds (the bytecode below) is another directory.
PAYLOAD_FORMAT = "bytecode-1"


def with_bytecode(zip_data: bytes) -> bytes:
    """A payload's base64 zip with, beside each ``.py``, its checked hash-based ``.pyc`` (PEP 552)
    as the controller's Python compiles it, named as ``zipimport`` looks for it (``x.py`` ->
    ``x.pyc``). A file that does not compile here is left to the target, as it was."""
    source_zip = zipfile.ZipFile(io.BytesIO(base64.b64decode(zip_data)))
    names = set(source_zip.namelist())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target_zip:
        for info in source_zip.infolist():
            body = source_zip.read(info)
            target_zip.writestr(info, body)
            if not info.filename.endswith(".py") or f"{info.filename}c" in names:
                continue
            try:
                code = compile(body, info.filename, "exec", dont_inherit=True, optimize=0)
            except (SyntaxError, ValueError):
                continue
            pyc = zipfile.ZipInfo(f"{info.filename}c", info.date_time)
            pyc.compress_type = info.compress_type
            pyc.external_attr = info.external_attr
            flags = 0b11  # hash-based, checked against the source
            target_zip.writestr(
                pyc,
                importlib.util.MAGIC_NUMBER
                + flags.to_bytes(4, "little")
                + importlib.util.source_hash(body)
                + marshal.dumps(code),
            )
    return base64.b64encode(out.getvalue())


def keep_bytecode() -> None:
    """Make every payload this run writes to the cache carry its bytecode (once per process: the
    forked task workers inherit it)."""
    cached_module = module_common._CachedModule
    if getattr(cached_module.dump, "celery_fleet_bytecode", False):
        return
    dump = cached_module.dump

    def dump_with_bytecode(self: Any, path: str) -> None:
        dump(dataclasses.replace(self, zip_data=with_bytecode(self.zip_data)), path)

    dump_with_bytecode.celery_fleet_bytecode = True  # type: ignore[attr-defined]
    cached_module.dump = dump_with_bytecode


def prune(cache_dir: Path, keep: int) -> None:
    """Remove all but the ``keep`` keyed directories used last."""
    keyed = sorted(
        (d for d in cache_dir.iterdir() if d.is_dir() and not d.is_symlink()),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for old in keyed[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def attach(run_cache: Path, cache_dir: Path, digest: str, keep: int) -> Path | None:
    """Make ``run_cache`` (the run's ansiballz_cache, not created yet) a link to the kept directory
    of ``digest``; the kept directory, or None when the run already has its own directory."""
    if run_cache.exists() or run_cache.is_symlink():
        return None
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    kept = cache_dir / digest
    kept.mkdir(mode=0o700, exist_ok=True)
    os.utime(kept)  # the newest by use: prune() keeps it
    run_cache.parent.mkdir(parents=True, exist_ok=True)
    run_cache.symlink_to(kept, target_is_directory=True)
    prune(cache_dir, keep)
    return kept


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "celery_fleet_ansiballz_cache"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook: Any) -> None:
        configured = self.get_option("cache_dir")
        cache_dir = Path(configured) if configured else PROJECT / ".cache" / "ansiballz"
        directories = source_dirs(
            [*(C.DEFAULT_MODULE_PATH or []), *(C.DEFAULT_MODULE_UTILS_PATH or [])],
            C.DEFAULT_ROLES_PATH or [],
            playbook._basedir,
        )
        digest = key(directories, versions([*C.COLLECTIONS_PATHS, *sys.path]))
        run_cache = Path(C.DEFAULT_LOCAL_TMP) / "ansiballz_cache"
        kept = attach(run_cache, cache_dir, digest, self.get_option("keep"))
        if kept is not None:
            keep_bytecode()
            self._display.vvv(f"AnsiballZ payloads kept in {kept}")
