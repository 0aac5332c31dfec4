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

Ansible's own commands use the same shells through a multiplexer process (:func:`serve`, :func:`ask`;
the end of this file says why and how): there the agent runs the given argv itself with bytes in and
out and no time limit, as ``docker exec -i <container> argv...`` did, except Ansible's pipelined
module runs, which it runs in a child forked from itself with the module_utils already imported
(see AGENT).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import importlib.util
import inspect
import json
import math
import os
import re
import select
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

# The Ansible callback loads this file by its path (molecule/resources is not on its sys.path).
_spec = importlib.util.spec_from_file_location(
    "celery_fleet_as_main", os.path.join(os.path.dirname(__file__), "as_main.py")
)
_as_main = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_as_main)

# Ansible's pipelined module run: the command its connections start (the interpreter in the group),
# and the marker of the AnsiballZ wrapper it gets on stdin. The agent (below) is given both.
MODULE_RUN = re.compile(r"/bin/sh -c '(/[^' ]+) && sleep 0'")
WRAPPER_MARKER = b"_ANSIBALLZ_WRAPPER = True"


def module_run_interpreter(command: str, stdin: bytes) -> str | None:
    """The interpreter of a pipelined module run (``command`` as its connection starts it, the
    wrapper on ``stdin``); None for any other command."""
    found = MODULE_RUN.fullmatch(command)
    return found.group(1) if found and WRAPPER_MARKER in stdin else None


# Runs in the container (Python 3 is there for Ansible). No word in it may match the tests' pgrep
# patterns (the app's, Celery's, Flower's, Redis's process names): it shows in `ps`.
#
# Kept module runs (kept_run): a pipelined module run of Ansible is `/bin/sh -c '<python> && sleep 0'`
# with the AnsiballZ wrapper on stdin; the new interpreter spent most of its ~0.19 CPU-s importing
# the module_utils every module imports (ansible.module_utils.basic and what it pulls in: dataclasses
# built at import time, which no bytecode saves). The agent imports them once, from the first such
# payload (written to a private temporary zip, removed when the agent ends), and runs each later
# module run in a child forked from itself: a new session, stdin /dev/null (the interpreter had read
# the whole of it as the script), stdout and stderr to pipes, the request's environment, argv
# [""], a fresh __main__, the wrapper's source compiled as "<stdin>", SystemExit and uncaught
# exceptions ending it as the interpreter would (threads joined, atexit run). The child's first
# import a finder sees after the wrapper put its payload zip on sys.path points the pre-imported
# packages' __path__ at that zip, so every module or module_utils not imported before forking comes
# from the payload being run. Only when it is exactly that: the command as above with the agent's
# own interpreter (no environment assignments, no options), the wrapper's marker, and a payload whose
# copies of every pre-imported module's source are byte for byte those imported (checked once per
# payload); anything else runs as before. A no-op converge of the workers scenario: 4.0-4.2 -> 1.4-1.6
# CPU-s in the container.
_AGENT = r"""
import base64, json, os, signal, subprocess, sys

# Ansible's pipelined module runs (kept_run below): a child forked from this process once it has
# imported the module_utils every module imports, instead of a new interpreter that imports them.
STARTUP_LOCALE = ("LANG", "LC_ALL", "LC_CTYPE")
kept = {"payload": None, "files": None, "verdicts": {}, "off": False}


def kept_sums(zipped, names):
    # The digest of each named file of a payload's zip (None for one it lacks).
    import hashlib, io, zipfile
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        listed = set(z.namelist())
        return {n: hashlib.sha256(z.read(n)).hexdigest() if n in listed else None for n in names}


def kept_prepare(zipped):
    import tempfile
    fd, path = tempfile.mkstemp(prefix="kept-module-utils-", suffix=".zip")
    with os.fdopen(fd, "wb") as out:
        out.write(zipped)
    sys.path.insert(0, path)
    try:
        import ansible.module_utils.basic
        from ansible.module_utils._internal._ansiballz import _loader
    finally:
        sys.path.remove(path)
    prefix = path + "/"
    names = [m.__file__[len(prefix):] for m in list(sys.modules.values())
             if (getattr(m, "__file__", None) or "").startswith(prefix)]
    # The sources of the modules imported (a .pyc loaded from the zip: its .py beside it).
    sums = kept_sums(zipped, names + [n[:-1] for n in names if n.endswith(".pyc")])
    sources = [n[:-1] if n.endswith(".pyc") and sums[n[:-1]] else n for n in names]
    kept["files"] = {n: sums[n] for n in sources}
    kept["payload"] = path

    zygote = os.getpid()
    before = set(sys.path)

    class Repoint:
        # In a child, at its first import that a finder sees once the wrapper put its payload on
        # sys.path: the packages imported above find their submodules in that payload (the first
        # zip on sys.path that the agent's own sys.path lacks), as in a new interpreter.
        done = False

        def find_spec(self, name, path=None, target=None):
            if Repoint.done or os.getpid() == zygote:
                return None
            zips = [p for p in sys.path if p not in before and p.endswith(".zip") and os.path.isfile(p)]
            if zips:
                Repoint.done = True
                for m in list(sys.modules.values()):
                    paths = getattr(m, "__path__", None)
                    if isinstance(paths, list):
                        paths[:] = [zips[0] + "/" + p[len(prefix):] if p.startswith(prefix) else p
                                    for p in paths]
            return None

    sys.meta_path.insert(0, Repoint())


def kept_usable(zipped):
    import hashlib
    digest = hashlib.sha256(zipped).hexdigest()
    if digest not in kept["verdicts"]:
        kept["verdicts"][digest] = kept_sums(zipped, kept["files"]) == kept["files"]
    return kept["verdicts"][digest]


def kept_child(source, env, cwd, pipes):
    import io
    rc = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(pipes[1], 1)
        os.dup2(pipes[3], 2)
        for fd in set((null,) + tuple(pipes)) - {0, 1, 2}:
            os.close(fd)
        if cwd is not None:
            os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=sys.__stdin__.encoding,
                                     errors=sys.__stdin__.errors)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding=sys.__stdout__.encoding,
                                      errors=sys.__stdout__.errors)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding=sys.__stderr__.encoding,
                                      errors=sys.__stderr__.errors, line_buffering=True)
        rc = run_as_main(compile(source, "<stdin>", "exec"), [""])
    finally:
        exit_now(rc)


def kept_run(argv, stdin, env, cwd, timeout):
    import re, selectors, time
    if kept["off"] or len(argv) != 3 or argv[:2] != ["/bin/sh", "-c"]:
        return None
    if WRAPPER_MARKER not in stdin:
        return None
    found = re.fullmatch(MODULE_RUN, argv[2])
    if not found or os.path.realpath(found.group(1)) != os.path.realpath(sys.executable):
        return None
    # What a new interpreter reads from its environment as it starts (sys.path, flags, the stdio
    # encoding) must be what this one started with.
    startup = [k for k in set(env) | set(os.environ) if k.startswith("PYTHON") or k in STARTUP_LOCALE]
    if any(env.get(k) != os.environ.get(k) for k in startup):
        return None
    data = re.search(rb"zip_data='([A-Za-z0-9+/=]+)'", stdin)
    if not data:
        return None
    zipped = base64.b64decode(data.group(1))
    try:
        if kept["files"] is None:
            kept_prepare(zipped)
        if not kept_usable(zipped):
            return None
    except Exception:
        kept["off"] = True
        return None
    pipes = os.pipe() + os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        kept_child(stdin, env, cwd, pipes)
    os.close(pipes[1])
    os.close(pipes[3])
    chunks = {pipes[0]: [], pipes[2]: []}
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    deadline = None if timeout is None else time.monotonic() + timeout
    expired = False
    while sel.get_map():
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = sel.select(wait)
        if not ready and deadline is not None:
            os.killpg(pid, signal.SIGKILL)
            expired = True
            deadline = None
        for key, _ in ready:
            chunk = os.read(key.fd, 65536)
            if chunk:
                chunks[key.fd].append(chunk)
            else:
                sel.unregister(key.fd)
                os.close(key.fd)
    sel.close()
    status = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status), b"".join(chunks[pipes[0]]), b"".join(chunks[pipes[2]]), expired


for line in sys.stdin:
    req = json.loads(line)
    sys.stdout.write("{}\n")
    sys.stdout.flush()
    env = dict(req["env"]) if req.get("env_exact") else dict(os.environ, **req["env"])
    cwd = req.get("cwd")
    binary = req.get("binary", False)
    stdin = base64.b64decode(req["stdin"]) if binary else req["stdin"].encode()
    done = kept_run(req["argv"], stdin, env, cwd, req["timeout"]) if binary and req.get("argv") else None
    if done is None:
        proc = subprocess.Popen(req.get("argv") or ["bash", "-c", req["cmd"]], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            out, err = proc.communicate(stdin, timeout=req["timeout"])
            expired = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            expired = True
        returncode = proc.returncode
    else:
        returncode, out, err, expired = done
    if binary:
        out, err = base64.b64encode(out).decode(), base64.b64encode(err).decode()
    else:
        out, err = out.decode(errors="replace"), err.decode(errors="replace")
    # A command killed by a signal: 128 + its number, as docker exec reports it.
    rc = returncode if returncode >= 0 else 128 - returncode
    sys.stdout.write(json.dumps({"rc": rc, "out": out, "err": err, "expired": expired}) + "\n")
    sys.stdout.flush()
if kept["payload"]:
    os.unlink(kept["payload"])
"""
AGENT = (
    f"MODULE_RUN = {MODULE_RUN.pattern!r}\nWRAPPER_MARKER = {WRAPPER_MARKER!r}\n"
    + inspect.getsource(_as_main.run_as_main)
    + inspect.getsource(_as_main.exit_now)
    + _AGENT
)
# A "container" named so is this machine, its agent run by the interpreter after the prefix.
LOCAL = "local:"
# How long past a command's own timeout the agent may take to answer before the shell is dropped.
GRACE = 30.0
LOST = 137  # what `docker exec` returns when the container goes away under its command


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unpacked(reply: Mapping[str, Any]) -> tuple[int, bytes, bytes]:
    """A binary reply's exit status, stdout and stderr (base64 in the JSON)."""
    return reply["rc"], base64.b64decode(reply["out"]), base64.b64decode(reply["err"])


class ShellLost(Exception):
    """The shell ended before its agent took the request (nothing ran): docker's exit status and
    message, when the exec itself failed."""

    def __init__(self, container: str, returncode: int | None, stderr: str) -> None:
        super().__init__(f"{container}: {stderr.strip() or 'the shell ended'}")
        self.returncode = returncode
        self.stderr = stderr


class Stuck(Exception):
    """The agent neither answered nor ended in time: the shell was ended."""


class Shell:
    """One kept ``docker exec`` into ``container`` running the agent."""

    def __init__(self, container: str) -> None:
        self.container = container
        # "local:<interpreter>": the agent runs on this machine under that interpreter (Ansible's
        # local connection), instead of in a container.
        local = container.removeprefix(LOCAL) if container.startswith(LOCAL) else None
        self.proc = subprocess.Popen(
            [local, "-c", AGENT] if local else ["docker", "exec", "-i", container, "python3", "-c", AGENT],
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
            ready, _, _ = select.select([fd], [], [], left if left != math.inf else None)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def exchange(self, request: Mapping[str, Any], timeout: float | None) -> dict[str, Any] | None:
        """Send one request; the agent's reply, or None when the exec ended under the command (the
        container stopped or restarted). ShellLost when no agent took the request (nothing ran);
        Stuck when the agent neither answered nor ended ``GRACE`` seconds past ``timeout`` (None:
        no limit)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self.lost() from exc
        # The agent acknowledges a request before it runs it: a shell that ends (or stays silent)
        # before that ran nothing, and the command goes to another shell.
        if not self._readline(time.monotonic() + GRACE):
            raise self.lost()
        line = self._readline(time.monotonic() + timeout + GRACE if timeout is not None else math.inf)
        if line is None:
            self.close()
            raise Stuck(self.container)
        if not line:
            self.close()
            return None
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(
        self, argv: list[str], command: str, stdin: str, timeout: float, env: Mapping[str, str]
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command``; ``argv`` is only what the result and a timeout report as the command."""
        request = {"cmd": command, "stdin": stdin, "env": dict(env), "timeout": timeout}
        try:
            reply = self.exchange(request, timeout)
        except Stuck:
            raise subprocess.TimeoutExpired(argv, timeout) from None
        if reply is None:
            gone = f"{self.container}: the exec ended under the command"
            return subprocess.CompletedProcess(argv, LOST, "", gone)
        if reply["expired"]:
            raise subprocess.TimeoutExpired(argv, timeout, output=reply["out"], stderr=reply["err"])
        return subprocess.CompletedProcess(argv, reply["rc"], reply["out"], reply["err"])

    def run_argv(
        self, argv: list[str], stdin: bytes, env: Mapping[str, str] | None = None, cwd: str | None = None
    ) -> tuple[int, bytes, bytes]:
        """Run ``argv`` itself (no shell of the agent's own) with no time limit, bytes in and out:
        what ``docker exec -i <container> argv...`` answers. ``env``: the whole environment instead
        of the agent's own; ``cwd``: the working directory instead of the agent's."""
        request: dict[str, Any] = {"argv": argv, "binary": True, "stdin": _b64(stdin), "timeout": None}
        request["env"] = dict(env or {})
        if env is not None:
            request["env_exact"] = True
        if cwd is not None:
            request["cwd"] = cwd
        reply = self.exchange(request, None)
        if reply is None:
            return LOST, b"", f"{self.container}: the exec ended under the command".encode()
        return _unpacked(reply)


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


def _on_a_shell(container: str, call: Callable[[Shell], T], lost: Callable[[int, str], T]) -> T:
    """``call`` on an idle shell of the container; sent once more to a new shell when no agent took
    it; ``lost(returncode, message)`` when the second shell ended too (docker's own status and
    message: "... is not running")."""
    for attempt in (1, 2):
        shell = _take(container)
        try:
            return call(shell)
        except ShellLost as ended:
            if attempt == 2:
                returncode = ended.returncode if ended.returncode not in (None, 0, -9) else LOST
                return lost(returncode, ended.stderr or str(ended))
        finally:
            # Back to the idle ones if it still runs (an agent that killed a timed-out command and
            # answered serves the next one); a shell that ended is closed.
            _give(shell)
    raise AssertionError("unreachable")


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
    return _on_a_shell(
        container,
        lambda shell: shell.run(argv, command, stdin, timeout, env or {}),
        lambda returncode, message: subprocess.CompletedProcess(argv, returncode, "", message),
    )


def run_argv(
    container: str,
    argv: list[str],
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[int, bytes, bytes]:
    """``argv`` in ``container`` through a kept shell, as ``docker exec -i container argv...``
    answers it: exit status, stdout, stderr (bytes), no time limit (``env``, ``cwd``: Shell.run_argv)."""
    return _on_a_shell(
        container,
        lambda shell: shell.run_argv(argv, stdin, env, cwd),
        lambda returncode, message: (returncode, b"", message.encode()),
    )


def sweep() -> None:
    """Close the idle shells whose exec ended (their container stopped or is gone), and forget
    containers with none left."""
    with _lock:
        ended = [shell for group in _idle.values() for shell in group if not shell.alive()]
        for container in list(_idle):
            _idle[container] = [shell for shell in _idle[container] if shell.alive()]
            if not _idle[container]:
                del _idle[container]
    for shell in ended:
        shell.close()


def close_all() -> None:
    """End every kept shell (the containers' end does it too)."""
    with _lock:
        shells = [shell for group in _idle.values() for shell in group]
        _idle.clear()
    for shell in shells:
        shell.close()


atexit.register(close_all)


# The multiplexer: kept shells for Ansible's own commands. Ansible forks a new process for every task
# and host, so a connection plugin cannot keep a shell itself; the harness's docker connection
# (molecule/resources/callback/celery_fleet_kept_exec.py) asks this long-lived process instead, over a
# UNIX socket, as ssh's ControlPersist keeps one connection for the processes of a run. One request
# per connection: a JSON line (container, argv, stdin in base64); the multiplexer acknowledges it with
# an empty line before it runs it, then answers with one JSON line (rc, stdout, stderr in base64).
# It ends after IDLE seconds without a request, removing its socket first: a client that connected
# meanwhile gets no acknowledgement (nothing ran) and starts another.
IDLE = 120.0
START_TIMEOUT = 15.0


def serve(path: str, idle: float = IDLE) -> None:
    """Answer requests on the UNIX socket ``path`` until ``idle`` seconds pass without one."""
    busy = 0
    last = time.monotonic()
    state = threading.Lock()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            nonlocal busy, last
            with state:
                busy += 1
            try:
                line = self.rfile.readline()
                if not line:
                    return
                request = json.loads(line)
                self.wfile.write(b"\n")
                self.wfile.flush()
                rc, out, err = run_argv(
                    request["container"],
                    request["argv"],
                    base64.b64decode(request["stdin"]),
                    request.get("env"),
                    request.get("cwd"),
                )
                reply = {"rc": rc, "out": _b64(out), "err": _b64(err)}
                with contextlib.suppress(OSError):  # the client went away (its task was killed)
                    self.wfile.write(json.dumps(reply).encode() + b"\n")
            finally:
                with state:
                    busy -= 1
                    last = time.monotonic()

    server = socketserver.ThreadingUnixStreamServer(path, Handler)

    def idle_out() -> None:
        while True:
            time.sleep(min(1.0, idle))
            sweep()  # a scenario's destroyed containers leave ended shells behind
            with state:
                if busy == 0 and time.monotonic() - last > idle:
                    os.unlink(path)
                    break
        server.shutdown()

    threading.Thread(target=idle_out, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()  # waits for the requests in flight
        close_all()


class MultiplexerError(Exception):
    """The multiplexer could not be reached or started, or ended under a command."""


def _start(path: str) -> None:
    """Start a multiplexer on ``path`` in a session of its own (no stdio of the caller's: a run that
    waits for its children's output does not wait for it)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a socket left by one that died
    with open(f"{path}.log", "ab") as log:
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "serve", path, str(IDLE)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )


def _connect(path: str) -> socket.socket:
    """A connection to the multiplexer on ``path``, started when none answers (under a lock: one
    start for the processes that find none at once)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    info = os.stat(directory)
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise MultiplexerError(f"{directory} must be this user's own, mode 0700")
    deadline = time.monotonic() + START_TIMEOUT
    started = False
    while (sock := _try_connect(path)) is None:
        if time.monotonic() > deadline:
            raise MultiplexerError(f"no multiplexer answers on {path} (see {path}.log)")
        if not started:
            with open(f"{path}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                probe = _try_connect(path)
                if probe is None:
                    _start(path)
                else:
                    probe.close()
            started = True
        time.sleep(0.05)
    return sock


def _try_connect(path: str) -> socket.socket | None:
    """A connection to the multiplexer on ``path``; None when none listens there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    return sock


def ask(
    path: str,
    container: str,
    argv: list[str],
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[int, bytes, bytes]:
    """``argv`` in ``container`` through the multiplexer on ``path`` (started when none runs): exit
    status, stdout, stderr, as ``docker exec -i container argv...`` answers (``env``, ``cwd``:
    Shell.run_argv)."""
    request = json.dumps({"container": container, "argv": argv, "stdin": _b64(stdin), "env": env, "cwd": cwd})
    for _ in range(3):
        with _connect(path) as sock, sock.makefile("rwb") as stream:
            try:
                stream.write(request.encode() + b"\n")
                stream.flush()
                if not stream.readline():
                    continue  # not taken (that multiplexer was ending): nothing ran
            except (BrokenPipeError, ConnectionResetError):
                continue
            line = stream.readline()
        if not line:
            raise MultiplexerError(f"the multiplexer on {path} ended under {argv!r} in {container}")
        reply = json.loads(line)
        return _unpacked(reply)
    raise MultiplexerError(f"no multiplexer on {path} took {argv!r} for {container}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "serve":
        sys.exit(f"usage: {sys.argv[0]} serve SOCKET [IDLE-SECONDS]")
    serve(sys.argv[2], float(sys.argv[3]) if len(sys.argv) == 4 else IDLE)
