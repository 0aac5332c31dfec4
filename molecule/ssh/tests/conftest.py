"""Helpers of the ssh scenario's tests: the host is reached the way Ansible reached it.

Every command goes over SSH as `deploy` with sudo, using the configuration create.yml wrote (one
multiplexed connection for the whole run). A secret a test needs travels on the command's stdin,
never in its command line, so the secret scan (test_secrets.py, which runs after the others)
judges the deployment and the tests alike.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sys
import urllib.parse

# molecule/resources holds what every scenario's tests share.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
from fleetnode import SshNode
from scenario_inventory import inventory_hosts, inventory_vars

EPHEMERAL = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SSH_DIR = EPHEMERAL / "ssh"
# Every ansible-playbook run of the scenario at -v (molecule.yml: ANSIBLE_LOG_PATH).
ANSIBLE_LOG = EPHEMERAL / "ansible-v.log"
TESTS_DIR = pathlib.Path(__file__).resolve().parent

HOST = inventory_hosts()[0]
VARS = inventory_vars(HOST)
APP: str = VARS["celery_app_name"]
# The host, reached as Ansible reached it (SSH as `deploy`, root through sudo).
NODE = SshNode(HOST, config=SSH_DIR / "config", app=APP, inspect_timeout=5)
HOME = NODE.layout["home"]


def ssh(
    command: str, *, stdin: str | None = None, sudo: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a shell command on the host over SSH (as root through sudo unless sudo=False)."""
    if sudo:
        return NODE.run(command, stdin=stdin, timeout=timeout)
    return subprocess.run(
        NODE.ssh_argv(command),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_output(command: str, *, stdin: str | None = None, sudo: bool = True, timeout: float = 120) -> str:
    result = ssh(command, stdin=stdin, sudo=sudo, timeout=timeout)
    assert result.returncode == 0, f"{command!r} failed (rc {result.returncode}): {result.stderr[-1500:]}"
    return result.stdout


def password(user: str) -> str:
    return next(u["password"] for u in VARS["redis_acl_users"] if u["name"] == user)


def redis_url(user: str, db: int) -> str:
    """A Redis URL for one of the inventory's ACL users, at the address the fleet uses."""
    quoted = urllib.parse.quote(password(user), safe="")
    return f"redis://{user}:{quoted}@{VARS['celery_broker_host']}:6379/{db}"


def redis_admin(*command: str) -> str:
    """A command as the inventory's admin ACL user; the password goes to redis-cli on stdin."""
    admin = next(u for u in VARS["redis_acl_users"] if u["ruleset"] == "admin")
    argv = ["redis-cli", "-h", VARS["celery_broker_host"], "--user", admin["name"], "--askpass", *command]
    out = check_output(shlex.join(argv), stdin=admin["password"] + "\n")
    assert not out.startswith(("NOAUTH", "WRONGPASS", "ERR", "NOPERM")), out
    return out


def secrets() -> dict[str, str]:
    """Every password of the inventory, by a name safe to print, with the forms it travels in."""
    found: dict[str, str] = {"redis_password": VARS["redis_password"]}
    found.update({f"redis_acl_users[{u['name']}]": u["password"] for u in VARS["redis_acl_users"]})
    found.update({f"flower_users[{u['name']}]": u["password"] for u in VARS["flower_users"]})
    found["celery_broker_password"] = VARS["celery_broker_password"]
    found["flower_broker_password"] = VARS["flower_broker_password"]
    # A password in a URL is percent-encoded.
    for name, value in list(found.items()):
        quoted = urllib.parse.quote(value, safe="")
        if quoted != value:
            found[f"{name} (URL-encoded)"] = quoted
    return found
