"""Test harness: ansible-playbook runs forked from a process that has imported Ansible once.

Every ``ansible-playbook`` starts a new interpreter that imports Ansible and reads its configuration
before it looks at its arguments: ~0.55 of the ~1.0 CPU-s of a run of an empty play on this
machine, and the suite runs it ~340 times (Molecule's actions, the verify stages' own runs, the unit
stage's plays), most of them short. This module keeps, per environment and working directory, a
server that has done that once (``import ansible.cli.playbook``: the configuration read in that
environment and directory) and forks a child per run, as the kept exec agent does for module runs
in the containers (execshell.py). The harness puts ``molecule/resources/bin/ansible-playbook`` (the
client, :func:`client`) first on the PATH and names it in CELERY_FLEET_ANSIBLE_PLAYBOOK; it is
not part of what users run.

The child is the run the client would have started: the client's stdin, stdout and stderr (passed
over the socket), its argv, its whole environment (the server's is replaced), working directory and
umask; a fresh ``__main__`` running the real console script's source as a script; SystemExit,
uncaught exceptions, threads and atexit handled as the interpreter ends; its exit status (or the
signal that killed it) is the client's. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the client go to
the child's process group; a client that dies (a test's timeout kills it) takes the run with it.

What the server computed before the fork must be what a new interpreter would compute, so a run is
forked only when: no stdio of the client is a terminal (Ansible sizes its output to one); the
server's key matches (the real script, the interpreter, the working directory and the environment
but for MOLECULE_* and PYTEST_* variables, which Ansible does not read as it imports); the
configuration file Ansible would find now is the one it read, with the same content; the real script
and Ansible's package are unchanged. Anything else runs the real ansible-playbook as before. A server
is started the second time a key misses (a key seen once costs nothing; that second run waits for it,
up to STARTING seconds, as does any run that finds it starting: the key's lock is held from before
the server imports until it stops listening), serves only its own user (a 0700 directory,
SO_PEERCRED) and ends after IDLE seconds without a run (CELERY_FLEET_KEPT_PLAYBOOK_IDLE), removing
its socket first and its own temporary directory last. In the runtime directory, <key>.sock.log says
when each server started, each run it forked and how it ended; misses.log has a line per run that
missed (the key, and "first", "served" when it waited for a starting server, "again" when it went anew).
The server's command name is kept-playbook; each run it forks renames itself ansible-playboo, as a
new interpreter running the script is named (ps, process accounting: a run's parent is the server).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable

IDLE = 300.0
# Environment variables the key leaves out: set by Molecule and pytest per action or per test, not
# read by Ansible while it imports (the child still gets them, as every other variable).
VOLATILE = ("MOLECULE_", "PYTEST_")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HEADER = struct.Struct("!I")
# How long a client waits for a server that is starting (importing Ansible: ~0.6 CPU-s) before it
# runs anew.
STARTING = 10.0


def command(default: str) -> str:
    """The ansible-playbook a scenario's test runs: this client when the runner names it
    (CELERY_FLEET_ANSIBLE_PLAYBOOK, scripts/run-scenarios.sh), else ``default``."""
    return os.environ.get("CELERY_FLEET_ANSIBLE_PLAYBOOK") or default


def runtime_dir() -> str:
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", f"celery-fleet-kept-playbook-{os.getuid()}")


def private_dir(path: str) -> bool:
    """``path`` exists (made 0700 if not) and is this user's, not readable or writable by others."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o077 and os.path.isdir(path)


def interpreter_of(script: str) -> str | None:
    """The interpreter of a console script's ``#!`` line (pip writes the venv's, absolute)."""
    try:
        with open(script, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return words[0] if len(words) == 1 and os.path.isabs(words[0]) else None


def real_script() -> str | None:
    """The ansible-playbook this client stands for: the next one on the PATH after its own directory."""
    own = os.path.dirname(os.path.realpath(__file__))
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or os.path.realpath(entry) in (own, os.path.join(own, "bin")):
            continue
        candidate = os.path.join(entry, "ansible-playbook")
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def key_of(real: str, python: str, cwd: str, env: dict[str, str]) -> str:
    kept = sorted((k, v) for k, v in env.items() if not k.startswith(VOLATILE) and k != "_")
    return hashlib.sha256(json.dumps([real, python, cwd, kept]).encode()).hexdigest()[:24]


def _exec_real(real: str, args: list[str]) -> None:
    os.execv(real, [real, *args])


def _start_server(python: str, key: str, path: str, real: str) -> None:
    """A server for this key in a session of its own, detached from the client (two forks), unless
    one holds the key's lock. The lock is taken before this returns and handed to the server (an
    inherited descriptor), so a client that started one finds it starting."""
    import fcntl

    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        lock = os.open(f"{path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os._exit(0)  # another server for this key is starting or running
        if os.fork():
            os._exit(0)
        os.set_inheritable(lock, True)
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(f"{path}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        os.execv(python, [python, os.path.abspath(__file__), "serve", key, path, real, str(lock)])
    finally:
        os._exit(127)


def _ask(path: str, request: bytes) -> socket.socket | None:
    """Hand the request and this process's stdin, stdout and stderr to the server at path: its
    socket once the server took the run, None when there is none or it declined."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        socket.send_fds(sock, [HEADER.pack(len(request)) + request], [0, 1, 2])
        if sock.recv(1) == b"+":
            return sock
    except OSError:
        pass
    sock.close()
    return None


def _await_server(path: str, seconds: float) -> bool:
    """Wait until a server listens at path, as long as one holds the key's lock (is starting): False
    at once when none does (it declined, failed or is ending), or after ``seconds``."""
    import fcntl
    import time

    deadline = time.monotonic() + seconds
    try:
        lock = os.open(f"{path}.lock", os.O_RDONLY)
    except OSError:
        return os.path.exists(path)
    try:
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return True
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                time.sleep(0.02)  # held: a server is importing Ansible
                continue
            fcntl.flock(lock, fcntl.LOCK_UN)
            return os.path.exists(path)
        return False
    finally:
        os.close(lock)


def client(args: list[str]) -> None:
    """Run ``ansible-playbook args`` through the server for this environment, or the real one."""
    real = os.environ.get("CELERY_FLEET_ANSIBLE_PLAYBOOK_REAL") or real_script()
    if real is None:
        sys.exit("ansible-playbook: no ansible-playbook after the harness's on the PATH")
    python = interpreter_of(real)
    try:
        ttys = [os.isatty(fd) for fd in (0, 1, 2)]
        cwd = os.getcwd()
    except OSError:
        _exec_real(real, args)
    directory = runtime_dir()
    if (
        python is None
        or any(ttys)
        or os.environ.get("CELERY_FLEET_KEPT_PLAYBOOK") == "0"
        or not private_dir(directory)
    ):
        _exec_real(real, args)
    env = dict(os.environ)
    key = key_of(real, python, cwd, env)
    path = os.path.join(directory, f"{key}.sock")
    if len(os.fsencode(path)) >= 108:  # a UNIX socket's path limit (sun_path)
        _exec_real(real, args)
    umask = os.umask(0o022)
    os.umask(umask)
    request = json.dumps({"key": key, "argv": [real, *args], "env": env, "cwd": cwd, "umask": umask})
    sock = _ask(path, request.encode())
    if sock is None:
        first = not os.path.exists(f"{path}.seen")
        if first:
            # First miss: remember the key; the second starts a server for the runs after it.
            with open(f"{path}.seen", "w"):
                pass
        else:
            # Later ones start it (or find it starting) and wait for it: its imports cost less
            # than this run's would (~0.6 against ~1.0 CPU-s), and the runs after it are forked.
            _start_server(python, key, path, real)
            if _await_server(path, STARTING):
                sock = _ask(path, request.encode())
        with contextlib.suppress(OSError), open(os.path.join(directory, "misses.log"), "a") as log:
            # One short line: appended whole.
            log.write(f"{key} {'first' if first else 'served' if sock else 'again'}\n")
        if sock is None:
            _exec_real(real, args)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(bytes([signum]))

    for signum in FORWARDED:
        signal.signal(signum, forward)
    status = b""
    while True:
        try:
            chunk = sock.recv(64)
        except InterruptedError:
            continue
        if not chunk:
            break
        status += chunk
    if not status.endswith(b"\n"):
        sys.exit("ansible-playbook: the kept ansible-playbook server ended under this run")
    code = int(status.strip())
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    sys.exit(code)


# The server.


def _file_digest(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def keep_builtin_routing(path: str) -> None:
    """Every run parses ansible.builtin's routing (ansible_builtin_runtime.yml, ~370 KB of YAML: ~0.2
    CPU-s here) as it loads its first plugin. Parsed once here, each child gets its own copy
    (marshal: plain dicts, lists and strings, as the BaseLoader that parses it makes) when it asks
    for that very content; anything else is parsed as before. Ansible's collection loader keeps this
    function replaceable for this (its content_id argument exists "to allow other implementations to
    cache the output")."""
    import marshal

    from ansible.utils.collection_loader import _collection_finder

    parse = _collection_finder._meta_yml_to_dict
    with open(path, "rb") as f:
        raw = f.read()
    kept = marshal.dumps(parse(raw, ("ansible.builtin", "runtime.yml")))

    def meta_yml_to_dict(yaml_string_data: bytes | str, content_id: object) -> object:
        if yaml_string_data == raw:
            return marshal.loads(kept)
        return parse(yaml_string_data, content_id)

    _collection_finder._meta_yml_to_dict = meta_yml_to_dict


class KeptDocs:
    """Plugin documentation parsed once per server. A run reads the DOCUMENTATION of every plugin it
    loads (all the callbacks it finds, the inventory plugins, doc fragments) with PyYAML and
    Ansible's tagging constructor, ~5 ms each, most of a forked run's remaining CPU. Ansible's plugin
    loader and doc-fragment code call ``yaml.load(<tagged str>, Loader=AnsibleLoader)``; here their
    ``yaml`` is a copy of the module whose ``load`` returns, for a text (value and tags: its origin,
    its trust) this server has parsed, its own copy of that result (pickled: the tags survive). A run
    forked from here reports each text it had to parse (its main process only, on a pipe of its own);
    the server parses it after the run, as the run did, and the runs after it find it. Any other
    load, and every load before a text was learned, is PyYAML's as before."""

    LIMIT = 1 << 20  # a text longer than this is not learned

    def __init__(self) -> None:
        import pickle
        import types

        import ansible.plugins.loader
        import ansible.utils.plugin_docs
        import yaml
        from ansible.module_utils._internal._datatag import AnsibleTagHelper
        from ansible.parsing.yaml.loader import AnsibleLoader

        self.pickle = pickle
        self.load = yaml.load
        self.loader = AnsibleLoader
        self.tags = AnsibleTagHelper.tags
        self.untag = AnsibleTagHelper.untag
        self.parsed: dict[tuple[str, frozenset], bytes] = {}
        self.reporter: tuple[int, int] | None = None  # (pid, write end) in a forked run
        proxy = types.ModuleType(yaml.__name__, yaml.__doc__)
        proxy.__dict__.update(yaml.__dict__)
        proxy.load = self.kept_load
        for module in (ansible.plugins.loader, ansible.utils.plugin_docs):
            if module.yaml is not yaml:
                raise RuntimeError(f"{module.__name__}.yaml is not PyYAML")
            module.yaml = proxy

    def key(self, text: str) -> tuple[str, frozenset]:
        return (self.untag(text), self.tags(text))

    def kept_load(self, stream: object, Loader: type) -> object:
        if Loader is not self.loader or not isinstance(stream, str):
            return self.load(stream, Loader=Loader)
        kept = self.parsed.get(self.key(stream))
        if kept is not None:
            return self.pickle.loads(kept)
        result = self.load(stream, Loader=Loader)
        if self.reporter is not None and self.reporter[0] == os.getpid() and len(stream) <= self.LIMIT:
            with contextlib.suppress(Exception):  # not learned: the run goes on as it would
                record = self.pickle.dumps(stream)
                os.write(self.reporter[1], HEADER.pack(len(record)) + record)
        return result

    def learn(self, reported: bytes) -> None:
        """Parse what a run reported (HEADER-framed pickled texts), as it parsed them."""
        at = 0
        while at + HEADER.size <= len(reported) and len(self.parsed) < 4096:
            size = HEADER.unpack_from(reported, at)[0]
            record = reported[at + HEADER.size : at + HEADER.size + size]
            at += HEADER.size + size
            if len(record) != size:
                break
            with contextlib.suppress(Exception):
                text = self.pickle.loads(record)
                key = self.key(text) if isinstance(text, str) else None
                if key is not None and key not in self.parsed:
                    self.parsed[key] = self.pickle.dumps(self.load(text, Loader=self.loader))


class Server:
    def __init__(self, key: str, path: str, real: str, lock: int) -> None:
        self.key = key
        self.path = path
        self.real = real
        self.lock = lock  # the key's lock (_start_server took it), -1 once given up
        with open(real, "rb") as f:
            self.source = compile(f.read(), real, "exec")
        from as_main import exit_now, run_as_main  # this file's directory: sys.path[0] until below

        self.run_as_main, self.exit_now = run_as_main, exit_now
        # What a new interpreter running the script would have as sys.path[0] and argv[0].
        sys.path[0] = os.path.dirname(real)
        sys.argv = [real]
        import atexit

        registered: list[tuple] = []
        register = atexit.register

        def recording(func: Callable[..., object], *args: object, **kwargs: object) -> object:
            registered.append((func, args, kwargs))
            return register(func, *args, **kwargs)

        atexit.register = recording
        try:
            import ansible
            import ansible.cli.playbook  # the configuration is read here
        finally:
            atexit.register = register
        import logging
        import multiprocessing.util

        from ansible import constants
        from ansible.config.manager import cleanup_tmp_file, find_ini_config_file

        # The one process-own thing Ansible makes as it imports: its local temporary directory
        # (DEFAULT_LOCAL_TMP, ansible-local-<pid>..., removed at exit). Each child makes its own.
        # The standard library's own (logging, multiprocessing) are a new interpreter's too: each child
        # runs them for itself as it ends.

        expected = [
            (cleanup_tmp_file, (constants.DEFAULT_LOCAL_TMP,), {"warn": True}),
            (logging.shutdown, (), {}),
            (multiprocessing.util._exit_function, (), {}),
        ]
        if sorted(map(repr, registered)) != sorted(map(repr, expected)):
            raise RuntimeError(f"unexpected exit handlers after the imports: {registered!r}")
        self.constants = constants
        self.cleanup = cleanup_tmp_file
        self.find_config = find_ini_config_file
        self.config = constants.config._config_file
        self.config_digest = _file_digest(self.config)
        self.stamps = {p: _stamp(p) for p in (real, ansible.__file__)}
        keep_builtin_routing(
            os.path.join(os.path.dirname(ansible.__file__), "config", "ansible_builtin_runtime.yml")
        )
        self.docs = KeptDocs()
        import threading

        if threading.active_count() != 1:
            raise RuntimeError("threads running after the imports: forking is not safe")

    def current(self) -> bool:
        """Whether a new interpreter would still import and configure Ansible as this one did."""
        found = self.find_config()
        return (
            found == self.config
            and _file_digest(found) == self.config_digest
            and all(_stamp(p) == stamp for p, stamp in self.stamps.items())
        )

    def serve(self, idle: float = IDLE) -> None:
        import selectors
        import time

        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        os.chmod(self.path, 0o600)
        listener.listen(16)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, ("listen", None))
        runs: dict[int, tuple[socket.socket, int]] = {}  # child pid -> (client, pidfd)
        reports: dict[int, bytearray] = {}  # a run's report pipe (read end) -> what it sent

        def fds() -> list[int]:
            open_listener = [listener.fileno()] if listener.fileno() >= 0 else []
            held_lock = [self.lock] if self.lock >= 0 else []
            return [
                *open_listener,
                *held_lock,
                selector.fileno(),
                *(fd for conn, pidfd in runs.values() for fd in (conn.fileno(), pidfd)),
                *reports,
            ]

        def stop_listening() -> None:
            """A client connecting from now on finds no socket; one that finds the lock free may
            start the next server while this one waits for its runs."""
            if listener.fileno() in selector.get_map():
                selector.unregister(listener)
                os.unlink(self.path)
                listener.close()
            if self.lock >= 0:
                os.close(self.lock)
                self.lock = -1

        self.fds = fds
        self.served = 0
        last = time.monotonic()
        stale = False
        while runs or reports or not stale:
            ready = selector.select(None if stale else 1.0)
            for item, _ in ready:
                kind, data = item.data
                if kind == "listen":
                    conn, _ = listener.accept()
                    report = os.pipe()
                    pid = self.take(conn, stale, report)
                    os.close(report[1])
                    if pid is None:
                        os.close(report[0])
                        stale = stale or not self.current()
                        if stale:  # before the client hears: it then starts the next server
                            stop_listening()
                        conn.close()
                        continue
                    reports[report[0]] = bytearray()
                    selector.register(report[0], selectors.EVENT_READ, ("report", None))
                    pidfd = os.pidfd_open(pid)
                    runs[pid] = (conn, pidfd)
                    selector.register(conn, selectors.EVENT_READ, ("client", pid))
                    selector.register(pidfd, selectors.EVENT_READ, ("child", pid))
                elif kind == "client":
                    conn = runs[data][0]
                    try:
                        got = conn.recv(64)
                    except OSError:
                        got = b""
                    for signum in got or [signal.SIGKILL]:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(data, signum)
                    if not got:
                        selector.unregister(conn)
                elif kind == "report":
                    chunk = os.read(item.fd, 65536)
                    if chunk:
                        reports[item.fd] += chunk
                        continue
                    selector.unregister(item.fd)
                    os.close(item.fd)
                    self.docs.learn(bytes(reports.pop(item.fd)))
                elif kind == "child":
                    conn, pidfd = runs.pop(data)
                    status = os.waitpid(data, 0)[1]
                    code = os.waitstatus_to_exitcode(status)
                    selector.unregister(pidfd)
                    os.close(pidfd)
                    if conn.fileno() in selector.get_map():
                        selector.unregister(conn)
                    with contextlib.suppress(OSError):
                        conn.sendall(f"{code}\n".encode())
                    self.served += 1
                    print(f"{time.strftime('%H:%M:%S')} run {data}: exit {code}", file=sys.stderr, flush=True)
                    conn.close()
                    last = time.monotonic()
            if not runs and not reports and time.monotonic() - last > idle:
                stale = True
            if stale:
                stop_listening()
        selector.close()

    def take(self, conn: socket.socket, stale: bool, report: tuple[int, int]) -> int | None:
        """Read a request and fork its run; None (the client runs anew) when it is not this key's,
        not this user's or Ansible's configuration changed."""
        fds: list[int] = []
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            uid = struct.unpack("3i", creds)[1]
            conn.settimeout(5.0)
            data, fds, _, _ = socket.recv_fds(conn, 65536, 3)
            while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
                more = conn.recv(65536)
                if not more:
                    raise OSError("short request")
                data += more
            conn.settimeout(None)
            request = json.loads(data[HEADER.size :])
        except (OSError, ValueError, struct.error):
            for fd in fds:
                os.close(fd)
            return None
        if (
            stale
            or uid != os.getuid()
            or len(fds) != 3
            or request.get("key") != self.key
            or not self.current()
        ):
            for fd in fds:
                os.close(fd)
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        own = [conn.fileno(), report[0], *self.fds()]
        pid = os.fork()
        if pid == 0:
            self.child(request, fds, own, report[1])
        os.setpgid(pid, pid)  # as the child does: a signal right after the fork reaches its group
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(b"+")
        except OSError:
            os.killpg(pid, signal.SIGKILL)  # the client is gone: waited for as any other run
        return pid

    def child(self, request: dict, fds: list[int], own: list[int], report: int) -> None:
        import atexit

        rc = 1
        try:
            os.setpgid(0, 0)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in own:  # the listener, the selector, every run's socket, pidfd, report pipe, lock
                os.close(fd)
            self.docs.reporter = (os.getpid(), report)
            set_name(os.path.basename(self.real).encode())  # a new interpreter's: the script's name
            os.chdir(request["cwd"])
            os.umask(request["umask"])
            os.environ.clear()
            os.environ.update(request["env"])
            atexit.unregister(self.cleanup)  # the server's directory: the server removes it
            C = self.constants
            C.set_constant(
                "DEFAULT_LOCAL_TMP", C.config.get_config_value("DEFAULT_LOCAL_TMP", variables=vars(C))
            )
            rc = self.run_as_main(self.source, request["argv"], self.real)
        finally:
            self.exit_now(rc)


def set_name(name: bytes) -> None:
    """This process's command name (prctl PR_SET_NAME, 15 bytes at most), as ps and the kernel's
    process accounting show it."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)


def serve(key: str, path: str, real: str, lock: str) -> None:
    """Serve the key at path; lock: the descriptor of the key's lock, taken by _start_server and
    held until the server stops listening."""
    import time

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by one that died
    set_name(b"kept-playbook")  # in ps and process accounting; its runs rename themselves back
    started = time.process_time()
    server = Server(key, path, real, int(lock))
    print(
        f"{time.strftime('%H:%M:%S')} serving, ready in {time.process_time() - started:.2f} CPU-s",
        file=sys.stderr,
    )
    try:
        server.serve(float(os.environ.get("CELERY_FLEET_KEPT_PLAYBOOK_IDLE") or IDLE))
    finally:
        server.cleanup(server.constants.DEFAULT_LOCAL_TMP, warn=False)
        print(
            f"{time.strftime('%H:%M:%S')} ended: {server.served} runs, {len(server.docs.parsed)} texts kept",
            file=sys.stderr,
            flush=True,
        )
    # The imports' atexit handlers are the runs' own (each child runs them); none here.
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "serve":
        serve(*sys.argv[2:6])
    else:
        client(sys.argv[1:])
