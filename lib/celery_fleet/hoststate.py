"""The inputs' signature of a worker host's converge (controller side of the unchanged-host skip).

playbooks/deploy-workers.yml skips the roles on a worker host whose last successful converge came
from the same inputs and left it as it still is (roles/celery_worker, tasks/current.yml; the host's
side is the module roles/celery_worker/library/celery_fleet_host_state.py). The signature is what
"the same inputs" means, so it errs towards change: every variable the inventory gives the host
(templated in the task's context by the lookup roles/celery_worker/lookup_plugins/
celery_fleet_inputs_signature.py, so a value built from another host's variables, such as the
broker's address, follows that host), the facts the roles read, and the content of the code that
turns them into files: the roles, plays, filters and the app's source, plus the wheelhouse's file
list. A variable that differs from run to run (a registered result, a timestamp) only costs the skip,
never a missed change.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["inputs_signature", "listing_digest", "tree_digest"]

# Ansible's own variables (magic, per-run or per-invocation: --check, --tags, forks) and the two
# facts the roles set for later plays: none is an input of what a host runs. `omit` differs per run.
SKIPPED_NAMES = frozenset(
    {
        "groups",
        "group_names_all",
        "hostvars",
        "omit",
        "playbook_dir",
        "inventory_dir",
        "inventory_file",
        "role_names",
        "role_path",
        "role_name",
        "play_hosts",
        "environment",
        "vars",
        # Facts of this run's plays (roles/celery_app, roles/celery_service), not inputs.
        "celery_app_changed",
        "celery_service_pending",
        # How many hosts restart at once: how a rollout runs, not what a host runs.
        "celery_fleet_serial",
        # The record's own parameter (given by the play to the record task only).
        "celery_worker_record_packages",
    }
)
# The facts the roles read (the node name goes into the workers' names, the release picks the
# wheelhouse's Python).
FACTS = ("nodename", "distribution", "distribution_version", "distribution_release", "architecture")
SKIPPED_DIRS = frozenset({"__pycache__", ".git"})


def _plain(value: Any) -> Any:
    """A JSON-able copy of a templated value (Ansible's lazy containers and tagged strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def _skipped(name: str) -> bool:
    return name.startswith(("_", "ansible_")) or name in SKIPPED_NAMES


def host_inputs(host_vars: Mapping[str, Any], replace: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The host's variables that are inputs, templated; one that cannot be templated is recorded as
    its error's type (the converge itself would fail on it). A variable named in ``replace`` counts
    as the value given there instead (only what a role reads of it: the app's part of the skip reads
    the workers' pools, not their concurrency)."""
    replace = replace or {}
    inputs: dict[str, Any] = {}
    for name in sorted(str(n) for n in host_vars):
        if _skipped(name):
            continue
        if name in replace:
            inputs[name] = _plain(replace[name])
            continue
        try:
            inputs[name] = _plain(host_vars[name])
        except Exception as exc:  # an undefined or failing variable is an input too
            inputs[name] = f"<{type(exc).__name__}>"
    facts = host_vars.get("ansible_facts") or {}
    try:
        inputs["ansible_facts"] = {k: _plain(facts.get(k)) for k in FACTS}
    except Exception as exc:  # facts that are not a mapping
        inputs["ansible_facts"] = f"<{type(exc).__name__}>"
    return inputs


def _walk(path: str) -> Iterable[str]:
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            if not name.endswith(".pyc"):
                yield os.path.join(root, name)


def tree_digest(paths: Sequence[str]) -> str:
    """sha256 over the relative names and contents of every file under ``paths`` (bytecode caches
    and .git left out; a missing path counts as 'absent')."""
    digest = hashlib.sha256()
    for top in paths:
        digest.update(f"\0top {top}\0".encode())
        if os.path.isfile(top):
            files = [top]
        elif os.path.isdir(top):
            files = list(_walk(top))
        else:
            digest.update(b"absent")
            continue
        for path in files:
            digest.update(f"\0{os.path.relpath(path, top)}\0".encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def listing_digest(paths: Sequence[str]) -> str:
    """sha256 over names, sizes and modification times under ``paths``: for trees too big to read
    on every run (a wheelhouse, whose file names carry each wheel's version)."""
    digest = hashlib.sha256()
    for top in paths:
        digest.update(f"\0top {top}\0".encode())
        if not os.path.isdir(top):
            digest.update(b"absent")
            continue
        for path in _walk(top):
            info = os.stat(path)
            digest.update(f"{os.path.relpath(path, top)}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def inputs_signature(
    host_vars: Mapping[str, Any],
    trees: Sequence[str] = (),
    listings: Sequence[str] = (),
    replace: Mapping[str, Any] | None = None,
) -> str:
    """sha256 of the host's inputs (:func:`host_inputs`, with ``replace``), the code under ``trees``
    (contents) and the files under ``listings`` (names, sizes, times)."""
    text = json.dumps(
        {
            "inputs": host_inputs(host_vars, replace),
            "trees": tree_digest([str(t) for t in trees if t]),
            "listings": listing_digest([str(t) for t in listings if t]),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()
