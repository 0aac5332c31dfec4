"""playbooks/retire-host.yml refuses to retire the whole inventory; with --limit, on a host that runs
nothing of the app, it finds nothing and changes nothing. playbooks/retire-services.yml likewise."""

from __future__ import annotations

import re
import subprocess

import pytest

REFUSAL = "name them with -l <host>"
# No host has services of this app: the plays find nothing on this machine and remove nothing.
APP = "cf-retire-test-absent"


@pytest.fixture
def play(local_inventory, ansible_playbook):
    """Runs playbooks/<playbook> with the given arguments on a worker host and a beat host, both on
    this machine's own connection."""
    inventory = local_inventory(
        {"celery_workers": {"w1": {}}, "celery_beat": {"w2": {}}}, celery_app_name=APP
    )

    def run(playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
        return ansible_playbook(f"playbooks/{playbook}", *args, inventory=inventory)

    return run


def changed(result: subprocess.CompletedProcess[str]) -> list[int]:
    return [int(n) for n in re.findall(r"changed=(\d+)", result.stdout)]


def test_retire_host_without_limit_refuses_before_looking_at_any_host(play):
    result = play("retire-host.yml")

    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert REFUSAL in output
    assert "Find the app's celery-fleet services" not in result.stdout


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_retire_host_with_limit_finds_nothing_and_changes_nothing(play, check):
    result = play("retire-host.yml", "-l", "w1", *(["--check"] if check else []))

    assert result.returncode == 0, result.stdout[-2000:]
    assert "Find the app's celery-fleet services" in result.stdout
    assert "Retiring " not in result.stdout
    assert changed(result) == [0]


@pytest.mark.parametrize("tags", [[], ["--tags", "beat"]], ids=["all", "tags-beat"])
def test_retire_services_finds_nothing_and_changes_nothing(play, tags):
    result = play("retire-services.yml", *tags)

    assert result.returncode == 0, result.stdout[-2000:]
    assert "Retiring " not in result.stdout
    assert changed(result) == [0, 0]
    # find warns about a directory that does not exist (/etc/supervisor/conf.d on most hosts).
    assert "Skipped '" not in result.stdout + result.stderr
