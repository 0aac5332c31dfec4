"""roles/celery_app's fact celery_app_changed means "the app changed on this host during this run".

site.yml runs the role in the workers', beat's and Flower's plays; only the first finds the new
files to write. The role's own task (read from tasks/configure.yml, not copied) runs here in three
plays of one run against this machine, fed the registers the role's tasks would leave: the later
plays, with nothing changed, must keep the fact true, and a run where nothing changes must leave it
false in every play. molecule/flower's test_app_change.py shows the restarts it brings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
TASK = "configure | Record whether the app changed during this run"
# Every register the task reads, as the role's tasks leave them when nothing changed (or skipped).
UNCHANGED = {
    "__celery_app_register_pip": {"changed": False},
    "__celery_app_register_uv": {"changed": False, "skipped": True},
    "__celery_app_register_src": {"changed": False},
    "__celery_app_register_git": {"changed": False, "skipped": True},
    "__celery_app_register_env": {"changed": False},
    "__celery_app_register_wrapper": {"changed": False},
    "__celery_app_register_fleet_config": {"changed": False},
    "__celery_app_register_entry": {"changed": False},
    "__celery_app_register_tls_dir": {"changed": False},
    "__celery_app_register_tls_certs": {"changed": False, "skipped": True},
    "__celery_app_register_tls_key": {"changed": False, "skipped": True},
    "__celery_app_register_tls_removed": {"changed": False, "skipped": True},
}


def record_task() -> dict:
    tasks = yaml.safe_load((TOP / "roles/celery_app/tasks/configure.yml").read_text())
    return next(task for task in tasks if task.get("name") == TASK)


@pytest.fixture
def facts_per_play(tmp_path, local_inventory, ansible_playbook):
    """Returns a runner: the task once per play, each play with the named registers changed, in; the
    fact after each play out."""
    inventory = local_inventory({"all": {"app": {}}})

    def run(changed_per_play: list[list[str]]) -> list[bool]:
        out = tmp_path / "seen.json"
        plays = []
        for number, changed in enumerate(changed_per_play):
            registers = {**UNCHANGED, **{name: {"changed": True} for name in changed}}
            tasks = [
                record_task(),
                {"ansible.builtin.set_fact": {"seen": "{{ seen | default([]) + [celery_app_changed] }}"}},
            ]
            if number == len(changed_per_play) - 1:
                tasks.append({"ansible.builtin.copy": {"content": "{{ seen | to_json }}", "dest": str(out)}})
            plays.append({"hosts": "app", "gather_facts": False, "vars": registers, "tasks": tasks})
        playbook = tmp_path / "plays.yml"
        playbook.write_text(yaml.safe_dump(plays))
        result = ansible_playbook(playbook, inventory=inventory, timeout=120)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return json.loads(out.read_text())

    return run


def test_a_change_in_the_first_play_holds_for_the_later_plays_of_the_run(facts_per_play):
    seen = facts_per_play([["__celery_app_register_env"], [], []])

    assert seen == [True, True, True]


def test_a_run_that_changes_nothing_leaves_it_false_in_every_play(facts_per_play):
    seen = facts_per_play([[], [], []])

    assert seen == [False, False, False]


def test_a_change_in_a_later_play_sets_it_from_there_on(facts_per_play):
    seen = facts_per_play([[], ["__celery_app_register_wrapper"], []])

    assert seen == [False, True, True]
