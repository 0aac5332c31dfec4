"""bench/common.py: a benchmark's secrets reach bench-host through docker exec's environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import common


def test_dexec_passes_a_secret_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}

    def run(argv, **kw):
        seen["argv"], seen["env"] = argv, kw.get("env")
        return subprocess.CompletedProcess(argv, 0, stdout="PONG\n", stderr="")

    monkeypatch.setattr(common.subprocess, "run", run)

    assert common.dexec("redis-cli PING", secret_env={"REDISCLI_AUTH": "bench-only-s3cret"}) == "PONG\n"

    assert "bench-only-s3cret" not in " ".join(seen["argv"])
    assert seen["argv"][:4] == ["docker", "exec", "-e", "REDISCLI_AUTH"]
    assert seen["env"]["REDISCLI_AUTH"] == "bench-only-s3cret"


def test_dexec_without_secrets_inherits_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}

    def run(argv, **kw):
        seen["argv"], seen["env"] = argv, kw.get("env")
        return subprocess.CompletedProcess(argv, 0, stdout="", stderr="")

    monkeypatch.setattr(common.subprocess, "run", run)
    common.dexec("true")
    assert seen["argv"] == ["docker", "exec", common.HOST, "bash", "-ec", "true"]
    assert seen["env"] is None


def test_no_benchmark_puts_a_password_on_a_command_line() -> None:
    """No `-a <password>` / `REDISCLI_AUTH=<value>` built from the run's passwords in bench/."""
    for path in (Path(__file__).resolve().parents[2] / "bench").glob("*.py"):
        text = path.read_text()
        assert "-a {" not in text, path
        assert "REDISCLI_AUTH={" not in text, path
