"""molecule/resources/callback/celery_fleet_warm_forks.py: the task processes Ansible forks inherit
the Jinja filter and test wrappers and the template lexer from the run's first process instead of
building them each, also after a role's plugin directory cleared the wrappers.

A probe lookup (``with_probe``: run in the task process before anything there is templated) says
what that process found; a real ansible-playbook run (tests/conftest.py's ``ansible``, the harness's
callback directory) with and without the plugin enabled.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROBE = """
from ansible._internal._templating._jinja_bits import AnsibleEnvironment
from ansible.plugins.loader import filter_loader, test_loader
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        filters = bool(filter_loader._cached_non_collection_wrappers)
        tests = bool(test_loader._cached_non_collection_wrappers)
        return [f"filters={filters} tests={tests} lexers={len(AnsibleEnvironment._lexer_cache)}"]
"""

# A role with a filter plugin of its own: loading it adds a plugin directory, which clears the
# filter and test wrappers of the run's first process.
ROLE_FILTER = """
class FilterModule:
    def filters(self):
        return {"shout": lambda value: str(value).upper() + "!"}
"""

PLAY = """- hosts: all
  gather_facts: false
  tasks:
    - name: Probe before the role
      ansible.builtin.debug:
        msg: "BEFORE {{ item }}"
      with_probe: [now]
    - name: Use a filter and a test
      ansible.builtin.debug:
        msg: "USED {{ [3, 1, 2] | sort | first is number }}"
    - name: Load a role with its own filter plugin
      ansible.builtin.include_role:
        name: shouting
"""

ROLE_TASKS = """- name: Probe after the role's plugin directory was added
  ansible.builtin.debug:
    msg: "AFTER {{ item }}"
  with_probe: [now]
- name: Use the role's filter
  ansible.builtin.debug:
    msg: "{{ 'role filter' | shout }}"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "lookup_plugins").mkdir()
    (tmp_path / "lookup_plugins" / "probe.py").write_text(PROBE)
    role = tmp_path / "roles" / "shouting"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text(ROLE_TASKS)
    (role / "filter_plugins").mkdir()
    (role / "filter_plugins" / "shout.py").write_text(ROLE_FILTER)
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "ansible.cfg").write_text("[defaults]\nroles_path = roles\nnocows = True\n")
    (tmp_path / "inventory.ini").write_text(
        f"local ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    return tmp_path


def _play(ansible, project: Path, callbacks: str) -> str:
    played = ansible(
        "ansible-playbook",
        "-i",
        "inventory.ini",
        "play.yml",
        cwd=project,
        extra_env={"ANSIBLE_CONFIG": str(project / "ansible.cfg"), "ANSIBLE_CALLBACKS_ENABLED": callbacks},
        timeout=240,
    )
    assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-2000:]
    assert "USED True" in played.stdout, played.stdout[-3000:]
    assert "ROLE FILTER!" in played.stdout, played.stdout[-3000:]
    return played.stdout


def test_task_processes_inherit_the_wrappers_and_the_lexer(ansible, project: Path) -> None:
    out = _play(ansible, project, "celery_fleet_warm_forks")
    assert "BEFORE filters=True tests=True lexers=1" in out, out[-3000:]
    # The role's directory cleared the wrappers in the first process: loaded again before the fork.
    assert "AFTER filters=True tests=True lexers=1" in out, out[-3000:]


def test_without_the_plugin_each_task_process_builds_them(ansible, project: Path) -> None:
    """What the plugin saves (and proof that the probe sees it): without it, a task process starts
    without the wrappers."""
    out = _play(ansible, project, "ansible.posix.profile_tasks")
    # (Whether the first process happened to build a lexer for templating of its own before the
    # fork depends on what it ran: not asserted.)
    assert "BEFORE filters=False tests=False" in out, out[-3000:]
    assert "AFTER filters=False tests=False" in out, out[-3000:]
