#!/usr/bin/python
"""Module of celery-fleet: a role's directories and small files on a host, in one module run.

Why a module: ``ansible.builtin.template`` and ``copy`` cost two module runs on the host for a file
that is already right (``stat`` for its checksum, then ``file`` for its owner and mode) and three for
one that changes; ``file`` one per directory. A module run is a Python process on the host that
unpacks and compiles Ansible's module_utils anew (~0.3 CPU-s there, and a forked worker on the
controller), where the comparison itself takes microseconds. A no-op ``site.yml`` of the Sentinel
scenario ran 116 of its 242 module runs for unchanged files. Here a role's directories and files go
in one run: each file's content is rendered on the controller (``lookup('ansible.builtin.template')``)
or read from another file on the host (``src``, as ``copy``'s ``remote_src``), compared with what
the host has, and written only when it differs, atomically (a temporary file in the same directory,
owner and mode set, the optional ``validate`` command run on it, then renamed over the old one).

Secrets: the content travels base64-encoded as a no_log option, so Ansible masks it in the task's
output and the module's invocation line in the journal; a file marked ``secret`` shows no content in
``--diff`` and its content is masked in everything the module returns.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import grp
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from typing import Any, NamedTuple

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: celery_fleet_files
short_description: Several directories and small files on a host, each written only when it differs
description:
  - Creates the directories of I(directories), then writes the files of I(files), then removes
    the files of I(absent), in order, in one module run. Each file's owner, group and mode are set
    on a temporary file in the same directory, which replaces the old file by a rename (readers
    never see a half-written file, nor the new content with the old mode).
  - A file or directory whose content, owner, group and mode are already right is left alone.
  - Supports check mode and diff mode (one diff per changed file or directory).
options:
  directories:
    description: Directories to create if missing (with their parents), owner, group and mode set.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: str, required: true}
      owner: {description: Owner's name., type: str, default: root}
      group: {description: Group's name., type: str, default: root}
      mode: {description: Octal mode as a string, such as C("0750")., type: str, required: true}
  files:
    description: Files to write; exactly one of I(content_base64) and I(src) per file.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path; its directory must exist., type: str, required: true}
      content_base64:
        description: The content, base64-encoded (C(b64encode)); no_log, so never printed or logged.
        type: str
        no_log: true
      src:
        description: A file on the host whose content is copied (as C(copy)'s C(remote_src)).
        type: str
      owner: {description: Owner's name., type: str, default: root}
      group: {description: Group's name., type: str, default: root}
      mode: {description: Octal mode as a string, such as C("0640")., type: str, required: true}
      secret:
        description: The content is secret; no diff of it, and it is masked in every returned value.
        type: bool
        default: false
      validate:
        description:
          - A command run on the temporary file before it replaces the file (C(%s) is its path).
          - Non-zero fails the task and leaves the file unchanged.
        type: str
      backup:
        description: Keep the content a write replaces in a file beside it (as C(copy)'s C(backup)).
        type: bool
        default: false
  absent:
    description: Files to remove if they exist (after the files are written); a directory fails.
    type: list
    elements: str
    default: []
  absent_directories:
    description: Directories to remove with their content, if they exist (last); C(/) and top-level ones fail.
    type: list
    elements: str
    default: []
"""

RETURN = r"""
changed_paths:
  description: The directories and files created, changed (content, owner, group, mode) or removed.
  type: list
  elements: str
  returned: always
content_changed:
  description: The files whose content was (or in check mode would be) written.
  type: list
  elements: str
  returned: always
backup_files:
  description: Each file written with I(backup) that had a previous content, and the backup's path.
  type: dict
  returned: always
"""

HIDDEN = "(secret: content not shown)\n"


class Want(NamedTuple):
    """What a path must be: its owner, group and mode."""

    path: str
    uid: int
    gid: int
    mode: int
    owner: str
    group: str


def parse_mode(value: str, path: str) -> int:
    """An octal mode string ("0640") as an int; anything else names the path and the field."""
    try:
        mode = int(str(value), 8)
    except ValueError:
        raise ValueError(f"{path}: mode {value!r} is not an octal number such as '0640'") from None
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"{path}: mode {value!r} is out of range (0000-7777)")
    return mode


def resolve(spec: dict[str, Any], field: str, check: bool) -> int:
    """The id of a spec's owner or group. In check mode a user or group that does not exist yet
    (created by an earlier task that check mode skipped) is -1: it differs from whatever the host
    has, so the path reports a change."""
    name = spec[field]
    try:
        return pwd.getpwnam(name).pw_uid if field == "owner" else grp.getgrnam(name).gr_gid
    except KeyError:
        if check:
            return -1
        kind = "user" if field == "owner" else "group"
        raise ValueError(f"{spec['path']}: {field} {name!r} is not a {kind} on this host") from None


def want(spec: dict[str, Any], check: bool) -> Want:
    """The owner, group and mode of a directory or file spec, names resolved to ids."""
    path = spec["path"]
    if not os.path.isabs(path):
        raise ValueError(f"{path}: path must be absolute")
    uid, gid = resolve(spec, "owner", check), resolve(spec, "group", check)
    return Want(path, uid, gid, parse_mode(spec["mode"], path), spec["owner"], spec["group"])


def attributes(st: os.stat_result | None) -> str:
    """A path's owner, group and mode as diff text (empty: it does not exist)."""
    if st is None:
        return ""
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"owner: {owner}\ngroup: {group}\nmode: {stat.S_IMODE(st.st_mode):04o}\n"


def wanted_attributes(w: Want) -> str:
    return f"owner: {w.owner}\ngroup: {w.group}\nmode: {w.mode:04o}\n"


def attributes_differ(st: os.stat_result, w: Want) -> bool:
    return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (w.uid, w.gid, w.mode)


def lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def ensure_directory(spec: dict[str, Any], check: bool) -> dict[str, Any] | None:
    """Create the directory or fix its attributes; a diff when something changed, else None."""
    w = want(spec, check)
    st = lstat(w.path)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{w.path}: exists and is not a directory")
    if st is not None and not attributes_differ(st, w):
        return None
    if not check:
        if st is None:
            os.makedirs(w.path, mode=0o700, exist_ok=True)
        os.chown(w.path, w.uid, w.gid)
        os.chmod(w.path, w.mode)
    return {
        "before_header": f"{w.path} (directory)",
        "after_header": f"{w.path} (directory)",
        "before": "absent\n" if st is None else attributes(st),
        "after": wanted_attributes(w),
    }


def read_content(spec: dict[str, Any], check: bool) -> bytes | None:
    """The wanted content of a file spec: decoded from content_base64 or read from src (None: a src
    that does not exist yet in check mode, made by an earlier task that check mode skipped)."""
    path = spec["path"]
    has_content, has_src = spec.get("content_base64") is not None, spec.get("src") is not None
    if has_content == has_src:
        raise ValueError(f"{path}: give exactly one of content_base64 and src")
    if has_src:
        try:
            with open(spec["src"], "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            if check:
                return None
            raise ValueError(f"{path}: src {spec['src']} does not exist") from None
        except OSError as exc:
            raise ValueError(f"{path}: src {spec['src']}: {exc.strerror}") from None
    try:
        return base64.b64decode(spec["content_base64"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{path}: content_base64 is not base64 (use the b64encode filter)") from None


def validate(command: str, temp: str, path: str) -> None:
    """Run the validate command on the temporary file; a failure names the file and says why."""
    if "%s" not in command:
        raise ValueError(f"{path}: validate must contain %s (the temporary file's path)")
    argv = shlex.split(command.replace("%s", shlex.quote(temp)))
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise ValueError(f"{path}: validate ({command}) failed with rc={done.returncode}: {output}")


def write_file(w: Want, content: bytes, validate_command: str | None) -> None:
    """The content into a temporary file beside the path, attributes set, validated, renamed over it."""
    directory = os.path.dirname(w.path) or "/"
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(w.path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fchown(handle.fileno(), w.uid, w.gid)
            os.fchmod(handle.fileno(), w.mode)
            os.fsync(handle.fileno())
        if validate_command:
            validate(validate_command, temp, w.path)
        os.rename(temp, w.path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def keep_backup(path: str, old: bytes, st: os.stat_result) -> str:
    """The file's current content, owner and mode in a new file beside it (as ``copy``'s
    ``backup``: <path>.<pid>.<time>~); its path."""
    backup = f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~"
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(old)
        os.fchown(handle.fileno(), st.st_uid, st.st_gid)
        os.fchmod(handle.fileno(), stat.S_IMODE(st.st_mode))
    return backup


def text(content: bytes) -> str:
    return content.decode("utf-8", errors="replace")


def ensure_file(spec: dict[str, Any], check: bool) -> tuple[dict[str, Any] | None, bool, str | None]:
    """Write the file or fix its attributes: (a diff when something changed, else None; whether the
    content is written; the backup of the content it replaced, with ``backup``)."""
    w = want(spec, check)
    content = read_content(spec, check)
    st = lstat(w.path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{w.path}: exists and is not a regular file")
    old = b""
    if st is not None:
        with open(w.path, "rb") as handle:
            old = handle.read()
    header = {"before_header": w.path, "after_header": w.path}
    if content is None:
        after = wanted_attributes(w) + f"\n(the content of {spec['src']}, which does not exist yet)\n"
        return {**header, "before": attributes(st), "after": after}, True, None
    content_differs = st is None or old != content
    if not content_differs and not attributes_differ(st, w):
        return None, False, None
    backup = None
    if not check:
        if content_differs:
            if spec.get("backup") and st is not None:
                backup = keep_backup(w.path, old, st)
            write_file(w, content, spec.get("validate"))
        else:
            os.chown(w.path, w.uid, w.gid)
            os.chmod(w.path, w.mode)
    secret = spec.get("secret")
    before = attributes(st) + ("" if st is None else "\n" + (HIDDEN if secret else text(old)))
    after = wanted_attributes(w) + "\n" + (HIDDEN if secret else text(content))
    return {**header, "before": before, "after": after}, content_differs, backup


def remove_file(path: str, check: bool) -> dict[str, Any] | None:
    """Remove a file that should not be there; a diff when it was, else None."""
    if not os.path.isabs(path):
        raise ValueError(f"{path}: path must be absolute")
    st = lstat(path)
    if st is None:
        return None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{path}: is a directory, not a file to remove")
    if not check:
        os.unlink(path)
    return {"before_header": path, "after_header": path, "before": attributes(st), "after": "absent\n"}


def remove_directory(path: str, check: bool) -> dict[str, Any] | None:
    """Remove a directory and its content; a diff when it was there, else None."""
    parts = [part for part in path.split("/") if part]
    if not os.path.isabs(path) or len(parts) < 2 or ".." in parts:
        raise ValueError(
            f"{path}: refused as a directory to remove (absolute, two levels deep at least, no '..')"
        )
    st = lstat(path)
    if st is None:
        return None
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{path}: is not a directory")
    if not check:
        shutil.rmtree(path)
    return {
        "before_header": f"{path} (directory)",
        "after_header": f"{path} (directory)",
        "before": attributes(st),
        "after": "absent\n",
    }


def ensure(
    directories: list[dict[str, Any]],
    files: list[dict[str, Any]],
    check: bool,
    absent: list[str] | None = None,
    absent_directories: list[str] | None = None,
) -> dict[str, Any]:
    """Every directory, then every file, then every file and directory to remove, in order: what
    changed, and the diffs."""
    changed: list[str] = []
    content_changed: list[str] = []
    diffs: list[dict[str, Any]] = []
    for spec in directories:
        diff = ensure_directory(spec, check)
        if diff is not None:
            changed.append(spec["path"])
            diffs.append(diff)
    backups: dict[str, str] = {}
    for spec in files:
        diff, written, backup = ensure_file(spec, check)
        if diff is not None:
            changed.append(spec["path"])
            diffs.append(diff)
        if written:
            content_changed.append(spec["path"])
        if backup is not None:
            backups[spec["path"]] = backup
    for path in absent or []:
        diff = remove_file(path, check)
        if diff is not None:
            changed.append(path)
            diffs.append(diff)
    for path in absent_directories or []:
        diff = remove_directory(path, check)
        if diff is not None:
            changed.append(path)
            diffs.append(diff)
    return {
        "changed": bool(changed),
        "changed_paths": changed,
        "content_changed": content_changed,
        "backup_files": backups,
        "diff": diffs,
    }


def main() -> None:
    attribute_options = {
        "path": {"type": "str", "required": True},
        "owner": {"type": "str", "default": "root"},
        "group": {"type": "str", "default": "root"},
        "mode": {"type": "str", "required": True},
    }
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [], "options": attribute_options},
            "files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    **attribute_options,
                    "content_base64": {"type": "str", "no_log": True},
                    "src": {"type": "str"},
                    "secret": {"type": "bool", "default": False},
                    "validate": {"type": "str"},
                    "backup": {"type": "bool", "default": False},
                },
            },
            "absent": {"type": "list", "elements": "str", "default": []},
            "absent_directories": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    files = module.params["files"]
    # A secret file's decoded content is masked wherever it could show (an error message quoting it).
    for spec in files:
        if spec["secret"] and spec.get("content_base64"):
            with contextlib.suppress(binascii.Error, ValueError):
                module.no_log_values.add(text(base64.b64decode(spec["content_base64"])))
    try:
        result = ensure(
            module.params["directories"],
            files,
            module.check_mode,
            module.params["absent"],
            module.params["absent_directories"],
        )
    except (ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
