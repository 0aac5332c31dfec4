"""What a worker's service gets besides its command line: device access, /proc, where each variable goes.

- ``devices``: the device nodes a worker may open (GPUs). systemd turns them into ``DeviceAllow=``
  lines with ``DevicePolicy=closed`` instead of ``PrivateDevices=yes`` (which hides every node but
  the pseudo devices); supervisord has no device isolation at all.
- ``proc_subset``: ``pid`` (systemd's ``ProcSubset=pid``: /proc shows processes only, no
  /proc/meminfo or /proc/cpuinfo) or ``all`` (what PyTorch, CUDA and psutil read). Default ``all``
  for a worker with devices, else ``pid``.
- The environment: a variable whose name or value looks like a credential never goes into a unit
  or a program file (world-readable; a unit's ``Environment=`` is also readable over D-Bus). It
  goes into the worker's own environment file, readable by root only (systemd reads it) or by root
  and the app's group (supervisord: the app's wrapper loads it as the service user).

Nothing here imports Ansible or the rest of the package: :mod:`celery_fleet.workers` calls the
checks while it normalizes a worker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from celery_fleet.errors import FleetError, Problem

PROC_SUBSETS = ("pid", "all")
MANAGERS = ("systemd", "supervisord")

# A device node: an absolute path under /dev (systemd stats it when the unit starts), or a device
# group of /proc/devices as systemd writes it (char-nvidia-uvm: every node of that driver, also those
# created after the worker started). No whitespace: a DeviceAllow= line splits there.
DEVICE_PATH_RE = re.compile(r"^/dev(?:/[A-Za-z0-9_.:+-]+)+$")
DEVICE_GROUP_RE = re.compile(r"^(?:char|block)-[A-Za-z0-9_.+-]+$")

# Names that say "secret" (API_KEY, AWS_SECRET_ACCESS_KEY, SENTRY_DSN, GITHUB_TOKEN, PGPASSWORD, ...).
SECRET_NAME_RE = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|CREDENTIAL|PRIVATE|AUTH|DSN|(?:^|_)KEYS?(?:_|$)",
    re.IGNORECASE,
)
# A URL with userinfo (scheme://user:password@host, scheme://:password@host, a Sentry-style DSN
# https://key@host): everything between '//' and '@' that contains no '/', '?', '#' or space.
CREDENTIAL_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s]*@")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What no environment file (nor Environment= line written by the fleet) carries byte for byte.
UNFIT_VALUE_RE = re.compile(r"[\x00\n\r]")


def check_devices(value: Any) -> tuple[list[str], list[str]]:
    """(devices, problem details) of a worker's ``devices`` field; None or [] is no device."""
    if value is None:
        return [], []
    if not isinstance(value, list | tuple):
        return [], [f"{value!r} is not a list of device paths (/dev/...) or groups (char-<driver>)"]
    devices: list[str] = []
    problems: list[str] = []
    for device in value:
        if not isinstance(device, str) or not (
            DEVICE_PATH_RE.fullmatch(device) or DEVICE_GROUP_RE.fullmatch(device)
        ):
            problems.append(
                f"{device!r} is not an absolute path under /dev (letters, digits, '_', '.', ':', '+', '-') "
                "nor a device group such as char-nvidia-uvm"
            )
        elif any(part in (".", "..") for part in device.split("/")):
            problems.append(f"{device!r} has a '.' or '..' component: name the node itself")
        elif device in devices:
            problems.append(f"{device!r} is listed twice")
        else:
            devices.append(device)
    return devices, problems


def default_proc_subset(devices: list[str]) -> str:
    """``all`` for a worker granted devices (GPU libraries read /proc/meminfo, /proc/driver), else ``pid``."""
    return "all" if devices else "pid"


def is_secret(name: str, value: str) -> bool:
    """True when a variable looks like a credential, by its name or by its value (a URL with userinfo)."""
    return bool(SECRET_NAME_RE.search(name) or CREDENTIAL_URL_RE.search(value))


def split_environment(environment: Mapping[str, str], manager: str = "systemd") -> dict[str, dict[str, str]]:
    """Where each variable of a worker's service goes: ``{"inline": {...}, "file": {...}}``.

    systemd: the variables that look like secrets (:func:`is_secret`) go to the worker's environment
    file, the others stay ``Environment=`` lines of the unit (visible in ``systemctl show``).
    supervisord: every variable goes to the file, which the app's wrapper loads; its
    ``environment=`` cannot carry a value with both quote characters and is world-readable too.
    """
    if manager not in MANAGERS:
        raise FleetError(
            [Problem("celery_process_manager", f"{manager!r} is not one of {', '.join(MANAGERS)}")]
        )
    if not isinstance(environment, Mapping):
        raise FleetError([Problem("environment", "is not a mapping of variable names to strings")])
    inline: dict[str, str] = {}
    private: dict[str, str] = {}
    for name, value in environment.items():
        if manager == "supervisord" or is_secret(str(name), str(value)):
            private[name] = value
        else:
            inline[name] = value
    return {"inline": inline, "file": private}


def env_file(environment: Mapping[str, str]) -> str:
    """The lines of an environment file that systemd (``EnvironmentFile=``) and ``sh`` (``. file``)
    read into the same bytes: ``NAME="value"`` with ``\\``, ``"``, ``$`` and backquote escaped.

    Inside double quotes both unescape exactly those four characters and keep every other byte
    (spaces, ``'``, ``%``, ``#``); neither expands anything that is escaped. A NUL or a line
    break cannot be carried and is refused.
    """
    if not isinstance(environment, Mapping):
        raise FleetError([Problem("environment", "is not a mapping of variable names to strings")])
    lines = []
    for name, value in environment.items():
        if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
            raise FleetError(
                [Problem("environment", f"{name!r} is not a variable name (^[A-Za-z_][A-Za-z0-9_]*$)")]
            )
        if not isinstance(value, str) or UNFIT_VALUE_RE.search(value):
            # The value itself is never shown: it may be a secret.
            raise FleetError(
                [Problem("environment", f"{name}: the value is not a string without NUL or line break")]
            )
        escaped = re.sub(r'([\\"$`])', r"\\\1", value)
        lines.append(f'{name}="{escaped}"\n')
    return "".join(lines)
