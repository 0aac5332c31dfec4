"""Helpers for the flower scenario's tests (Flower, beat and a small worker fleet per container).

Commands reach the containers through molecule/resources/fleetnode.py (`docker exec`, much faster
than testinfra's ansible backend per call). Credentials never go on a command line: curl reads them
from a config on stdin (`-K -`), so the "not in ps" test measures the deployment, not the test.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from dataclasses import dataclass

import pytest

# molecule/resources holds what every scenario's tests share.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
import kept_playbook
from celery_fleet.layout import app_layout  # lib/ is on sys.path through fleetnode
from fleetnode import Node, wait_until
from scenario_inventory import inventory_hosts, inventory_vars

PROJECT = pathlib.Path(__file__).resolve().parents[3]

APP = "celerydemo"
LAYOUT = app_layout(APP)
FLOWER_SERVICE = LAYOUT["flower_service"]
BEAT_SERVICE = LAYOUT["beat_service"]
# pgrep -f patterns; "[c]" keeps them from matching the shell that runs pgrep.
FLOWER_PROCESS = "bin/[c]elery -A [^ ]+ flower"
BEAT_PROCESS = "bin/[c]elery -A [^ ]+ beat"


@dataclass(frozen=True)
class Target:
    """One converged container: broker, app, workers, Flower and beat."""

    container: str

    @property
    def vars(self) -> dict:
        return inventory_vars(self.container)

    @property
    def manager(self) -> str:
        return self.vars.get("celery_process_manager", "systemd")

    @property
    def node(self) -> Node:
        return Node(self.container, manager=self.manager, app=APP)

    @property
    def path(self) -> str:
        """Flower's path below its URL prefix ("" without one)."""
        prefix = self.vars.get("flower_url_prefix", "").strip("/")
        return f"/{prefix}" if prefix else ""

    @property
    def base_url(self) -> str:
        """Flower itself, on the container's loopback."""
        return "http://127.0.0.1:5555" + self.path

    @property
    def address(self) -> str:
        """The container's address on the Docker network (what another container reaches)."""
        return self.sh("hostname -I").stdout.split()[0]

    @property
    def https_url(self) -> str:
        """Flower through nginx over HTTPS, by the name in its certificate (the inventory name)."""
        return f"https://{self.container}" + self.path

    def https_options(self) -> list[str]:
        """curl's config lines that verify nginx with the scenario's CA (installed on every host by
        roles/flower) and reach this container by its name from any container."""
        ca = LAYOUT["flower_tls_ca_file"]
        return [f'cacert = "{ca}"', f'resolve = "{self.container}:443:{self.address}"']

    @property
    def user(self) -> tuple[str, str]:
        first = self.vars["flower_users"][0]
        return first["name"], first["password"]

    def secrets(self) -> dict[str, str]:
        """Every password of the deployment, by a name safe to print."""
        found = {f"flower_users[{u['name']}]": u["password"] for u in self.vars["flower_users"]}
        found.update(
            {
                f"flower_users[{u['name']}].previous_passwords[{i}]": previous
                for u in self.vars["flower_users"]
                for i, previous in enumerate(u.get("previous_passwords") or [])
            }
        )
        found.update({f"redis_acl_users[{u['name']}]": u["password"] for u in self.vars["redis_acl_users"]})
        found["redis_password"] = self.vars["redis_password"]
        return found

    def sh(
        self, script: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = self.node.run(script, stdin=stdin)
        if check:
            result.check_returncode()
        return result

    def http(
        self,
        path: str,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        base: str | None = None,
        options: list[str] | None = None,
        via: Target | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """GET (base, else base_url) + path from inside the container (or ``via``): (status,
        headers, body). ``options``: more lines of curl's config."""
        config = [f'url = "{base or self.base_url}{path}"', "silent", "include", *(options or [])]
        if auth is not None:
            config.append('user = "{}:{}"'.format(*auth))
        config.extend(f'header = "{name}: {value}"' for name, value in (headers or {}).items())
        result = (via or self).sh("curl -K -", stdin="\n".join(config) + "\n")
        head, _, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        status = int(lines[0].split()[1])
        parsed = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
        return status, parsed, body

    def api(self, path: str) -> object:
        status, _, body = self.http(path, auth=self.user)
        assert status == 200, f"{path}: {status} {body[:200]}"
        return json.loads(body)

    def service_active(self, name: str) -> bool:
        return self.node.is_running(name)

    def restart(self, name: str) -> None:
        result = self.node.restart(name)
        assert result.returncode == 0, f"{self.container}: restart {name}: {result.stdout} {result.stderr}"

    def service_log(self, name: str) -> str:
        return self.node.logs(name)

    def wait_for_flower(self, timeout: float = 30.0) -> float:
        """Seconds until /healthcheck answers 200 (fails after timeout)."""
        probe = f"curl -s -o /dev/null -w '%{{http_code}}' {self.base_url}/healthcheck"
        return wait_until(
            lambda: self.sh(probe, check=False).stdout.strip() == "200",
            timeout=timeout,
            interval=0.5,
            what=f"{self.container}: Flower's /healthcheck answering 200",
        )[1]


def ansible_playbook(args: list[str], extra_vars: dict | None = None) -> subprocess.CompletedProcess[str]:
    """`ansible-playbook -i <the scenario's inventory> <args>` from the project directory, as Molecule
    configured it; the caller checks the return code."""
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.cfg")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    venv = os.environ.get("VIRTUAL_ENV", str(PROJECT / ".venv"))
    command = [kept_playbook.command(os.path.join(venv, "bin", "ansible-playbook"))]
    command += ["-i", os.environ["MOLECULE_INVENTORY_FILE"], *args]
    if extra_vars is not None:
        command += ["-e", json.dumps(extra_vars)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=PROJECT, timeout=600)


@pytest.fixture(params=inventory_hosts(), scope="module")
def target(request: pytest.FixtureRequest) -> Target:
    return Target(request.param)
