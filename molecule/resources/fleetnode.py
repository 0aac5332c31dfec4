"""The one way the scenarios' tests reach a host, run the app on it and wait for what it does.

Every scenario's conftest builds :class:`Node` objects (the ssh scenario an :class:`SshNode`, which
reaches its host as Ansible did) and the tests call them:

- ``node.run(cmd)`` / ``node.check(cmd)`` / ``node.json(cmd)``: a shell command as root; ``check``
  fails with the command's output, ``json`` returns the last JSON object it printed;
- ``node.celery(args)``: the app's own entry, ``<home>/bin/celery`` (roles/celery_app), which runs
  the app's celery as its service user with its environment file, ``-A celery_fleet_app`` preset
  (what an operator types: ``sudo /opt/<app>/bin/celery inspect active``); ``node.as_app(cmd)`` /
  ``node.python(args)``: any other command of the app (a producer script) the same way;
- ``node.inspect(action, expect=nodes)``: ``celery inspect --json``, waited on until every expected
  node answered;
- ``node.state(service)``, ``node.main_pid``, ``node.start/stop/restart``, ``node.logs``,
  ``node.service_file``, ``node.up_for``: a service under either process manager;
  ``node.unit_stamps(unit)``, ``node.stop_journal``: a systemd unit's last stop and start
  (:class:`UnitStamps`) and the journal of that stop;
- :func:`wait_until`: wait for a positive signal, with a deadline and a message saying what never came.

Paths and service names come from ``lib/celery_fleet/layout.py`` (``node.layout``), node names from
``lib/celery_fleet/workers.py`` (:func:`worker_node`), inspect replies are read by
``layout.inspect_reply``: as the roles do.
Secrets a command needs travel in the exec's environment (``secret_env``) or on stdin, never in argv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

PROJECT = Path(__file__).resolve().parents[2]
if str(PROJECT / "lib") not in sys.path:
    sys.path.insert(0, str(PROJECT / "lib"))

import execshell  # noqa: E402  (molecule/resources, this module's directory, is on sys.path)
from celery_fleet.diagnose import up_for  # noqa: E402  (lib/ is put on sys.path just above)
from celery_fleet.layout import app_layout, inspect_reply  # noqa: E402
from celery_fleet.workers import node_name, normalize_worker  # noqa: E402

MANAGERS = ("systemd", "supervisord")
# What the fleet's entry module logs on each retry of a delivery's unacked record
# (roles/celery_app/files/celery_fleet_app.py, deliveries_survive_a_failover).
RETRIED_RECORD = "as unacknowledged failed"
# What a client (redis-py, kombu) or Redis itself logs when a password is refused: a password
# rotation must leave none of these in any journal.
PASSWORD_REFUSED = "WRONGPASS|invalid username-password"

T = TypeVar("T")
# Errors that mean "not yet" while waiting: a container or service still coming back.
NOT_YET = (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError, ValueError)


def worker_node(worker: Mapping[str, Any], hostname: str) -> str:
    """The Celery node name of a declared worker on a host, as the roles compute it."""
    return node_name(normalize_worker(worker)["hostname"], hostname)


def wait_until(
    predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 1.0
) -> tuple[T, float]:
    """Poll ``predicate`` until it returns something true: (that value, seconds it took).

    ``what`` names the awaited signal in the failure message. A container or service still coming
    back (a failed command, a timeout, an assertion inside ``predicate``) counts as "not yet"; the
    last such error is shown if the deadline passes.
    """
    started = time.monotonic()
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value, time.monotonic() - started
            last = value
        except (
            subprocess.CalledProcessError,
            subprocess.TimeoutExpired,
            AssertionError,
            ValueError,
        ) as error:
            last = error
        if time.monotonic() - started >= timeout:
            raise AssertionError(f"{what}: not seen within {timeout:g} s (last: {str(last)[-1500:]})")
        time.sleep(interval)


def _monotonic(line: str) -> float:
    """The stamp of a ``journalctl -o short-monotonic`` line (``[  1234.567890] ...``), -1 if none."""
    match = re.match(r"\[\s*(\d+\.\d+)\]", line)
    return float(match.group(1)) if match else -1.0


# systemd's stamps behind UnitStamps, in its fields' order.
UNIT_STAMP_PROPERTIES = (
    "ActiveExitTimestampMonotonic",
    "InactiveEnterTimestampMonotonic",
    "ActiveEnterTimestampMonotonic",
)


class UnitStamps(NamedTuple):
    """A systemd unit's last stop (left active, entered inactive) and its last start (entered
    active), monotonic seconds: ``Node.unit_stamps``."""

    stop_began: float
    stop_ended: float
    active_since: float

    @property
    def stop_seconds(self) -> float:
        """How long the last stop took."""
        return self.stop_ended - self.stop_began


class Node:
    """One host of a scenario, reached with ``docker exec`` into its container: one kept exec per
    container and thread serves every command (molecule/resources/execshell.py), as one SSH
    connection serves an :class:`SshNode`'s."""

    # Commands go through execshell's kept shells; False: one process per command from argv().
    kept_shell = True

    def __init__(
        self,
        container: str,
        *,
        manager: str = "systemd",
        app: str | None = None,
        home: str | None = None,
        inspect_timeout: float = 3,
    ) -> None:
        if manager not in MANAGERS:
            raise ValueError(f"{container}: celery_process_manager {manager!r} is not one of {MANAGERS}")
        self.container = container
        self.manager = manager
        self.app = app
        # The app's paths and service names, as roles/celery_app lays them out.
        self.layout: dict[str, str] = app_layout(app, home) if app else {}
        self.inspect_timeout = inspect_timeout

    def __repr__(self) -> str:
        return f"Node({self.container!r}, manager={self.manager!r}, app={self.app!r})"

    # --- shell --------------------------------------------------------------------------------------

    def argv(self, command: str, secret_names: tuple[str, ...] = ()) -> list[str]:
        """The controller-side argv that runs ``command`` in the container as root."""
        env = [arg for name in secret_names for arg in ("-e", name)]
        return ["docker", "exec", "-i", *env, self.container, "bash", "-c", command]

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float = 120,
        secret_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command as root; the caller reads returncode. ``secret_env`` values travel in
        the kept shell's request on its stdin (execshell), or in the environment of the command's own
        process (only their names are in argv)."""
        if self.kept_shell:
            return execshell.run(
                self.container,
                self.argv(command, tuple(secret_env or ())),
                command,
                stdin=stdin if stdin is not None else "",
                timeout=timeout,
                env=secret_env,
            )
        env = {**os.environ, **secret_env} if secret_env else None
        return subprocess.run(
            self.argv(command, tuple(secret_env or ())),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )

    def check(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float = 120,
        secret_env: Mapping[str, str] | None = None,
    ) -> str:
        """stdout of a shell command that must succeed; fails with its output otherwise."""
        result = self.run(command, stdin=stdin, timeout=timeout, secret_env=secret_env)
        assert result.returncode == 0, (
            f"{self.container}: {command!r} failed (rc {result.returncode}): "
            f"{result.stdout[-800:]} {result.stderr[-1500:]}"
        )
        return result.stdout

    def json(self, command: str, *, stdin: str | None = None, timeout: float = 300) -> Any:
        """The last line-long JSON object a command printed; fails with its output when there is none."""
        result = self.run(command, stdin=stdin, timeout=timeout)
        found = re.findall(r"^\{.*\}\s*$", result.stdout, re.M)
        assert found, (
            f"{self.container}: {command!r} printed no JSON (rc {result.returncode}): "
            f"{result.stdout[-800:]} {result.stderr[-1500:]}"
        )
        return json.loads(found[-1])

    def read(self, path: str) -> str:
        return self.check(f"cat {shlex.quote(path)}")

    def exists(self, path: str) -> bool:
        return self.run(f"test -e {shlex.quote(path)}").returncode == 0

    def is_file(self, path: str) -> bool:
        return self.run(f"test -f {shlex.quote(path)}").returncode == 0

    def stat(self, path: str) -> tuple[str, str, int]:
        """(owner, group, mode) of a path."""
        user, group, mode = self.check(f"stat -c '%U %G %a' {shlex.quote(path)}").split()
        return user, group, int(mode, 8)

    def now(self) -> str:
        """The host's clock, in the form journalctl --since takes."""
        return self.check("date '+%Y-%m-%d %H:%M:%S'").strip()

    def hostname(self) -> str:
        return self.check("hostname").strip()

    # --- the app ------------------------------------------------------------------------------------

    def _app(self) -> dict[str, str]:
        assert self.layout, f"{self.container}: no app given to this Node"
        return self.layout

    def celery(self, args: str) -> str:
        """The app's celery as its user, environment loaded, ``-A celery_fleet_app`` preset: the
        app's own entry point (``<home>/bin/celery``), as the plays and operators run it."""
        return f"{self._app()['celery']} {args}"

    def as_app(self, command: str) -> str:
        """Any other command of the app (a shell string) as its service user, with its environment
        file, from its code directory. ``<home>/bin/celery`` runs celery only; a producer script
        needs the app's python, through the same environment wrapper (``<home>/bin/celery-env``)
        that bin/celery and the supervisord programs use."""
        layout = self._app()
        return f"cd / && runuser -u {layout['user']} -- {layout['env_wrapper']} {command}"

    def python(self, args: str, *, pythonpath: str | None = None) -> str:
        """The app virtualenv's python as the app's user (a producer script, the demo workload)."""
        path = f"env PYTHONPATH={pythonpath} " if pythonpath else ""
        return self.as_app(f"{path}{self._app()['venv']}/bin/python {args}")

    def inspect(
        self,
        action: str,
        expect: set[str] | None = None,
        *,
        timeout: float = 60,
        only: bool = False,
    ) -> dict[str, Any]:
        """``celery inspect <action> --json`` replies by node, polled until every node of ``expect``
        answered (at least one node when expect is None); fails naming the missing nodes.

        ``only``: ask the nodes of ``expect`` alone (``--destination``). Celery then stops waiting as
        soon as they all answered instead of waiting out the reply timeout every time (3 s per ask),
        but no other node's reply is seen: not for a check that no other node answers or consumes.
        """
        destination = f" --destination {shlex.quote(','.join(sorted(expect)))}" if only and expect else ""
        command = self.celery(f"inspect {action} --json --timeout {self.inspect_timeout:g}{destination}")
        seen: dict[str, Any] = {}

        def answered() -> dict[str, Any] | None:
            nonlocal seen
            seen = inspect_reply(self.run(command, timeout=60).stdout)
            if expect is None:
                return seen or None
            return seen if expect <= seen.keys() else None

        try:
            replies, _ = wait_until(answered, timeout=timeout, what=f"inspect {action}")
        except AssertionError:
            missing = sorted((expect or set()) - seen.keys())
            raise AssertionError(
                f"{self.container}: inspect {action}: within {timeout:g} s these nodes did not answer: "
                f"{missing or 'any'}; answered: {sorted(seen)}"
            ) from None
        return replies

    # --- services under either process manager -------------------------------------------------------

    @property
    def failed_state(self) -> str:
        return "failed" if self.manager == "systemd" else "FATAL"

    @property
    def running_state(self) -> str:
        return "active" if self.manager == "systemd" else "RUNNING"

    def state(self, service: str) -> str:
        """systemd's ActiveState (active, failed, ...) or supervisord's state (RUNNING, FATAL, ...);
        MISSING when supervisord does not know the program."""
        if self.manager == "systemd":
            return self.run(f"systemctl show -p ActiveState --value {service}").stdout.strip()
        words = self.run(f"supervisorctl status {service}").stdout.split()
        # An unknown program prints "<name>: ERROR (no such process)".
        return words[1] if len(words) > 1 and words[0] == service else "MISSING"

    def is_running(self, service: str) -> bool:
        return self.state(service) == self.running_state

    def known(self, service: str) -> bool:
        """Whether the process manager still knows the service (a unit file / a program)."""
        if self.manager == "systemd":
            load = self.run(f"systemctl show -p LoadState --value {service}").stdout.strip()
            return load != "not-found"
        return service in self.run("supervisorctl status").stdout.split()

    def up_for(self, service: str, seconds: float) -> bool:
        """Whether the service has been running for ``seconds`` without a restart."""
        if self.manager == "systemd":
            status = self.run(
                f"systemctl show --property=ActiveState --property=ActiveEnterTimestampMonotonic {service}"
                " && cat /proc/uptime"
            ).stdout
        else:
            status = self.run(f"supervisorctl status {service}").stdout
        return up_for(status, seconds)

    def main_pid(self, service: str) -> int:
        """The service's main process (0 when it is not running)."""
        if self.manager == "systemd":
            out = self.run(f"systemctl show -p MainPID --value {service}").stdout
        else:
            out = self.run(f"supervisorctl pid {service}").stdout
        out = out.strip()
        return int(out) if out.isdigit() else 0

    def _control(self, verb: str, service: str) -> subprocess.CompletedProcess[str]:
        tool = "systemctl" if self.manager == "systemd" else "supervisorctl"
        return self.run(f"{tool} {verb} {service}", timeout=300)

    def start(self, service: str) -> subprocess.CompletedProcess[str]:
        return self._control("start", service)

    def stop(self, service: str) -> subprocess.CompletedProcess[str]:
        return self._control("stop", service)

    def restart(self, service: str) -> subprocess.CompletedProcess[str]:
        return self._control("restart", service)

    def unit_stamps(self, service: str) -> UnitStamps:
        """The systemd unit's last stop and start, from systemd's monotonic stamps (seconds)."""
        assert self.manager == "systemd", "supervisord records no stop timestamps"
        shown = self.check(f"systemctl show -p {','.join(UNIT_STAMP_PROPERTIES)} {service}")
        stamp = {k: int(v) / 1e6 for k, v in (line.split("=", 1) for line in shown.split())}
        return UnitStamps(*(stamp[name] for name in UNIT_STAMP_PROPERTIES))

    def stop_journal(self, service: str, began: float, ended: float, context: float = 30.0) -> str:
        """The unit's journal lines from ``context`` seconds before a stop (``unit_stamps``' stamps)
        to a second after it, joined by " | ": a slow stop's assertion says what the service did."""
        journal = self.run(
            f"journalctl --no-pager -o short-monotonic -u {shlex.quote(service)} -n 3000"
        ).stdout.splitlines()
        return " | ".join(line for line in journal if began - context <= _monotonic(line) <= ended + 1)

    def journal_count(self, pattern: str, since: float) -> int:
        """How many lines of the whole journal since ``since`` (seconds since the epoch) match the
        extended regular expression ``pattern``."""
        shown = self.run(f"journalctl --since @{int(since)} --no-pager | grep -c -E {shlex.quote(pattern)}")
        return int(shown.stdout.strip() or 0)

    def service_file(self, service: str) -> str:
        if self.manager == "systemd":
            return f"/etc/systemd/system/{service}.service"
        return f"/etc/supervisor/conf.d/{service}.conf"

    def logs(self, service: str, since: str | None = None) -> str:
        """A service's log (a shell glob such as ``app-worker-*`` reads several): the journal under
        systemd, the program's log file under supervisord (root's, roles/celery_app)."""
        if self.manager == "systemd":
            when = f" --since {shlex.quote(since)}" if since else ""
            return self.run(f"journalctl --no-pager -o cat -u {shlex.quote(service)}{when}").stdout
        assert since is None, "supervisord's log files carry no journal timestamps: read the whole file"
        return self.run(f"cat {self._app()['supervisor_log_dir']}/{service}.log").stdout


class SshNode(Node):
    """A host reached as Ansible reaches it: SSH as the login user, root through sudo (ssh scenario).

    ``config`` is the SSH client configuration of the scenario (host name, address, key, known host);
    one multiplexed connection serves the whole run.
    """

    kept_shell = False  # ssh's own multiplexed connection (ssh_argv)

    def __init__(self, host: str, *, config: Path, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self.config = config

    def argv(self, command: str, secret_names: tuple[str, ...] = ()) -> list[str]:
        assert not secret_names, "over SSH a secret travels on stdin"
        return self.ssh_argv(f"sudo -n sh -c {shlex.quote(command)}")

    def ssh_argv(self, remote: str) -> list[str]:
        """The argv that runs ``remote`` as the login user (no sudo)."""
        return [
            "ssh",
            "-F",
            str(self.config),
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.config.parent}/cm-%C",
            "-o",
            "ControlPersist=120",
            self.container,
            remote,
        ]
