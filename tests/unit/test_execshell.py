"""molecule/resources/execshell.py: kept shells answer as one `docker exec` per command did.

A stand-in `docker` on PATH runs the agent on this machine (`exec -i <container> CMD...` runs CMD;
the container "stopped" fails as docker does), so the protocol, the timeouts, the lost shells and
the kept module runs (Ansible's pipelined module runs in a child forked from the agent, answering as
a new interpreter did) are tested without Docker.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
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


# --- Kept module runs: Ansible's pipelined module runs in a child forked from the agent ----------
# The payloads are built here: an AnsiballZ-shaped wrapper (the marker, ``zip_data='...'``, the zip
# put on sys.path from a temporary directory) around a zip with stand-ins for
# ``ansible.module_utils.basic`` and the loader, and a module that reports what it ran with: the
# ``basic`` and the ``extra`` module_utils it imported, its parent process (the agent or a shell),
# its argv, stdin and exit.

WRAPPER = """#!/usr/bin/python3
_ANSIBALLZ_WRAPPER = True


def _main(zip_data, module_fqn):
    import base64, os, shutil, sys, tempfile
    sys.path = [p for p in sys.path if p not in ("", ".")]
    temp = tempfile.mkdtemp(prefix="probe_payload_")
    try:
        path = os.path.join(temp, "payload.zip")
        with open(path, "wb") as out:
            out.write(base64.b64decode(zip_data))
        sys.path.insert(0, path)
        from ansible.module_utils._internal._ansiballz import _loader
        _loader.run_module(module_fqn)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    _main(zip_data='ZIP', module_fqn="ansible.modules.probe")
"""

LOADER = """import runpy
from ansible.module_utils import basic


def run_module(module_fqn):
    runpy.run_module(module_fqn, run_name="__main__", alter_sys=True)
    raise RuntimeError("the module did not exit")
"""

MODULE = """import json, os, sys
from ansible.module_utils import basic, extra

with open(f"/proc/{os.getppid()}/cmdline", "rb") as cmdline:
    parent = cmdline.read().decode(errors="replace")
if extra.END == "raise":
    raise ValueError("the module failed")
print(json.dumps({
    "basic": basic.MARK, "extra": extra.END, "forked": "kept_run" in parent,
    "argv": sys.argv[1:], "stdin": sys.stdin.read(), "name": __name__,
}))
sys.stderr.write("to stderr\\n")
sys.exit(int(extra.END))
"""


def payload(basic: str = "basic-1", end: str = "0") -> bytes:
    """An AnsiballZ-shaped wrapper whose module exits with ``end`` (or raises, "raise")."""
    files = {
        "ansible/__init__.py": "",
        "ansible/module_utils/__init__.py": "",
        "ansible/module_utils/basic.py": f"MARK = {basic!r}\n",
        "ansible/module_utils/extra.py": f"END = {end!r}\n",
        "ansible/module_utils/_internal/__init__.py": "",
        "ansible/module_utils/_internal/_ansiballz/__init__.py": "",
        "ansible/module_utils/_internal/_ansiballz/_loader.py": LOADER,
        "ansible/modules/__init__.py": "",
        "ansible/modules/probe.py": MODULE,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        for name, text in files.items():
            zipped.writestr(name, text)
    return WRAPPER.replace("ZIP", base64.b64encode(out.getvalue()).decode()).encode()


PIPELINED = ["/bin/sh", "-c", f"/bin/sh -c '{sys.executable} && sleep 0'"]


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """Where the agent writes its temporary files (its prepared payload)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return tmp_path


def module(stdin: bytes, argv: list[str] = PIPELINED) -> tuple[int, dict, str]:
    """A module run through a kept shell: exit status, the probe's report, stderr."""
    rc, out, err = execshell.run_argv("c1", argv, stdin)
    return rc, json.loads(out) if out.strip() else {}, err.decode()


@pytest.mark.usefixtures("private_tmp")
def test_module_runs_after_the_first_are_forked_and_answer_as_a_new_interpreter() -> None:
    first = module(payload())
    second = module(payload())
    for rc, result, err in (first, second):
        assert rc == 0 and err == "to stderr\n", (rc, err)
        assert result["basic"] == "basic-1" and result["extra"] == "0"
        assert result["argv"] == [] and result["stdin"] == "" and result["name"] == "__main__"
    # The first one prepared the agent and ran in a child of it too.
    assert first[1]["forked"] and second[1]["forked"]


@pytest.mark.usefixtures("private_tmp")
def test_a_module_utils_file_not_imported_before_forking_comes_from_the_payload_run() -> None:
    module(payload(end="0"))
    rc, result, err = module(payload(end="3"))
    assert (rc, result["extra"], result["forked"]) == (3, "3", True), err
    rc, result, err = module(payload(end="raise"))
    assert rc == 1 and result == {} and "ValueError: the module failed" in err, err


@pytest.mark.usefixtures("private_tmp")
def test_a_payload_whose_imported_sources_differ_runs_in_a_new_interpreter() -> None:
    assert module(payload(basic="basic-1"))[1]["forked"]
    rc, result, _ = module(payload(basic="basic-2"))
    assert rc == 0 and result["basic"] == "basic-2" and not result["forked"]
    # The agent still forks the payloads it prepared for.
    assert module(payload(basic="basic-1"))[1]["forked"]


@pytest.mark.usefixtures("private_tmp")
@pytest.mark.parametrize(
    "argv",
    [
        ["/bin/sh", "-c", f"/bin/sh -c 'MARK=1 {sys.executable} && sleep 0'"],
        ["/bin/sh", "-c", f"/bin/sh -c '{sys.executable} -E && sleep 0'"],
        ["/bin/sh", "-c", f"{sys.executable}"],
    ],
    ids=["environment", "interpreter options", "not pipelined"],
)
def test_other_commands_run_as_before(argv: list[str]) -> None:
    module(payload())
    rc, result, _ = module(payload(), argv)
    assert rc == 0 and result["basic"] == "basic-1" and not result["forked"]


@pytest.mark.usefixtures("private_tmp")
def test_an_environment_a_new_interpreter_would_start_otherwise_with_runs_as_before() -> None:
    """The whole environment given (the local connection's way): a PYTHON* or locale variable the
    agent did not start with means a new interpreter; any other variable is the child's."""
    base = dict(os.environ)
    assert module(payload())[1]["forked"]
    rc, out, _ = execshell.run_argv("c1", PIPELINED, payload(), env={**base, "MARK": "x"})
    assert rc == 0 and json.loads(out)["forked"]
    rc, out, _ = execshell.run_argv("c1", PIPELINED, payload(), env={**base, "PYTHONPATH": "/nowhere"})
    assert rc == 0 and not json.loads(out)["forked"]


def test_the_prepared_payload_is_removed_when_the_shell_ends(private_tmp: Path) -> None:
    module(payload())
    assert list(private_tmp.glob("kept-module-utils-*.zip"))
    # As in a container when its docker exec goes away: the agent's stdin ends.
    shell = execshell._take("c1")
    assert shell.proc.stdin is not None
    shell.proc.stdin.close()
    assert shell.proc.wait(timeout=10) == 0
    assert not list(private_tmp.glob("kept-module-utils-*.zip"))
