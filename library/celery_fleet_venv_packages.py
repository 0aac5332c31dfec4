#!/usr/bin/python
"""Module of celery-fleet: which requirements a virtualenv does not satisfy, from its packages' metadata.

Why a module: ``ansible.builtin.pip`` runs ``pip freeze`` in the virtualenv on every run to find out
that there is nothing to install, a pip process on the host (0.8-1.0 s there per no-op run, twice on
a host of Flower: the app's packages, then Flower). The roles ask this module first, which reads the
installed distributions' metadata (``importlib.metadata`` on the virtualenv's site-packages) and
evaluates each requirement's version specifier (``packaging``, which roles/celery_app installs), and
run ``pip`` only when a requirement is not satisfied, with the same list as before, so pip still
resolves them together.

A requirement this module cannot judge (a URL, a path, a file name, anything ``packaging`` does not
parse) is reported unsatisfied: ``pip`` decides about it, as before. As with ``pip``'s own check,
only the named distributions are compared (not their extras' dependencies).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - reported by main()
    Requirement = None

DOCUMENTATION = r"""
module: celery_fleet_venv_packages
short_description: The requirements a Python virtualenv does not satisfy
description:
  - Reads the distributions installed in I(venv) (their metadata in its site-packages) and returns
    the requirements of I(requirements) they do not satisfy, for C(ansible.builtin.pip) to install.
    Changes nothing; supports check mode.
  - A requirement that is not a plain PEP 508 name with an optional version specifier (a URL, a
    path, a file) is always returned as unsatisfied, so that C(pip) judges it; so is every
    requirement on a host without python3-packaging.
requirements: [python3-packaging on the host]
options:
  venv:
    description: The virtualenv's directory.
    type: path
    required: true
  requirements:
    description: Requirements as given to C(ansible.builtin.pip)'s C(name), such as C(flower==2.2.0).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Find out whether the virtualenv has Flower
  celery_fleet_venv_packages:
    venv: /opt/celerydemo/venv
    requirements: [flower==2.2.0]
  register: __flower_register_venv_packages

- name: Install Flower into the virtualenv
  ansible.builtin.pip:
    name: flower==2.2.0
    virtualenv: /opt/celerydemo/venv
  when: __flower_register_venv_packages.unsatisfied | length > 0
"""

RETURN = r"""
venv_exists:
  description: Whether I(venv) has a Python interpreter (C(bin/python)).
  type: bool
  returned: always
unsatisfied:
  description: The requirements of I(requirements) the virtualenv does not satisfy, in their order.
  type: list
  elements: str
  returned: always
installed:
  description: Installed version of each distribution named by I(requirements), by the name given.
  type: dict
  returned: always
"""


def installed_versions(site_packages: Iterable[str]) -> dict[str, str]:
    """Canonical distribution name -> version, for the distributions installed in these directories."""
    from importlib import metadata

    versions: dict[str, str] = {}
    for dist in metadata.distributions(path=list(site_packages)):
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            versions.setdefault(canonicalize_name(name), dist.version)
    return versions


def unsatisfied(requirements: Iterable[str], versions: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The requirements ``versions`` does not satisfy (in order, each once), and the named ones' versions."""
    missing: list[str] = []
    found: dict[str, str] = {}
    for text in dict.fromkeys(requirements):
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            missing.append(text)
            continue
        version = versions.get(canonicalize_name(requirement.name))
        if requirement.url or version is None:
            missing.append(text)
            continue
        found[requirement.name] = version
        try:
            satisfied = requirement.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            satisfied = False
        if not satisfied:
            missing.append(text)
    return missing, found


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "venv": {"type": "path", "required": True},
            "requirements": {"type": "list", "elements": "str", "required": True},
        },
        supports_check_mode=True,
    )
    venv, requirements = module.params["venv"], module.params["requirements"]
    exists = os.path.exists(os.path.join(venv, "bin", "python"))
    if Requirement is None:
        # Not installed yet (check mode on a fresh host, before roles/celery_app's apt): pip judges.
        module.exit_json(
            changed=False,
            venv_exists=exists,
            unsatisfied=list(dict.fromkeys(requirements)),
            installed={},
            msg=missing_required_lib("packaging (python3-packaging)") + ": every requirement left to pip",
        )
    site_packages = sorted(glob.glob(os.path.join(glob.escape(venv), "lib", "python3*", "site-packages")))
    versions = installed_versions(site_packages) if exists and site_packages else {}
    missing, found = unsatisfied(requirements, versions)
    module.exit_json(changed=False, venv_exists=exists, unsatisfied=missing, installed=found)


if __name__ == "__main__":
    main()
