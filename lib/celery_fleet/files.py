"""The file lists a role hands to library/celery_fleet_files.py (one module run for all of them).

A role writes its list in YAML as it would write ``copy`` tasks: ``path``, ``content`` (text,
rendered on the controller: a variable, or ``lookup('ansible.builtin.template', ...)``) or ``src``
(a file on the host), ``owner``, ``group``, ``mode``, ``secret``, ``validate``, ``backup``; ``present: false``
leaves an entry out (a TLS file whose variable is empty). :func:`file_specs` turns that into the
module's input: the content base64-encoded (a no_log option of the module, so it is masked in the
task's output and the module's journal line).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from celery_fleet.errors import FleetError, Problem

# What the module accepts per file, besides the content.
FIELDS = frozenset({"path", "src", "owner", "group", "mode", "secret", "validate", "backup"})


def _present(value: Any, path: str) -> bool:
    """``present`` as a boolean: a bool, or the text an older templating gives ("True", "false")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise FleetError([Problem("files", f"{path}: present must be true or false, got {value!r}")])


def file_specs(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The module's ``files`` from a role's entries: those not ``present: false``, ``content`` as
    ``content_base64``. An unknown field or a file with both or neither of content and src fails
    naming the file."""
    specs: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise FleetError([Problem("files", f"each entry must be a mapping, got {type(entry).__name__}")])
        path = entry.get("path", "<no path>")
        unknown = sorted(set(entry) - FIELDS - {"content", "present"})
        if unknown:
            allowed = ", ".join(sorted(FIELDS | {"content", "present"}))
            raise FleetError(
                [Problem("files", f"{path}: unknown field(s) {', '.join(unknown)}; allowed: {allowed}")]
            )
        if not _present(entry.get("present", True), path):
            continue
        if ("content" in entry) == ("src" in entry):
            raise FleetError([Problem("files", f"{path}: give exactly one of content and src")])
        spec = {key: value for key, value in entry.items() if key in FIELDS}
        if "content" in entry:
            content = entry["content"]
            if not isinstance(content, str):
                raise FleetError(
                    [Problem("files", f"{path}: content must be text, got {type(content).__name__}")]
                )
            spec["content_base64"] = base64.b64encode(content.encode("utf-8")).decode("ascii")
        specs.append(spec)
    return specs


def file_result(register: Mapping[str, Any] | None, path: str) -> dict[str, Any]:
    """One file's part of a celery_fleet_files register, shaped as a ``copy``/``template`` result
    (what the tasks reading it test): ``changed``, ``dest`` and, where a backup kept the previous
    content, ``backup_file``. A skipped or missing register reads as unchanged."""
    register = register if isinstance(register, Mapping) else {}
    result: dict[str, Any] = {"changed": path in (register.get("changed_paths") or []), "dest": path}
    backup = (register.get("backup_files") or {}).get(path)
    if backup:
        result["backup_file"] = str(backup)
    return result
