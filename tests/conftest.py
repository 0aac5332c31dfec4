"""Shared by tests/unit and tests/playbooks.

`make unit` runs these tests in parallel processes (pytest-xdist). The plays of tests/playbooks run
with the project's ansible.cfg, whose fact cache is one JSON file per host name under .cache/facts:
two processes writing the same host's file at once could leave it half written, and a developer's
cache would collect the tests' made-up hosts. Every test session gets its own cache directory.

The tests that run a play or another Ansible tool do so through the fixtures `ansible` and
`ansible_playbook` (the venv's tools, the project's ansible.cfg, the repository as working
directory), most against an inventory of this machine written by `local_inventory`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

TOP = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# How a host of a local inventory is reached: this machine, with the tests' own Python.
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
KEPT_PLAYBOOK = TOP / "molecule" / "resources" / "bin" / "ansible-playbook"


@pytest.fixture(scope="session", autouse=True)
def _own_fact_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("facts")
    before = os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION")
    os.environ["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(directory)
    yield directory
    if before is None:
        os.environ.pop("ANSIBLE_CACHE_PLUGIN_CONNECTION", None)
    else:
        os.environ["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = before


@pytest.fixture(scope="session")
def ansible() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs one of the venv's Ansible tools, `ansible(tool, *args)`, with the project's ansible.cfg and
    no colour, from the repository's top (or `cwd`), `extra_env` on top of this process's environment;
    returns the finished process, output as text, whatever its exit code: each test says what it
    expects. A tool still running after `timeout` seconds fails the test."""

    def run(
        tool: str,
        *args: str,
        cwd: Path = TOP,
        extra_env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(TOP / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            # The harness's kept module payloads (molecule/resources/callback), as Molecule's runs
            # have them: the ~80 plays here otherwise build each module they use anew, ~15 CPU-s;
            # and its task processes inherit the Jinja plugins and lexer (celery_fleet_warm_forks)
            # and reuse the templates compiled before them (celery_fleet_template_cache); their
            # local module runs are forked by an agent with the module_utils imported once
            # (celery_fleet_kept_exec).
            "ANSIBLE_CALLBACK_PLUGINS": str(TOP / "molecule" / "resources" / "callback"),
            "ANSIBLE_CALLBACKS_ENABLED": (
                "ansible.posix.profile_tasks,celery_fleet_ansiballz_cache,celery_fleet_warm_forks,"
                "celery_fleet_template_cache,celery_fleet_kept_exec"
            ),
            # ansible-playbook through the harness's client, as the scenarios run it: forked from a
            # server that imported Ansible once (molecule/resources/kept_playbook.py).
            "CELERY_FLEET_ANSIBLE_PLAYBOOK_REAL": str(BIN / "ansible-playbook"),
            **(extra_env or {}),
        }
        command = [str(KEPT_PLAYBOOK if tool == "ansible-playbook" else BIN / tool), *args]
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
        )

    return run


@pytest.fixture(scope="session")
def ansible_playbook(ansible) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`ansible_playbook(playbook, *args, inventory=None, **options)`: ansible-playbook on `playbook`
    (a path, relative ones from the repository's top), with `-i inventory` first when given; `options`
    as for `ansible`."""

    def run(
        playbook: str | Path, *args: str, inventory: str | Path | None = None, **options: Any
    ) -> subprocess.CompletedProcess[str]:
        source = ("-i", str(inventory)) if inventory is not None else ()
        return ansible("ansible-playbook", *source, str(playbook), *args, **options)

    return run


@pytest.fixture
def local_inventory(tmp_path: Path) -> Callable[..., Path]:
    """`local_inventory(groups, **all_vars)` writes tmp_path/hosts.yml (write_local_inventory)."""
    return functools.partial(write_local_inventory, tmp_path)


def write_local_inventory(
    directory: Path, groups: dict[str, dict[str, dict[str, Any]]], **all_vars: Any
) -> Path:
    """Writes directory/hosts.yml and returns its path: `groups` maps each group to its hosts and
    their own vars, every host reached on this machine (LOCAL); `all_vars` become the vars of the
    group all."""
    inventory: dict[str, Any] = {
        group: {"hosts": {host: {**LOCAL, **own} for host, own in hosts.items()}}
        for group, hosts in groups.items()
    }
    if all_vars:
        inventory.setdefault("all", {})["vars"] = all_vars
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path
