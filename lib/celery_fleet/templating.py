"""A host's variables templated on access, for the lookups that need them as that host's tasks see
them (roles/celery_worker's celery_fleet_inputs_signature, playbooks/validate.yml's
celery_fleet_fleet_input_problems).

Why not ``hostvars[host]``: Ansible templates a variable read through ``hostvars`` without ``hostvars``
itself, so a value built from another host's variables (the sandbox's broker address,
``hostvars[groups['redis'][0]][...]``) fails there. A lookup has the task's templar, which has them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["TemplatedVars"]


class TemplatedVars(Mapping):
    """``names`` (default: every key of ``raw``) -> ``templar.template(raw[name])``, on access."""

    def __init__(self, raw: Mapping[str, Any], templar: Any, names: Iterable[str] | None = None) -> None:
        self._raw, self._templar = raw, templar
        self._names = [str(n) for n in (raw if names is None else names) if n in raw]

    def __getitem__(self, name: str) -> Any:
        if name not in self._raw:
            raise KeyError(name)
        return self._templar.template(self._raw[name])

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
