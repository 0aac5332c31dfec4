"""Callback plugin of the test harness: Ansible's commands in the scenarios' containers go through
kept ``docker exec`` shells instead of one ``docker exec`` each.

The docker connection (``community.docker.docker``, what Molecule's inventory names) runs every
command Ansible sends a host (a module run, a temporary directory, a file transfer) as its own
``docker exec -i <container> /bin/sh -c ...``: ~77 ms of the machine's CPU each beyond the command
(the docker CLI, dockerd, containerd, the shim, runc), ~3,200 times in a run of the suite. SSH users
pay no such start per command (ControlPersist keeps one connection), and a connection plugin cannot
keep one itself: Ansible forks a new process for every task and host. So this plugin, in the run's
first process (whose task processes inherit it), makes that connection send each command to a
multiplexer (``molecule/resources/execshell.py``: a process started on first use that keeps one
``docker exec -i <container> python3 -c AGENT`` per container and command at once, and ends when
idle), which runs the same ``/bin/sh -c ...`` argv with the same stdin in the same container as
root, with the exec's environment and working directory, and answers with its exit status, stdout
and stderr, as ``docker exec`` did. A file goes as the stdin of the same ``dd`` command. A pipelined
module run the agent runs in a child forked from itself with the module_utils every module imports
already imported (the module and everything else from the payload being run; execshell.py's AGENT
says when and how): ~0.15 CPU-s less in the container per module run. The local connection's
pipelined module runs (the unit stage's plays, the scenarios' local tasks) go the same way to an
agent the multiplexer keeps on this machine under the module's interpreter, with the task process's
whole environment and the connection's working directory (the unit stage: 222 -> 167 CPU-s).

What the multiplexer does not carry keeps the connection's own path: a remote user (``docker exec
-u``), extra environment, a working directory, privileged execs, docker's extra arguments
(``DOCKER_HOST``), a become method that waits for a password prompt, a file over 16 MiB; fetching
a file stays ``docker cp``. Enabled in ``.config/molecule/config.yml`` only: the project's
``ansible.cfg`` (the sandbox, the benchmarks) stays stock.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

from ansible import constants as C
from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.callback import CallbackBase
from ansible.plugins.connection import BUFSIZE, ConnectionBase
from ansible.plugins.connection import local as local_connection
from ansible.utils.display import Display
from ansible_collections.community.docker.plugins.connection import docker as docker_connection

DOCUMENTATION = r"""
name: celery_fleet_kept_exec
type: aggregate
short_description: The docker connection's commands through kept docker exec shells
description:
  - Makes C(community.docker.docker) send each command and file transfer to a multiplexer process
    (molecule/resources/execshell.py) that keeps one C(docker exec) per container and concurrent
    command, instead of starting a C(docker exec) per command.
  - Makes the local connection send its pipelined module runs (no become) to an agent the same
    multiplexer keeps on this machine under the module's interpreter.
requirements:
  - enabled in callbacks_enabled
options:
  socket:
    description: The multiplexer's UNIX socket (its directory is made 0700).
    type: path
    default: ~
    env:
      - name: CELERY_FLEET_KEPT_EXEC_SOCKET
"""

display = Display()

_spec = importlib.util.spec_from_file_location(
    "celery_fleet_execshell", Path(__file__).resolve().parents[1] / "execshell.py"
)
assert _spec and _spec.loader
execshell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(execshell)

# A file transfer goes whole through the multiplexer's memory: bigger ones keep docker's own path.
LARGEST_FILE = 16 * 1024 * 1024


def default_socket() -> str:
    """The user's multiplexer socket for this version of execshell.py: a checkout with other code
    never talks to a multiplexer another one started (it ends only when idle)."""
    version = hashlib.sha256(Path(execshell.__file__).read_bytes()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"celery-fleet-kept-exec-{os.getuid()}", f"mux-{version}.sock")


def keeps(connection: Any, sudoable: bool) -> bool:
    """Whether the multiplexer can run this connection's command as its ``docker exec`` would."""
    become = connection.become
    return (
        connection.remote_user is None
        and not connection._docker_args
        and not connection.get_option("extra_env")
        and connection.get_option("working_dir") is None
        and not connection.get_option("privileged")
        and not (sudoable and become is not None and become.expect_prompt())
    )


def kept_exec_connection(socket_path: str) -> None:
    """Route the docker connection's exec_command and put_file through the multiplexer (once per
    process)."""
    connection_class = docker_connection.Connection
    if getattr(connection_class.exec_command, "celery_fleet_kept", False):
        return
    docker_exec, docker_put = connection_class.exec_command, connection_class.put_file

    def ask(connection: Any, argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
        container = connection.get_option("remote_addr")
        try:
            return execshell.ask(socket_path, container, argv, stdin)
        except (OSError, execshell.MultiplexerError) as exc:
            raise AnsibleConnectionFailure(f"kept docker exec into {container}: {exc}") from exc

    def exec_command(self: Any, cmd: str, in_data: bytes | None = None, sudoable: bool = False) -> Any:
        self._set_conn_data()
        if not keeps(self, sudoable):
            return docker_exec(self, cmd, in_data=in_data, sudoable=sudoable)
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)  # connects
        argv = [self._play_context.executable, "-c", to_text(cmd, errors="surrogate_or_strict")]
        display.vvv(f"EXEC (kept docker exec) {argv}", host=self.get_option("remote_addr"))
        return ask(self, argv, in_data or b"")

    def put_file(self: Any, in_path: str, out_path: str) -> None:
        self._set_conn_data()
        b_in_path = to_bytes(in_path, errors="surrogate_or_strict")
        small = os.path.exists(b_in_path) and os.path.getsize(b_in_path) <= LARGEST_FILE
        if not small or not keeps(self, False):
            return docker_put(self, in_path, out_path)  # its own errors for a missing file too
        ConnectionBase.put_file(self, in_path, out_path)
        display.vvv(f"PUT (kept docker exec) {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        with open(b_in_path, "rb") as source:
            data = source.read()
        # The connection's own command: dd from stdin (count=0 for an empty file).
        target = shlex.quote(self._prefix_login_path(out_path))
        count = "" if data else " count=0"
        argv = [self._play_context.executable, "-c", f"dd of={target} bs={BUFSIZE}{count}"]
        rc, out, err = ask(self, argv, data)
        if rc != 0:
            raise AnsibleError(
                f"failed to transfer file {in_path} to {out_path}:\n{to_text(out)}\n{to_text(err)}"
            )
        return None

    exec_command.celery_fleet_kept = True  # type: ignore[attr-defined]
    connection_class.exec_command = exec_command
    connection_class.put_file = put_file


def kept_local_module_runs(socket_path: str) -> None:
    """Send the local connection's pipelined module runs to an agent the multiplexer keeps on this
    machine under the same interpreter (once per process): the module runs in a child the agent
    forks with the module_utils every module imports already imported, with this process's whole
    environment and the working directory the connection would give it. Anything else (a become,
    another command) runs as before."""
    connection_class = local_connection.Connection
    if getattr(connection_class.exec_command, "celery_fleet_kept", False):
        return
    local_exec = connection_class.exec_command

    def exec_command(self: Any, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> Any:
        text = to_text(cmd, errors="surrogate_or_strict") if isinstance(cmd, (str, bytes)) else None
        interpreter = execshell.module_run_interpreter(text, in_data or b"") if text is not None else None
        becomes = sudoable and self.become is not None and bool(self.become._id)
        if interpreter is None or becomes:
            return local_exec(self, cmd, in_data=in_data, sudoable=sudoable)
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        executable = C.DEFAULT_EXECUTABLE.split()[0] if C.DEFAULT_EXECUTABLE else "/bin/sh"
        display.vvv(f"EXEC (kept local agent) {text}", host=self._play_context.remote_addr)
        try:
            return execshell.ask(
                socket_path,
                execshell.LOCAL + interpreter,
                [executable, "-c", text],
                in_data or b"",
                env=dict(os.environ),
                # Ansible sets the local connection's cwd (bytes) to the playbook's directory.
                cwd=to_text(self.cwd, errors="surrogate_or_strict") if self.cwd else os.getcwd(),
            )
        except (OSError, execshell.MultiplexerError) as exc:
            raise AnsibleConnectionFailure(f"kept local agent: {exc}") from exc

    exec_command.celery_fleet_kept = True  # type: ignore[attr-defined]
    connection_class.exec_command = exec_command


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "celery_fleet_kept_exec"
    CALLBACK_NEEDS_ENABLED = True

    def set_options(self, task_keys: Any = None, var_options: Any = None, direct: Any = None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        socket_path = self.get_option("socket") or default_socket()
        kept_exec_connection(socket_path)
        kept_local_module_runs(socket_path)
