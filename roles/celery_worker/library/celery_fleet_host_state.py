#!/usr/bin/python
"""Module of roles/celery_worker: whether a worker host is still as its last converge left it.

Why a module: a re-run of playbooks/deploy-workers.yml that changes nothing ran about 75 task
executions per worker host (a fork on the controller and, for most, a Python process on the host),
so its cost grew with the host count (bench/README.md, benchmark 10). A host whose inputs are those
of its last successful converge and whose files, services, users and packages are as that converge
left them has nothing to converge: this module tells, in one process on the host, and the play skips
the host's roles. Anything that differs (an input, a file edited or removed, a worker stopped or
disabled, a package removed, a restart left pending) and the host converges, as before.

state=record writes what the converge left (the inputs' signature from the controller and the
fingerprint of the given paths, services, users and packages) to ``path`` (root's, 0600): sizes,
times, modes, owners and states, never a file's content. state=refresh fingerprints again what the
record names, keeping its signatures (after the host's restart batch). state=check compares, and
tells apart the app's part: a host whose only new inputs are the workers' own (one worker's
concurrency) and where nothing changed by hand skips roles/celery_app (about 30 of the host's task
executions) and converges its workers alone. A file is
fingerprinted by its stat (size, modification and change times), not its content: any write moves
the change time, and reading the demo app's virtualenv (1,800 files, 60 MB) took 55 ms a check on a
bench host, its stat 7 ms.
"""

from __future__ import annotations

import fnmatch
import glob
import grp
import json
import os
import pwd
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: celery_fleet_host_state
short_description: Record and compare what a worker host's last converge left
description:
  - state=record fingerprints the given paths (recursively; bytecode caches left out; a file by its
    size, modification and change times, mode and owner), services,
    users and packages and writes them with the inputs' signature to I(path), root's, 0600.
  - state=refresh fingerprints again what the record names, keeping its signature.
  - state=check compares the record with the host and the given signature; the host is current
    when everything matches and no restart is pending. The app's part is current when the record's app
    signature is I(app_signature) and the host is as recorded. It never changes the host. With I(report),
    it also names the recorded paths that match those patterns (what a current host holds there).
options:
  state:
    description: What to do.
    type: str
    choices: [check, record, refresh]
    required: true
  path:
    description: The record.
    type: path
    required: true
  signature:
    description: The inputs' signature (sha256 hex, from the controller). Required for check and record.
    type: str
  app_signature:
    description:
      - The signature of the app's part of the inputs (what roles/celery_app reads; sha256 hex), kept in
        the record (record) and compared (check, I(app_current)).
    type: str
  pending:
    description: Files whose presence means a restart is still pending (check: never current).
    type: list
    elements: path
    default: []
  paths:
    description: Paths and shell patterns to fingerprint (record).
    type: list
    elements: str
    default: []
  services:
    description: The services to fingerprint (record), systemd unit names or supervisord programs.
    type: list
    elements: str
    default: []
  manager:
    description: The services' process manager.
    type: str
    choices: [systemd, supervisord]
    default: systemd
  users:
    description: Users whose account to fingerprint (record).
    type: list
    elements: str
    default: []
  groups:
    description: Groups to fingerprint (record).
    type: list
    elements: str
    default: []
  packages:
    description: Debian packages whose installed version to fingerprint (record).
    type: list
    elements: str
    default: []
  report:
    description:
      - Shell patterns among the record's I(paths) (check). A current host returns the recorded
        paths each matches in its directory as I(reported); a pattern the record does not cover
        means the host is not current.
    type: list
    elements: str
    default: []
"""

RETURN = r"""
current:
  description: state=check, the host is as its record says and the signature is the record's.
  type: bool
  returned: always
reasons:
  description: What differs (at most MAX_REASONS lines), empty when current.
  type: list
  returned: always
reported:
  description: state=check of a current host, the recorded paths that match I(report), sorted.
  type: list
  returned: always
app_current:
  description:
    - state=check, the record's app signature is I(app_signature) and the host is as the record says,
      a pending restart aside: the app's part of the converge has nothing to do, even on a host that
      is not current because other inputs changed.
  type: bool
  returned: always
"""

# A check names this many differences at most: one is enough to converge, a few help an operator.
MAX_REASONS = 5
# Written by a running interpreter, not by the converge.
SKIPPED_DIRS = frozenset({"__pycache__"})
SKIPPED_SUFFIXES = (".pyc",)
RECORD_VERSION = 3

Runner = Callable[[Sequence[str]], tuple[int, str]]


def run(argv: Sequence[str]) -> tuple[int, str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return done.returncode, done.stdout


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _entry(path: str) -> list[Any]:
    info = os.lstat(path)
    mode = stat.S_IMODE(info.st_mode)
    owner = [f"{mode:04o}", _owner(info.st_uid), _group(info.st_gid)]
    if stat.S_ISLNK(info.st_mode):
        return ["link", os.readlink(path), *owner]
    if stat.S_ISDIR(info.st_mode):
        return ["dir", "", *owner]
    if stat.S_ISREG(info.st_mode):
        # A file's size and its modification and change times, as make and git's index judge a file:
        # any write moves the change time, which no user can set back (unlike the modification time,
        # which `cp -p` or `touch -r` can), and a stat costs a fraction of reading a virtualenv.
        return ["file", f"{info.st_size} {info.st_mtime_ns} {info.st_ctime_ns}", *owner]
    return ["other", "", *owner]


def files_fingerprint(patterns: Iterable[str]) -> dict[str, list[Any]]:
    """path -> [kind, size and times or link target, mode, owner, group] for every path the patterns match,
    directories walked (symlinks not followed); a pattern matching nothing records itself as absent,
    so a file that appears later differs."""
    found: dict[str, list[Any]] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if os.path.lexists(m)]
        if not matches:
            found[pattern] = ["absent"]
            continue
        for top in matches:
            found[top] = _entry(top)
            if found[top][0] != "dir":  # a file, or a symlink (not followed)
                continue
            for root, dirs, names in os.walk(top):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
                for name in dirs + sorted(names):
                    if name.endswith(SKIPPED_SUFFIXES):
                        continue
                    path = os.path.join(root, name)
                    found[path] = _entry(path)
    return found


def services_fingerprint(manager: str, services: Sequence[str], runner: Runner = run) -> dict[str, str]:
    """service -> its state: systemd's load, active and unit-file states; supervisord's status word."""
    if not services:
        return {}
    if manager == "systemd":
        units = [s if "." in s else f"{s}.service" for s in services]
        props = "Id,LoadState,ActiveState,UnitFileState"
        _, out = runner(["systemctl", "show", f"--property={props}", "--", *units])
        states: dict[str, str] = {}
        for block in out.strip().split("\n\n"):
            fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if "Id" in fields:
                states[fields["Id"]] = "/".join(fields.get(k, "") for k in props.split(",")[1:])
        return {unit: states.get(unit, "unknown") for unit in units}
    _, out = runner(["supervisorctl", "status", *services])
    words = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            words[parts[0]] = parts[1]
    return {service: words.get(service, "unknown") for service in services}


def accounts_fingerprint(users: Sequence[str], groups: Sequence[str]) -> dict[str, str]:
    found = {}
    for user in users:
        try:
            entry = pwd.getpwnam(user)
            found[f"user {user}"] = f"{entry.pw_uid}:{_group(entry.pw_gid)}:{entry.pw_dir}:{entry.pw_shell}"
        except KeyError:
            found[f"user {user}"] = "absent"
    for group in groups:
        try:
            found[f"group {group}"] = str(grp.getgrnam(group).gr_gid)
        except KeyError:
            found[f"group {group}"] = "absent"
    return found


def packages_fingerprint(packages: Sequence[str], runner: Runner = run) -> dict[str, str]:
    """package -> 'status version' as dpkg knows it ('absent' for one dpkg does not list)."""
    if not packages:
        return {}
    _, out = runner(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Abbrev}\t${Version}\n", "--", *packages])
    known = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            known[parts[0]] = f"{parts[1].strip()} {parts[2]}"
    return {package: known.get(package, "absent") for package in packages}


def fingerprint(spec: Mapping[str, Any], runner: Runner = run) -> dict[str, Any]:
    return {
        "files": files_fingerprint(spec["paths"]),
        "services": services_fingerprint(spec["manager"], spec["services"], runner),
        "accounts": accounts_fingerprint(spec["users"], spec["groups"]),
        "packages": packages_fingerprint(spec["packages"], runner),
    }


SPEC_KEYS = ("paths", "services", "manager", "users", "groups", "packages")


def differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints, one line each, most telling first."""
    found = []
    for section in ("services", "files", "accounts", "packages"):
        old, new = recorded.get(section, {}), now.get(section, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) == new.get(key):
                continue
            if section == "files":
                what = "appeared" if key not in old else "is gone" if key not in new else "changed"
                found.append(f"{key} {what}")
            else:
                before, after = old.get(key, "unrecorded"), new.get(key, "unrecorded")
                found.append(f"{section[:-1]} {key}: {before} -> {after}")
    return found


class Verdict(NamedTuple):
    """What state=check found: why the host is not current (empty: it is), and whether the app's
    part of it is (the app's inputs are those of the record and nothing on the host differs)."""

    reasons: list[str]
    app_current: bool


def check(
    record: Mapping[str, Any] | None,
    signature: str,
    pending: Sequence[str],
    runner: Runner = run,
    report: Sequence[str] = (),
    app_signature: str | None = None,
) -> Verdict:
    """Compare the host with its record. The app's part can be current on a host that is not: other
    inputs changed (one worker's concurrency) or a restart is pending, and nothing on it was changed
    by hand since the record."""
    reasons = [f"a restart is pending ({p})" for p in pending if os.path.lexists(p)]
    if record is None:
        return Verdict([*reasons, "no record of an earlier converge"], False)
    if record.get("version") != RECORD_VERSION:
        return Verdict([*reasons, "the record is of another version of this module"], False)
    if record.get("signature") != signature:
        reasons.append("the inputs changed since the last converge (inventory, roles, app or wheelhouse)")
    recorded_paths = record.get("spec", {}).get("paths", [])
    reasons += [f"the record does not cover {pattern}" for pattern in report if pattern not in recorded_paths]
    app_inputs_same = app_signature is not None and record.get("app_signature") == app_signature
    if reasons and not app_inputs_same:
        return Verdict(reasons, False)  # no need to look at the host
    changed = differences(record["fingerprint"], fingerprint(record["spec"], runner))
    return Verdict(reasons + changed, app_inputs_same and not changed)


def reported(record: Mapping[str, Any], patterns: Sequence[str]) -> list[str]:
    """The recorded paths (present at the record) that a pattern matches in its own directory, as
    glob would on the host: equal to what is there now when the host is current."""
    split = [os.path.split(pattern) for pattern in patterns]
    found = []
    for path, entry in record["fingerprint"]["files"].items():
        if entry[0] == "absent":
            continue
        directory, name = os.path.split(path)
        if any(directory == where and fnmatch.fnmatchcase(name, what) for where, what in split):
            found.append(path)
    return sorted(found)


def read_record(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path: str, record: Mapping[str, Any]) -> bool:
    """Write the record (root's, 0600) by rename; False when the file already holds it."""
    text = json.dumps(record, sort_keys=True, indent=1) + "\n"
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except OSError:
        pass
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".host-state.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["check", "record", "refresh"], "required": True},
            "path": {"type": "path", "required": True},
            "signature": {"type": "str"},
            "app_signature": {"type": "str"},
            "pending": {"type": "list", "elements": "path", "default": []},
            "paths": {"type": "list", "elements": "str", "default": []},
            "services": {"type": "list", "elements": "str", "default": []},
            "manager": {"type": "str", "choices": ["systemd", "supervisord"], "default": "systemd"},
            "users": {"type": "list", "elements": "str", "default": []},
            "groups": {"type": "list", "elements": "str", "default": []},
            "packages": {"type": "list", "elements": "str", "default": []},
            "report": {"type": "list", "elements": "str", "default": []},
        },
        required_if=[("state", "check", ["signature"]), ("state", "record", ["signature"])],
        supports_check_mode=True,
    )
    params = module.params
    record = read_record(params["path"])
    if params["state"] == "check":
        verdict = check(
            record,
            params["signature"],
            params["pending"],
            report=params["report"],
            app_signature=params["app_signature"],
        )
        found = [] if verdict.reasons else reported(record, params["report"])
        module.exit_json(
            changed=False,
            current=not verdict.reasons,
            reasons=verdict.reasons[:MAX_REASONS],
            reported=found,
            app_current=verdict.app_current,
        )
    if params["state"] == "refresh":
        if record is None or "spec" not in record:
            module.exit_json(
                changed=False, current=False, reasons=["no record to refresh"], reported=[], app_current=False
            )
        spec, signature, app_signature = record["spec"], record["signature"], record.get("app_signature")
    else:
        spec, signature, app_signature = (
            {key: params[key] for key in SPEC_KEYS},
            params["signature"],
            params["app_signature"],
        )
    new = {
        "version": RECORD_VERSION,
        "signature": signature,
        "app_signature": app_signature,
        "spec": spec,
        "fingerprint": fingerprint(spec),
    }
    changed = new != record
    if changed and not module.check_mode:
        write_record(params["path"], new)
    module.exit_json(changed=changed, current=True, reasons=[], app_current=True)


if __name__ == "__main__":
    main()
