"""Helpers of the ssh scenario's tests: the host is reached the way Ansible reached it.

Every command goes over SSH as `deploy` with sudo, using the configuration create.yml wrote (one
multiplexed connection for the whole run). A secret a test needs travels on the command's stdin,
never in its command line, so the secret scan (test_secrets.py, which runs after the others)
judges the deployment and the tests alike.
"""

from __future__ import annotations

import os
import pathlib
import re
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

# TLS (issue 18): the throwaway CA of this run on the controller (prepare.yml), the
# broker's TLS port (the only one: redis_port 0) and its Unix socket (the admin's way in).
CA_DIR = EPHEMERAL / "throwaway-ca"
TLS_PORT = int(VARS.get("redis_tls_port", 6380))
REDIS_SOCKET = "/run/redis/redis-server.sock"
# Every private key of the run: where it may be on the host (the CA's: nowhere).
KEYS = {
    "ca.key": [],
    "server.key": ["/etc/ssl/celery-fleet-throwaway/server.key", "/etc/redis/tls/server.key"],
    "client.key": [NODE.layout["tls_key_file"], "/etc/prometheus-redis-exporter/client.key"],
    "flower.key": [NODE.layout["flower_tls_key_file"]],
}


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


def grep_files(roots: list[str], patterns: list[str], grep_options: str, find_tests: str = "") -> str:
    """grep ``grep_options`` -F of ``patterns`` (given on stdin, never in argv) over every regular
    file under ``roots`` on the host (their own file systems: -xdev), ``find_tests`` narrowing them
    (e.g. "-perm -o=r"). The patterns go to a root-only temporary file first, which the search
    skips: xargs runs grep once per batch of names, and a pipe read by the first grep would leave
    the others with no pattern at all (they would find nothing)."""
    command = (
        'p=$(mktemp) && trap \'rm -f "$p"\' EXIT && cat > "$p"'
        f' && find {" ".join(roots)} -xdev -type f {find_tests} ! -path "$p" -print0 2>/dev/null'
        f' | xargs -0 -r grep {grep_options} -F -f "$p" -- 2>/dev/null; true'
    )
    return check_output(command, stdin="".join(f"{p}\n" for p in patterns), timeout=300)


def address() -> str:
    """The host's address on the Docker bridge (create.yml's SSH configuration), as the controller
    reaches it."""
    config = (SSH_DIR / "config").read_text()
    return re.search(rf"^Host {re.escape(HOST)}\n +HostName (\S+)$", config, re.M).group(1)


def https(
    path: str,
    *,
    auth: tuple[str, str] | None = None,
    scheme: str = "https",
    ca: bool = True,
) -> tuple[int, dict[str, str], str]:
    """A GET of Flower through nginx from the controller, as a browser elsewhere reaches it: by the
    name in its certificate (the inventory name, resolved to the host's bridge address) on port 443,
    the certificate verified with the run's CA (ca=False: with the system's CAs only). curl reads
    its whole configuration, the credentials included, from stdin (-K -), never from argv.
    Returns (HTTP status, headers, body); status 0 when curl failed (its exit code in the body)."""
    config = [
        f'url = "{scheme}://{HOST}:443{path}"',
        f'resolve = "{HOST}:443:{address()}"',
        "silent",
        "include",
        'max-time = "20"',
        # Straight to the host, whatever proxy the controller's environment names.
        'noproxy = "*"',
    ]
    if ca:
        config.append(f'cacert = "{CA_DIR / "ca.crt"}"')
    if auth is not None:
        config.append('user = "{}:{}"'.format(*auth))
    result = subprocess.run(
        ["curl", "-K", "-"],
        input="\n".join(config) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return 0, {}, f"curl exit {result.returncode}"
    head, _, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def password(user: str) -> str:
    return next(u["password"] for u in VARS["redis_acl_users"] if u["name"] == user)


def redis_url(user: str, db: int) -> str:
    """A rediss:// URL for one of the inventory's ACL users, at the address and TLS port the fleet
    uses (the CA and client certificate go in Celery's *_use_ssl settings: kombu ignores them in
    the URL)."""
    quoted = urllib.parse.quote(password(user), safe="")
    return f"rediss://{user}:{quoted}@{VARS['celery_broker_host']}:{TLS_PORT}/{db}"


def redis_admin(*command: str) -> str:
    """A command as the inventory's admin ACL user on the broker's Unix socket (TLS-only: no
    plaintext TCP port); the password goes to redis-cli on stdin."""
    admin = next(u for u in VARS["redis_acl_users"] if u["ruleset"] == "admin")
    argv = ["redis-cli", "-s", REDIS_SOCKET, "--user", admin["name"], "--askpass", *command]
    out = check_output(shlex.join(argv), stdin=admin["password"] + "\n")
    assert not out.startswith(("NOAUTH", "WRONGPASS", "ERR", "NOPERM")), out
    return out


def key_lines() -> dict[str, str]:
    """A line of each private key's PEM body (the controller's copy), by the key's file name: a
    fragment of a key anywhere (a log, a -v result, a file) holds such a line."""
    found = {}
    for name in KEYS:
        pem = (CA_DIR / name).read_text().splitlines()
        body = [line for line in pem if line and not line.startswith("-----")]
        # The second line: all key bytes (the first starts with the ASN.1 header every EC key shares).
        found[name] = body[1]
        assert len(found[name]) >= 40, name
    return found


def secrets() -> dict[str, str]:
    """Every password of the inventory and a line of every TLS private key's PEM body, by a name
    safe to print, with the forms a password travels in."""
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
    for name, line in key_lines().items():
        found[f"TLS private key {name} (a line of its PEM body)"] = line
    return found
