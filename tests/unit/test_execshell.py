"""molecule/resources/execshell.py: kept shells answer as one `docker exec` per command did.

A stand-in `docker` on PATH runs the agent on this machine (`exec -i <container> CMD...` runs CMD;
the container "stopped" fails as docker does), so the protocol, the timeouts and the lost shells are
tested without Docker.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
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


# The multiplexer (execshell.serve / execshell.ask): Ansible's commands through kept shells.


@pytest.fixture
def mux(monkeypatch):
    """A socket path of this test's own (short: UNIX socket paths are limited to ~108 bytes); the
    multiplexers started on it are stopped afterwards."""
    directory = tempfile.mkdtemp(prefix="cf-mux-")
    path = os.path.join(directory, "mux.sock")
    monkeypatch.setattr(execshell, "IDLE", 30.0)
    yield path
    subprocess.run(["pkill", "-f", f"serve {path}"], check=False)
    shutil.rmtree(directory, ignore_errors=True)


def mux_pids(path: str) -> set[str]:
    found = subprocess.run(["pgrep", "-f", f"serve {path}"], capture_output=True, text=True, check=False)
    return set(found.stdout.split())


def test_the_multiplexer_starts_on_first_use_and_answers_as_docker_exec(mux):
    # Bytes that are no text either way: stdin, stdout and stderr arrive as they are.
    blob = bytes(range(256)) * 4
    rc, out, err = execshell.ask(mux, "c1", ["/bin/sh", "-c", "cat; printf '\\377' >&2; exit 4"], blob)
    assert (rc, out, err) == (4, blob, b"\xff")
    (pid,) = mux_pids(mux)
    # The same multiplexer and the same kept shell serve the next commands.
    shells = {execshell.ask(mux, "c1", ["/bin/sh", "-c", "echo $PPID"])[1] for _ in range(10)}
    assert mux_pids(mux) == {pid}
    assert len(shells) == 1
    # The argv as given, no shell of the agent's own in between.
    assert execshell.ask(mux, "c1", ["printf", "%s|", "a b", "$HOME"])[1] == b"a b|$HOME|"
    # A command killed by a signal: 128 + its number, as docker exec says.
    assert execshell.ask(mux, "c1", ["/bin/sh", "-c", "kill -9 $$"])[0] == 137
    assert oct(os.stat(os.path.dirname(mux)).st_mode & 0o777) == oct(0o700)


def test_commands_at_once_run_at_once(mux):
    execshell.ask(mux, "c1", ["true"])
    answers: list[bytes] = []

    def one() -> None:
        answers.append(execshell.ask(mux, "c1", ["/bin/sh", "-c", "sleep 0.6; echo t"])[1])

    threads = [threading.Thread(target=one) for _ in range(4)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [b"t\n"] * 4
    assert time.monotonic() - began < 1.8


def test_processes_that_find_no_multiplexer_at_once_start_one(mux):
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(execshell.ask(mux, "c1", ["true"])[0]))
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [0] * 5
    assert len(mux_pids(mux)) == 1


def test_a_stopped_container_and_a_lost_exec_answer_as_docker_does(mux):
    rc, _, err = execshell.ask(mux, "stopped", ["true"])
    assert rc == 1 and b"is not running" in err

    # The container went away under the command (its exec ended): 137.
    def kill_the_agents() -> None:
        time.sleep(0.5)
        # This multiplexer's shells only (the stand-in docker execs the agent in their place).
        for pid in mux_pids(mux):
            subprocess.run(["pkill", "-9", "-P", pid], check=False)

    killer = threading.Thread(target=kill_the_agents)
    killer.start()
    rc, out, _ = execshell.ask(mux, "c1", ["/bin/sh", "-c", "sleep 5; echo done"])
    killer.join()
    assert (rc, out) == (execshell.LOST, b"")
    assert execshell.ask(mux, "c1", ["echo", "back"])[1] == b"back\n"


def test_it_ends_when_idle_and_another_starts_on_the_next_command(mux, monkeypatch):
    monkeypatch.setattr(execshell, "IDLE", 1.0)
    execshell.ask(mux, "c1", ["true"])
    (first,) = mux_pids(mux)
    deadline = time.monotonic() + 10
    while mux_pids(mux) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not mux_pids(mux) and not os.path.exists(mux)
    assert execshell.ask(mux, "c1", ["echo", "again"])[1] == b"again\n"
    assert mux_pids(mux) - {first}


def test_a_multiplexer_that_died_is_replaced(mux):
    execshell.ask(mux, "c1", ["true"])
    subprocess.run(["pkill", "-9", "-f", f"serve {mux}"], check=True)
    time.sleep(0.2)
    assert os.path.exists(mux)  # its socket is left behind
    assert execshell.ask(mux, "c1", ["echo", "again"])[1] == b"again\n"


def test_a_socket_directory_others_can_enter_is_refused(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(execshell.MultiplexerError, match="0700"):
        execshell.ask(str(open_dir / "mux.sock"), "c1", ["true"])


def test_sweep_closes_the_shells_whose_exec_ended():
    assert run("true").returncode == 0
    assert run("true", container="c2").returncode == 0
    (shell,) = execshell._idle["c2"]
    shell.proc.kill()
    shell.proc.wait()
    execshell.sweep()
    assert "c2" not in execshell._idle
    assert len(execshell._idle["c1"]) == 1
