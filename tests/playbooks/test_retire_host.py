"""playbooks/retire-host.yml refuses to retire the whole inventory; with --limit, on a host that runs
nothing of the app, it finds nothing and changes nothing. playbooks/retire-services.yml likewise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REFUSAL = "name them with -l <host>"
# No host has services of this app: the plays find nothing on this machine and remove nothing.
APP = "cf-retire-test-absent"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    path = tmp_path / "hosts.yml"
    hosts = {
        "all": {"vars": {"celery_app_name": APP}},
        "celery_workers": {"hosts": {"w1": local}},
        "celery_beat": {"hosts": {"w2": local}},
    }
    path.write_text(yaml.safe_dump(hosts))
    return path


def play(inventory: Path, playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(TOP / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}
    command = [str(BIN / "ansible-playbook"), "-i", str(inventory), f"playbooks/{playbook}", *args]
    return subprocess.run(command, cwd=TOP, env=env, capture_output=True, text=True, check=False, timeout=300)


def changed(result: subprocess.CompletedProcess[str]) -> list[int]:
    return [int(n) for n in re.findall(r"changed=(\d+)", result.stdout)]


def test_retire_host_without_limit_refuses_before_looking_at_any_host(inventory):
    result = play(inventory, "retire-host.yml")

    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert REFUSAL in output
    assert "Find the app's celery-fleet services" not in result.stdout


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_retire_host_with_limit_finds_nothing_and_changes_nothing(inventory, check):
    result = play(inventory, "retire-host.yml", "-l", "w1", *(["--check"] if check else []))

    assert result.returncode == 0, result.stdout[-2000:]
    assert "Find the app's celery-fleet services" in result.stdout
    assert "Retiring " not in result.stdout
    assert changed(result) == [0]


@pytest.mark.parametrize("tags", [[], ["--tags", "beat"]], ids=["all", "tags-beat"])
def test_retire_services_finds_nothing_and_changes_nothing(inventory, tags):
    result = play(inventory, "retire-services.yml", *tags)

    assert result.returncode == 0, result.stdout[-2000:]
    assert "Retiring " not in result.stdout
    assert changed(result) == [0, 0]
    # find warns about a directory that does not exist (/etc/supervisor/conf.d on most hosts).
    assert "Skipped '" not in result.stdout + result.stderr
