"""What Molecule wrote for the running scenario: its hosts and their group/host vars.

Shared by the scenarios' testinfra conftest files (they put molecule/resources on sys.path).
"""

from __future__ import annotations

import functools
import os
import pathlib

import yaml


def _inventory_file() -> pathlib.Path:
    return pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"])


@functools.cache
def inventory_hosts() -> list[str]:
    """The scenario's hosts, sorted."""
    inventory = yaml.safe_load(_inventory_file().read_text())
    return sorted(inventory["all"]["hosts"])


@functools.cache
def inventory_vars(hostname: str) -> dict:
    """Group `all` and host vars Molecule wrote for this scenario (TEST-ONLY passwords)."""
    inventory_dir = _inventory_file().parent
    variables: dict = {}
    for path in (inventory_dir / "group_vars" / "all", inventory_dir / "host_vars" / hostname):
        if path.is_file():
            variables.update(yaml.safe_load(path.read_text()) or {})
    return variables
