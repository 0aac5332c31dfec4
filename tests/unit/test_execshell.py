"""molecule/resources/execshell.py: kept shells answer as one `docker exec` per command did.

A stand-in `docker` on PATH runs the agent on this machine (`exec -i <container> CMD...` runs CMD;
the container "stopped" fails as docker does), so the protocol, the timeouts and the lost shells are
tested without Docker.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "execshell", Path(__file__).resolve().parents[2] / "molecule" / "resources" / "execshell.py"
)
assert _spec and _spec.loader
execshell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(execshell)

FAKE_DOCKER = """#!/usr/bin/env bash
[ "$1" = exec ] && [ "$2" = -i ] || { echo "fake docker: unexpected $*" >&2; exit 2; }
if [ "$3" = stopped ]; then
  echo "Error response from daemon: Container 0123abcd is not running" >&2
  exit 1
fi
shift 3
exec "$@"
"""


@pytest.fixture(autouse=True)
def fake_docker(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setattr(execshell, "GRACE", 5.0)
    yield
    execshell.close_all()


def run(command: str, container: str = "c1", **options) -> subprocess.CompletedProcess[str]:
    return execshell.run(container, ["docker", "exec", container, command], command, **options)


def test_status_output_stdin_and_secret_environment():
    result = run("echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert run("cat", stdin="line 1\nline 2").stdout == "line 1\nline 2"
    secret = run('printf %s "$CF_SECRET"', env={"CF_SECRET": "s3cr3t"})  # TEST ONLY
    assert secret.stdout == "s3cr3t"
    assert "s3cr3t" not in " ".join(secret.args)


def test_one_shell_serves_the_commands_of_a_thread():
    for _ in range(20):
        assert run("true").returncode == 0
    assert len(execshell._idle["c1"]) == 1
    pids = {run("echo $PPID").stdout for _ in range(5)}
    assert len(pids) == 1, pids  # the same agent ran them all


def test_threads_run_at_once_on_their_own_shells():
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(run("sleep 0.6; echo t").stdout)) for _ in range(3)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["t\n"] * 3
    assert time.monotonic() - began < 1.5
    assert len(execshell._idle["c1"]) == 3


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    marker = tmp_path / "late"
    with pytest.raises(subprocess.TimeoutExpired):
        run(f"(sleep 2; touch {marker}) & sleep 3", timeout=0.5)
    time.sleep(2.5)
    assert not marker.exists()
    # The agent killed the command and answered: its shell serves the next command.
    assert len(execshell._idle["c1"]) == 1
    assert run("echo next").stdout == "next\n"


def test_a_shell_that_ended_between_commands_is_replaced():
    assert run("true").returncode == 0
    (shell,) = execshell._idle["c1"]
    shell.proc.kill()
    shell.proc.wait()
    assert run("echo again").stdout == "again\n"


def test_a_shell_lost_under_its_command_fails_it_as_docker_exec_did(monkeypatch):
    taken: list = []
    take = execshell._take

    def recorded(container: str):
        taken.append(take(container))
        return taken[-1]

    monkeypatch.setattr(execshell, "_take", recorded)

    def kill_the_shell() -> None:
        time.sleep(0.5)
        taken[-1].proc.kill()

    killer = threading.Thread(target=kill_the_shell)
    killer.start()
    result = run("sleep 5; echo done")
    killer.join()
    assert result.returncode == execshell.LOST and result.stdout == ""
    assert run("echo back").stdout == "back\n"


def test_a_container_that_is_not_running_answers_as_docker_does():
    result = run("echo x", container="stopped")
    assert result.returncode == 1
    assert "is not running" in result.stderr
