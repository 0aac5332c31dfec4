"""playbooks/drain-host.yml refuses to drain the whole fleet unless told so (--limit or drain_all)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REFUSAL = "no --limit was given"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    # Two worker hosts on this machine's own connection, with no worker declared: past the guard
    # the play has nothing to drain, so it succeeds without any service.
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"celery_workers": {"hosts": {"w1": local, "w2": local}}}))
    return path


def drain(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(TOP / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}
    command = [str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/drain-host.yml", *args]
    return subprocess.run(command, cwd=TOP, env=env, capture_output=True, text=True, check=False, timeout=300)


def test_without_limit_it_refuses_before_draining_anything(inventory):
    result = drain(inventory)

    assert result.returncode != 0
    assert REFUSAL in result.stdout
    assert "Stop each worker consuming" not in result.stdout


@pytest.mark.parametrize("args", [("-l", "w1"), ("-e", "drain_all=true")], ids=["limit", "drain_all"])
def test_with_limit_or_drain_all_it_drains(inventory, args):
    result = drain(inventory, *args)

    assert result.returncode == 0, result.stdout[-2000:]
    assert REFUSAL not in result.stdout
    assert "Stop each worker consuming" in result.stdout
