"""What Molecule wrote for the running scenario: its hosts and their group/host vars.

Shared by the scenarios' testinfra conftest files (they put molecule/resources on sys.path).
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Any

import yaml


def _inventory_file() -> pathlib.Path:
    return pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"])


@functools.cache
def inventory_hosts() -> list[str]:
    """The scenario's hosts, sorted."""
    inventory = yaml.safe_load(_inventory_file().read_text())
    return sorted(inventory["all"]["hosts"])


def host_groups(inventory: dict[str, Any], hostname: str) -> list[str]:
    """The groups ``hostname`` belongs to (parents of its groups included, ``all`` excluded), in the
    order Ansible merges their group_vars: by depth below ``all``, then by name; later wins.

    ``inventory`` is a YAML inventory as Molecule writes it: every group at the top level with its
    ``hosts`` and ``children`` (a group may also be nested under another's ``children``)."""
    members: dict[str, set[str]] = {}
    children: dict[str, set[str]] = {}

    def walk(name: str, group: dict[str, Any] | None) -> None:
        group = group or {}
        members.setdefault(name, set()).update(group.get("hosts") or {})
        for child, body in (group.get("children") or {}).items():
            children.setdefault(name, set()).add(child)
            walk(child, body)

    for name, group in inventory.items():
        walk(name, group)

    @functools.cache
    def depth(name: str) -> int:
        parents = [p for p, kids in children.items() if name in kids and p != "all"]
        return 1 + max((depth(p) for p in parents), default=0)

    @functools.cache
    def has_host(name: str) -> bool:
        return hostname in members.get(name, set()) or any(has_host(c) for c in children.get(name, ()))

    return sorted((g for g in members if g != "all" and has_host(g)), key=lambda g: (depth(g), g))


def _vars_files(base: pathlib.Path, name: str) -> list[pathlib.Path]:
    """The files of one group_vars/host_vars entry: ``name``, ``name.yml``/``.yaml``, or every YAML
    file of the directory ``name`` (sorted)."""
    found = [p for p in (base / name, base / f"{name}.yml", base / f"{name}.yaml") if p.is_file()]
    if (base / name).is_dir():
        found += sorted(p for p in (base / name).rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    return found


def _load(path: pathlib.Path) -> dict[str, Any]:
    text = path.read_text()
    if text.startswith("$ANSIBLE_VAULT"):  # an encrypted file: not readable here
        return {}
    return yaml.safe_load(text) or {}


@functools.cache
def inventory_vars(hostname: str) -> dict:
    """The inventory variables Molecule wrote for this host (TEST-ONLY passwords): group ``all``,
    then the groups it belongs to (as Ansible orders them), then its host_vars; later wins. Values
    are as written (templates not rendered)."""
    inventory_dir = _inventory_file().parent
    inventory = yaml.safe_load(_inventory_file().read_text()) or {}
    variables: dict = {}
    entries = [("group_vars", "all")] + [("group_vars", g) for g in host_groups(inventory, hostname)]
    for kind, name in [*entries, ("host_vars", hostname)]:
        for path in _vars_files(inventory_dir / kind, name):
            variables.update(_load(path))
    return variables
