"""molecule/resources/callback/celery_fleet_kept_exec.py: the docker connection's commands and file
transfers go through the kept shells of the multiplexer; what it cannot carry keeps docker exec.

A stand-in `docker` on PATH logs each call and runs the command on this machine, so a real
ansible-playbook run with `community.docker.docker` is tested without Docker.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
PLUGIN_DIR = TOP / "molecule" / "resources" / "callback"

FAKE_DOCKER = """#!/usr/bin/env bash
echo "$*" | cut -c1-60 >> "$FAKE_DOCKER_LOG"
[ "$1" = exec ] || { echo "fake docker: unexpected $*" >&2; exit 2; }
shift
while [ "$1" = -e ]; do export "$2"; shift 2; done
[ "$1" = -i ] || { echo "fake docker: unexpected $*" >&2; exit 2; }
shift 2
exec "$@"
"""

PLAY = """- hosts: all
  gather_facts: false
  tasks:
    - name: Run a command
      ansible.builtin.command: echo "hello from $MARK"
      register: said
      changed_when: false
    - name: Put a file (a transfer, then the copy module)
      ansible.builtin.copy:
        content: "{{ inventory_hostname }}\\n\\u00e9\\n"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.txt"
        mode: "0600"
    - name: Show what was said
      ansible.builtin.debug:
        msg: "SAID {{ inventory_hostname }}: {{ said.stdout }}"
    - name: Ask a module what ran it
      parent_probe:
      register: probe
    - name: Show it
      ansible.builtin.debug:
        msg: "FORKED {{ inventory_hostname }}: {{ probe.forked }} in {{ probe.cwd }} with {{ probe.mark }}"
"""

# A module that says whether the agent ran it in a child of its own (execshell.py's kept module
# runs) or a new interpreter ran it (its parent the shell of the pipelined command).
PARENT_PROBE = """#!/usr/bin/python
import os
from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(argument_spec={})
with open(f"/proc/{os.getppid()}/cmdline", "rb") as cmdline:
    parent = cmdline.read()
module.exit_json(changed=False, forked=b"kept_run" in parent, cwd=os.getcwd(), mark=os.environ.get("MARK"))
"""


@pytest.fixture
def project(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "out").mkdir()
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "parent_probe.py").write_text(PARENT_PROBE)
    python = sys.executable
    (tmp_path / "inventory.yml").write_text(
        "all:\n"
        "  vars:\n"
        "    ansible_connection: community.docker.docker\n"
        f"    ansible_python_interpreter: {python}\n"
        f"    out_dir: {tmp_path / 'out'}\n"
        "  hosts:\n"
        "    kept: {}\n"
        # Extra environment for the exec: the multiplexer does not carry it, docker exec does.
        "    own:\n"
        "      ansible_docker_extra_env: {MARK: own-exec}\n"
        # Ansible's local connection: its module runs go to an agent kept on this machine.
        "    here:\n"
        "      ansible_connection: local\n"
    )
    directory = tempfile.mkdtemp(prefix="cf-kept-")
    socket_path = os.path.join(directory, "mux.sock")
    yield tmp_path, bin_dir, socket_path
    subprocess.run(["pkill", "-f", f"serve {socket_path}"], check=False)
    shutil.rmtree(directory, ignore_errors=True)


def _play(
    tmp_path: Path, bin_dir: Path, socket_path: str, *, callbacks: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
        "MARK": "the-environment",
        "ANSIBLE_CALLBACK_PLUGINS": str(PLUGIN_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": callbacks,
        "ANSIBLE_PIPELINING": "true",
        "ANSIBLE_LOCAL_TMP": str(tmp_path / "tmp"),
        "ANSIBLE_REMOTE_TMP": str(tmp_path / "remote-tmp"),
        "CELERY_FLEET_KEPT_EXEC_SOCKET": socket_path,
    }
    env.pop("ANSIBLE_CONFIG", None)
    if not callbacks:
        del env["ANSIBLE_CALLBACKS_ENABLED"]
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.yml", "play.yml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _calls(tmp_path: Path, host: str) -> list[str]:
    log = tmp_path / "docker.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if f"-i {host} " in line]


def test_commands_and_files_go_through_kept_shells(project):
    tmp_path, bin_dir, socket_path = project
    result = _play(tmp_path, bin_dir, socket_path, callbacks="celery_fleet_kept_exec")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SAID kept: hello from the-environment" in result.stdout
    assert "SAID own: hello from own-exec" in result.stdout
    for host in ("kept", "own"):
        assert (tmp_path / "out" / f"{host}.txt").read_text() == f"{host}\n\u00e9\n"
    assert not _calls(tmp_path, "here")
    # kept: Ansible's pipelined module runs are children of the agent (the module_utils imported
    # once); own: docker exec -e, a new interpreter per module as before.
    assert "FORKED kept: True" in result.stdout, result.stdout
    assert "FORKED own: False" in result.stdout, result.stdout
    # here: the local connection's module runs, forked by a local agent, with the task process's
    # environment and working directory.
    assert f"FORKED here: True in {tmp_path} with the-environment" in result.stdout, result.stdout
    assert "SAID here: hello from the-environment" in result.stdout
    assert (tmp_path / "out" / "here.txt").read_text() == "here\n\u00e9\n"
    # kept: one docker exec, the agent's, for every command and transfer of the run.
    kept = _calls(tmp_path, "kept")
    assert len(kept) == 1 and "python3 -c" in kept[0], kept
    # own: the extra environment needs docker exec -e, one per command, as without the plugin.
    own = _calls(tmp_path, "own")
    assert len(own) >= 4 and all(
        call.startswith("exec -e MARK=own-exec -i own /bin/sh -c") for call in own
    ), own


def test_without_the_plugin_every_command_is_a_docker_exec(project):
    tmp_path, bin_dir, socket_path = project
    result = _play(tmp_path, bin_dir, socket_path, callbacks="")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FORKED kept: False" in result.stdout, result.stdout
    assert f"FORKED here: False in {tmp_path} with the-environment" in result.stdout, result.stdout
    kept = _calls(tmp_path, "kept")
    assert len(kept) >= 4 and all(call.startswith("exec -i kept /bin/sh -c") for call in kept), kept
    assert not os.path.exists(socket_path)


def test_the_default_socket_is_the_users_and_follows_the_multiplexers_code(monkeypatch):
    spec = importlib.util.spec_from_file_location("kept_exec", PLUGIN_DIR / "celery_fleet_kept_exec.py")
    assert spec and spec.loader
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    path = plugin.default_socket()
    assert f"celery-fleet-kept-exec-{os.getuid()}" in path and len(path) < 100
    assert plugin.default_socket() == path
    # Another version of execshell.py: another multiplexer.
    monkeypatch.setattr(plugin.execshell, "__file__", str(PLUGIN_DIR / "celery_fleet_kept_exec.py"))
    assert plugin.default_socket() != path
