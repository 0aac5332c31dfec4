"""Lookup of roles/celery_worker: the inputs' signature of the current host (the unchanged-host skip).

Why a lookup and not a filter over ``hostvars[inventory_hostname]``: a variable read through
``hostvars`` is templated without ``hostvars`` (lib/celery_fleet/templating.py), so a value built
from another host's variables, such as the sandbox's broker address, entered the signature as its
error whatever that host's address was, and a worker host whose broker moved would have been
skipped. Here the host's own variables (those ``hostvars`` lists: inventory, extra vars, facts set
by earlier plays) are templated in the task's context, each on its own; one that fails counts as its
error's type (lib/celery_fleet/hoststate.py).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "lib"))

from celery_fleet import hoststate
from celery_fleet.templating import TemplatedVars

DOCUMENTATION = r"""
name: celery_fleet_inputs_signature
short_description: sha256 of the current host's inputs, some trees' code and other trees' file lists
description:
  - Templates each of the host's own variables in the task's context (so C(hostvars) works in them),
    adds the facts the roles read, the content under O(trees) and the names, sizes and times of the
    files under O(listings), and returns the sha256 (lib/celery_fleet/hoststate.py).
options:
  trees:
    description: Files and directories whose content counts.
    type: list
    elements: str
    default: []
  listings:
    description: Directories whose file list counts (names, sizes, modification times).
    type: list
    elements: str
    default: []
  replace:
    description:
      - Variables of the host that count as the value given here instead of their own (what a part
        of the converge reads of them).
    type: dict
    default: {}
"""

RETURN = r"""
_raw:
  description: One sha256 hex digest.
  type: list
  elements: str
"""


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Mapping[str, Any] | None = None, **kwargs: Any) -> list[str]:
        if terms:
            raise AnsibleLookupError(
                "celery_fleet_inputs_signature takes no terms, only trees= and listings="
            )
        if variables is None:
            raise AnsibleLookupError("celery_fleet_inputs_signature needs the task's variables")
        self.set_options(var_options=variables, direct=kwargs)
        host = variables["inventory_hostname"]
        # The host's own names (inventory, extra vars, facts set earlier), valued in the task's context.
        view = TemplatedVars(variables, self._templar, names=variables["hostvars"][host])
        return [
            hoststate.inputs_signature(
                view, self.get_option("trees"), self.get_option("listings"), self.get_option("replace")
            )
        ]
