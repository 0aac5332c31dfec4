"""Helpers for the redis scenario's tests.

Commands reach the containers through molecule/resources/fleetnode.py (`docker exec`, ~20x faster
than testinfra's ansible backend per call); REDISCLI_AUTH travels in the exec's environment (name
only in argv), which keeps every password off any command line, in the container and on the
controller.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sys
from dataclasses import dataclass

import pytest

# molecule/resources holds what every scenario's tests share.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
import kept_playbook
from fleetnode import Node
from scenario_inventory import inventory_hosts, inventory_vars

ADMIN = "admin"


@dataclass(frozen=True)
class Broker:
    """One converged container and the names of its server."""

    container: str
    server: str

    @property
    def node(self) -> Node:
        return Node(self.container)

    @property
    def cli(self) -> str:
        return f"{self.server}-cli"

    @property
    def service(self) -> str:
        return f"{self.server}-server"

    @property
    def config_dir(self) -> str:
        return f"/etc/{self.server}"

    @property
    def default_user_enabled(self) -> bool:
        return inventory_vars(self.container).get("redis_default_user_enabled", True)

    @property
    def key_prefix(self) -> str:
        """The ACL key scoping prefix ("" by default: every key and channel allowed)."""
        return inventory_vars(self.container).get("redis_acl_key_prefix", "")

    @property
    def data_dir(self) -> str:
        return inventory_vars(self.container).get("redis_dir") or f"/var/lib/{self.server}"

    def password(self, user: str) -> str:
        variables = inventory_vars(self.container)
        if user == "default":
            return variables["redis_password"]
        return next(u["password"] for u in variables["redis_acl_users"] if u["name"] == user)

    def passwords(self) -> list[str]:
        variables = inventory_vars(self.container)
        return [variables["redis_password"], *(u["password"] for u in variables["redis_acl_users"])]

    def sh(self, command: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a shell command in the container as root (no secrets in `command`)."""
        return self.node.run(command, stdin=stdin, timeout=timeout)

    def cli_run(
        self,
        *args: str,
        user: str | None = None,
        password: str | None = None,
        stdin: str | None = None,
        cli_args: tuple[str, ...] = ("-h", "127.0.0.1", "-p", "6379"),
    ) -> str:
        """Run redis-cli/valkey-cli; the password travels in REDISCLI_AUTH only. Returns stdout+stderr."""
        secret_env = None
        command = [self.cli, *cli_args]
        if user is not None:
            secret_env = {"REDISCLI_AUTH": password if password is not None else self.password(user)}
            command += ["--user", user]
        result = self.node.run(shlex.join([*command, *args]), stdin=stdin, timeout=120, secret_env=secret_env)
        return (result.stdout + result.stderr).strip()

    def admin(self, *args: str, stdin: str | None = None) -> str:
        return self.cli_run(*args, user=ADMIN, stdin=stdin)

    def main_pid(self) -> int:
        return self.node.main_pid(self.service)


@pytest.fixture
def broker(host) -> Broker:
    container = host.backend.get_hostname()
    return Broker(container=container, server=inventory_vars(container).get("redis_server", "redis"))


def all_brokers() -> list[Broker]:
    return [
        Broker(container=name, server=inventory_vars(name).get("redis_server", "redis"))
        for name in inventory_hosts()
    ]


def run_playbook(
    *args: str, inventory: str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """ansible-playbook with the configuration Molecule wrote (roles path, pipelining)."""
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.cfg")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    converge = pathlib.Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"
    return subprocess.run(
        [
            kept_playbook.command(str(pathlib.Path(sys.executable).parent / "ansible-playbook")),
            "-i",
            inventory or os.environ["MOLECULE_INVENTORY_FILE"],
            str(converge),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
