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
# Every register the task reads, as the role's tasks leave them when nothing changed (or skipped),
# and the one role variable it reads (the app's celery command, whose change restarts nothing).
CELERY = "/opt/app/bin/celery"
ENV_FILE = "/etc/app/celery.env"
UNCHANGED = {
    "__celery_app_register_pip": {"changed": False},
    "__celery_app_register_uv": {"changed": False, "skipped": True},
    "__celery_app_register_src": {"changed": False},
    "__celery_app_register_git": {"changed": False, "skipped": True},
    "__celery_app_register_files": {"changed": False, "changed_paths": [], "content_changed": []},
    "__celery_app_celery": CELERY,
}


def files_changed(*paths: str) -> dict:
    """The register of the files task (library/celery_fleet_files.py) with these paths changed."""
    return {
        "__celery_app_register_files": {
            "changed": True,
            "changed_paths": list(paths),
            "content_changed": list(paths),
        }
    }


def record_task() -> dict:
    tasks = yaml.safe_load((TOP / "roles/celery_app/tasks/configure.yml").read_text())
    return next(task for task in tasks if task.get("name") == TASK)


@pytest.fixture
def facts_per_play(tmp_path, local_inventory, ansible_playbook):
    """Returns a runner: the task once per play, each play with the given registers (changed ones
    over UNCHANGED), in; the fact after each play out."""
    inventory = local_inventory({"all": {"app": {}}})

    def run(changed_per_play: list[dict]) -> list[bool]:
        out = tmp_path / "seen.json"
        plays = []
        for number, changed in enumerate(changed_per_play):
            registers = {**UNCHANGED, **changed}
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
    seen = facts_per_play([files_changed(ENV_FILE), {}, {}])

    assert seen == [True, True, True]


def test_a_run_that_changes_nothing_leaves_it_false_in_every_play(facts_per_play):
    seen = facts_per_play([{}, {}, {}])

    assert seen == [False, False, False]


def test_a_change_in_a_later_play_sets_it_from_there_on(facts_per_play):
    seen = facts_per_play([{}, {"__celery_app_register_pip": {"changed": True}}, {}])

    assert seen == [False, True, True]


def test_the_apps_celery_command_alone_restarts_nothing(facts_per_play):
    seen = facts_per_play([files_changed(CELERY), {}, {}])

    assert seen == [False, False, False]
