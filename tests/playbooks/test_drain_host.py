"""playbooks/drain-host.yml refuses to drain the whole fleet unless told so (--limit or drain_all)."""

from __future__ import annotations

import subprocess

import pytest

REFUSAL = "no --limit was given"


@pytest.fixture
def drain(local_inventory, ansible_playbook):
    """Runs playbooks/drain-host.yml with the given arguments on two worker hosts on this machine's
    own connection, with no worker declared: past the guard the play has nothing to drain, so it
    succeeds without any service."""
    inventory = local_inventory({"celery_workers": {"w1": {}, "w2": {}}})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return ansible_playbook("playbooks/drain-host.yml", *args, inventory=inventory)

    return run


def test_without_limit_it_refuses_before_draining_anything(drain):
    result = drain()

    assert result.returncode != 0
    assert REFUSAL in result.stdout
    assert "Stop each worker consuming" not in result.stdout


@pytest.mark.parametrize("args", [("-l", "w1"), ("-e", "drain_all=true")], ids=["limit", "drain_all"])
def test_with_limit_or_drain_all_it_drains(drain, args):
    result = drain(*args)

    assert result.returncode == 0, result.stdout[-2000:]
    assert REFUSAL not in result.stdout
    assert "Stop each worker consuming" in result.stdout
