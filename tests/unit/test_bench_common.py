"""bench/common.py: a benchmark's secrets reach bench-host through docker exec's environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import common


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict:
    """What dexec hands to subprocess.run (argv and env); docker itself never runs."""
    calls: dict = {}

    def run(argv, **kw):
        calls["argv"], calls["env"] = argv, kw.get("env")
        return subprocess.CompletedProcess(argv, 0, stdout="PONG\n", stderr="")

    monkeypatch.setattr(common.subprocess, "run", run)
    return calls


def test_dexec_passes_a_secret_by_name_only(seen: dict) -> None:
    assert common.dexec("redis-cli PING", secret_env={"REDISCLI_AUTH": "bench-only-s3cret"}) == "PONG\n"

    assert "bench-only-s3cret" not in " ".join(seen["argv"])
    assert seen["argv"][:4] == ["docker", "exec", "-e", "REDISCLI_AUTH"]
    assert seen["env"]["REDISCLI_AUTH"] == "bench-only-s3cret"


def test_dexec_without_secrets_inherits_the_environment(seen: dict) -> None:
    common.dexec("true")
    assert seen["argv"] == ["docker", "exec", common.HOST, "bash", "-ec", "true"]
    assert seen["env"] is None


def test_no_benchmark_puts_a_password_on_a_command_line() -> None:
    """No `-a <password>` / `REDISCLI_AUTH=<value>` built from the run's passwords in bench/."""
    for path in (Path(__file__).resolve().parents[2] / "bench").glob("*.py"):
        text = path.read_text()
        assert "-a {" not in text, path
        assert "REDISCLI_AUTH={" not in text, path
