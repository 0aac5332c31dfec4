"""Kept shells into the scenarios' containers: one ``docker exec`` serves many commands.

:class:`fleetnode.Node` ran every command as its own ``docker exec``: ~77 ms of the machine's CPU
each beyond the command itself (the docker CLI, dockerd, containerd, the shim, runc: 200 runs of
``docker exec <container> true`` on an idle machine), and the tests ran ~2,900 of them per suite,
most in loops that wait for a failover or a service. A :class:`Shell` is one ``docker exec -i
<container> python3 -c AGENT`` whose agent reads one request per line on its stdin (the command,
its stdin, extra environment variables, its timeout, as JSON), runs ``bash -c <command>`` with
them, and answers with one line (exit status, stdout, stderr): what one ``docker exec`` per command
did, as root, in the exec's environment, from the same working directory. The SSH scenario's
``SshNode`` keeps its one multiplexed connection the same way.

:func:`run` takes an idle shell of the container (a new one when none is idle: threads run their
commands at once, each on its own shell) and gives it back afterwards. A shell whose process ended
(the container stopped, restarted or was cut off) is replaced: the agent acknowledges each request
before it runs it, and a request no agent took goes to a new shell once; a shell lost while its
command ran answers as ``docker exec`` would, with a failure (exit status 137), and is dropped. A
container that is not running answers with docker's own exit status and message ("... is not
running"), as before. A command still running after its timeout is killed with its process group
and :class:`subprocess.TimeoutExpired` raised, as ``subprocess.run`` does. Secrets travel in the request
on the shell's stdin, never in argv.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import threading
import time
from collections.abc import Mapping

# Runs in the container (Python 3 is there for Ansible). No word in it may match the tests' pgrep
# patterns (the app's, Celery's, Flower's, Redis's process names): it shows in `ps`.
AGENT = r"""
import json, os, signal, subprocess, sys
for line in sys.stdin:
    req = json.loads(line)
    sys.stdout.write("{}\n")
    sys.stdout.flush()
    env = dict(os.environ, **req["env"])
    proc = subprocess.Popen(["bash", "-c", req["cmd"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(req["stdin"].encode(), timeout=req["timeout"])
        expired = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        expired = True
    reply = {"rc": proc.returncode, "out": out.decode(errors="replace"),
             "err": err.decode(errors="replace"), "expired": expired}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
"""
# How long past a command's own timeout the agent may take to answer before the shell is dropped.
GRACE = 30.0
LOST = 137  # what `docker exec` returns when the container goes away under its command


class ShellLost(Exception):
    """The shell ended before its agent took the request (nothing ran): docker's exit status and
    message, when the exec itself failed."""

    def __init__(self, container: str, returncode: int | None, stderr: str) -> None:
        super().__init__(f"{container}: {stderr.strip() or 'the shell ended'}")
        self.returncode = returncode
        self.stderr = stderr


class Shell:
    """One kept ``docker exec`` into ``container`` running the agent."""

    def __init__(self, container: str) -> None:
        self.container = container
        self.proc = subprocess.Popen(
            ["docker", "exec", "-i", container, "python3", "-c", AGENT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # docker's own errors ("... is not running"); the agent writes nothing there.
            stderr=subprocess.PIPE,
        )
        self._buffer = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> str:
        """End the shell; what docker wrote on its stderr."""
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        errors = ""
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            errors = self.proc.stderr.read().decode(errors="replace")
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):  # stdin's unsent request: the shell is gone
                    stream.close()
        return errors

    def lost(self) -> ShellLost:
        errors = self.close()
        return ShellLost(self.container, self.proc.returncode, errors)

    def _readline(self, deadline: float) -> bytes | None:
        """One line of the agent's answer; b"" when the shell ended first, None when the deadline
        passed."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def run(
        self, argv: list[str], command: str, stdin: str, timeout: float, env: Mapping[str, str]
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command``; ``argv`` is only what the result and a timeout report as the command."""
        request = json.dumps({"cmd": command, "stdin": stdin, "env": dict(env), "timeout": timeout})
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(request.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self.lost() from exc
        # The agent acknowledges a request before it runs it: a shell that ends (or stays silent)
        # before that ran nothing, and the command goes to another shell.
        if not self._readline(time.monotonic() + GRACE):
            raise self.lost()
        line = self._readline(time.monotonic() + timeout + GRACE)
        if line is None:  # the agent neither answered nor ended: stuck
            self.close()
            raise subprocess.TimeoutExpired(argv, timeout)
        if not line:  # the exec ended (the container stopped or restarted under the command)
            self.close()
            gone = f"{self.container}: the exec ended under the command"
            return subprocess.CompletedProcess(argv, LOST, "", gone)
        reply = json.loads(line)
        if reply["expired"]:
            raise subprocess.TimeoutExpired(argv, timeout, output=reply["out"], stderr=reply["err"])
        return subprocess.CompletedProcess(argv, reply["rc"], reply["out"], reply["err"])


_idle: dict[str, list[Shell]] = {}
_lock = threading.Lock()


def _take(container: str) -> Shell:
    with _lock:
        shells = _idle.setdefault(container, [])
        while shells:
            shell = shells.pop()
            if shell.alive():
                return shell
            shell.close()
    return Shell(container)


def _give(shell: Shell) -> None:
    """Back to the idle ones if it still runs; a shell that ended is closed."""
    with _lock:
        if shell.alive():
            _idle.setdefault(shell.container, []).append(shell)
            return
    shell.close()


def run(
    container: str,
    argv: list[str],
    command: str,
    *,
    stdin: str = "",
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``bash -c command`` as root in ``container`` through a kept shell (see the module's text)."""
    for attempt in (1, 2):
        shell = _take(container)
        try:
            result = shell.run(argv, command, stdin, timeout, env or {})
        except ShellLost as lost:
            _give(shell)
            if attempt == 2:
                returncode = lost.returncode if lost.returncode not in (None, 0, -9) else LOST
                return subprocess.CompletedProcess(argv, returncode, "", lost.stderr or str(lost))
            continue
        except subprocess.TimeoutExpired:
            # The agent killed the command and answered (the shell serves the next one), or it was
            # stuck and Shell.run ended it.
            _give(shell)
            raise
        _give(shell)
        return result
    raise AssertionError("unreachable")


def close_all() -> None:
    """End every kept shell (the containers' end does it too)."""
    with _lock:
        shells = [shell for group in _idle.values() for shell in group]
        _idle.clear()
    for shell in shells:
        shell.close()


atexit.register(close_all)
