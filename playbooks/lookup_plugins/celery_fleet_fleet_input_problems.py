"""Lookup of playbooks/validate.yml: steps 1 and 2 (each host's variables against the argument specs
and the rules of the roles its groups run) for every host of the inventory, in one task.

Why a lookup: the checks need each host's variables templated as that host's tasks see them, which
``hostvars`` does not (lib/celery_fleet/templating.py): each host's own variables are templated in
its context with ``hostvars`` added. The checks themselves are lib/celery_fleet/inventory.py's
fleet_input_problems. Two tasks per host did this before, and the play's time grew with the hosts'
process forks (bench/README.md, benchmark 10).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

from celery_fleet import inventory
from celery_fleet.templating import TemplatedVars

DOCUMENTATION = r"""
name: celery_fleet_fleet_input_problems
short_description: Every host's problems against the argument specs and rules of its roles
description:
  - For each of O(hosts), the roles whose groups it is in (O(role_groups)), its variables checked
    against those roles' C(meta/argument_specs.yml) under O(roles_dir) and through their rules
    (lib/celery_fleet/inventory.py); O(defaults) stand for what a host leaves unset. Returns one list
    of messages, each naming the host, the field and what is allowed.
options:
  hosts:
    description: The inventory hosts to check.
    type: list
    elements: str
    required: true
  role_groups:
    description: Role -> the groups whose plays run it.
    type: dict
    required: true
  roles_dir:
    description: The directory of the roles.
    type: str
    required: true
  defaults:
    description: Values for the rules where a host leaves a variable unset.
    type: dict
    default: {}
"""

RETURN = r"""
_raw:
  description: One list of problems (empty when every host is valid).
  type: list
"""


class _Fleet(Mapping):
    def __init__(self, hostvars: Any, templar: Any) -> None:
        self._hostvars, self._templar = hostvars, templar

    def __getitem__(self, host: str) -> TemplatedVars:
        raw = self._hostvars.raw_get(host)
        if not isinstance(raw, Mapping):
            raise KeyError(host)
        context = {**raw, "hostvars": self._hostvars}
        return TemplatedVars(raw, self._templar.copy_with_new_env(available_variables=context))

    def __iter__(self) -> Iterator[str]:
        return iter(self._hostvars)

    def __len__(self) -> int:
        return len(self._hostvars)


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Mapping[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        if terms:
            raise AnsibleLookupError("celery_fleet_fleet_input_problems takes options only")
        if variables is None:
            raise AnsibleLookupError("celery_fleet_fleet_input_problems needs the task's variables")
        self.set_options(var_options=variables, direct=kwargs)
        fleet = _Fleet(variables["hostvars"], self._templar)
        problems = inventory.fleet_input_problems(
            fleet,
            self.get_option("hosts"),
            self.get_option("role_groups"),
            self.get_option("roles_dir"),
            self.get_option("defaults"),
        )
        return [problems]
