#!/usr/bin/python
"""Module of celery-fleet: which of a role's Debian packages are not installed yet, from dpkg's database.

Why a module: ``ansible.builtin.apt`` with ``state: present`` opens apt's cache through python3-apt
even when every package is installed, and with ``update_cache``/``cache_valid_time`` it reads the
lists' age too: 0.5-0.8 CPU-s on the host per no-op run (measured in a bookworm container: 825 ms
with the roles' cache settings, 525 ms without, 160 ms for this module), and a no-op ``site.yml``
of the sandbox ran four of them. The roles ask this module first and run ``apt`` only for what it
reports missing, so a re-run installs nothing and pays one cheap read instead.

A name that is not a plain package name (``pkg=1.2``, ``pkg:arm64``, ``pkg*``, a virtual package
dpkg does not know) is always reported missing: ``apt`` decides about it, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: celery_fleet_packages
short_description: The Debian packages of a list that dpkg does not have installed
description:
  - Reads dpkg's database (C(dpkg-query --show)) for I(names) and returns those not installed, in
    their order, for C(ansible.builtin.apt) to install. Changes nothing; supports check mode.
  - A name that is not a plain Debian package name (a version C(=), an architecture C(:), a
    wildcard) is always returned as missing, so that C(apt) judges it.
options:
  names:
    description: Debian package names, as given to C(ansible.builtin.apt)'s C(name).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Find the server packages not installed yet
  celery_fleet_packages:
    names: [redis-server]
  register: __redis_register_packages

- name: Install the server package
  ansible.builtin.apt:
    name: "{{ __redis_register_packages.missing }}"
    state: present
  when: __redis_register_packages.missing | length > 0
"""

RETURN = r"""
missing:
  description: The names of I(names) that are not installed (or not plain names), in their order.
  type: list
  elements: str
  returned: always
installed:
  description: Installed version of each plain name of I(names) that is installed.
  type: dict
  returned: always
"""

# Debian policy 5.6.1: lower case letters, digits, plus, minus and dots, at least two characters,
# starting with an alphanumeric character.
PLAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
FORMAT = "${Package}\\t${db:Status-Abbrev}\\t${Version}\\n"


def installed_versions(output: str) -> dict[str, str]:
    """Package -> version for each package dpkg-query lists as installed ("ii")."""
    versions: dict[str, str] = {}
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[1].strip() == "ii":
            versions[fields[0]] = fields[2]
    return versions


def missing_packages(
    names: Iterable[str], query: Callable[[list[str]], str]
) -> tuple[list[str], dict[str, str]]:
    """The names not installed (in order, each once), and the installed ones' versions.

    ``query`` runs dpkg-query for the plain names and returns its standard output; it is not called
    when there is no plain name."""
    ordered = list(dict.fromkeys(names))
    plain = [name for name in ordered if PLAIN_NAME.match(name)]
    versions = installed_versions(query(plain)) if plain else {}
    installed = {name: versions[name] for name in plain if name in versions}
    return [name for name in ordered if name not in installed], installed


def main() -> None:
    module = AnsibleModule(
        argument_spec={"names": {"type": "list", "elements": "str", "required": True}},
        supports_check_mode=True,
    )
    dpkg_query = module.get_bin_path("dpkg-query", required=True)

    def query(plain: list[str]) -> str:
        # rc 1 when a name is unknown to dpkg: those are simply not listed.
        rc, out, err = module.run_command([dpkg_query, "--show", f"--showformat={FORMAT}", "--", *plain])
        if rc not in (0, 1):
            module.fail_json(msg=f"dpkg-query failed (rc {rc}): {err.strip()}")
        return out

    missing, installed = missing_packages(module.params["names"], query)
    module.exit_json(changed=False, missing=missing, installed=installed)


if __name__ == "__main__":
    main()
