"""roles/celery_app converges a host once per run: a later play of the same run with the same inputs
ends the role at its first task after the variable check.

site.yml runs the role in the workers', beat's and Flower's plays. The role's own pieces (read from
its files, not copied: the `end_role` task of tasks/main.yml, the task of tasks/configure.yml that
records the inputs, and the signature of vars/main.yml) run here in a stand-in role, with a marker
task in place of the role's work, in plays of one run against this machine: the marker runs in the
first play only, again when a play's own vars change one of the role's inputs, and again in the
next run (the record is a fact of the run, not cached).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
ROLE = TOP / "roles" / "celery_app"
REUSE = "Reuse the app this run already converged on this host from the same inputs"
RECORD = "configure | Record the inputs the app converged from in this run"
# The signature, and the packages the record task keeps beside it (roles/celery_worker, app_record).
SIGNATURE_VARS = ("__celery_app_signature_names", "__celery_app_signature", "__celery_app_apt_packages")


def _task(path: Path, name: str) -> dict:
    return next(task for task in yaml.safe_load(path.read_text()) if task.get("name") == name)


@pytest.fixture
def run(tmp_path, local_inventory, ansible_playbook):
    """Writes the stand-in role and returns a runner: plays' own vars in, the plays whose role did its
    work out (one list per run)."""
    role = tmp_path / "roles" / "app"
    (role / "tasks").mkdir(parents=True)
    (role / "vars").mkdir()
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    (role / "vars" / "main.yml").write_text(
        yaml.safe_dump({name: role_vars[name] for name in SIGNATURE_VARS})
    )
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    (role / "defaults").mkdir()
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
    work = {"ansible.builtin.set_fact": {"worked": "{{ worked | default([]) + [play_number] }}"}}
    tasks = [_task(ROLE / "tasks" / "main.yml", REUSE), work, _task(ROLE / "tasks" / "configure.yml", RECORD)]
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump(tasks))
    inventory = local_inventory({"all": {"app": {"celery_app_name": "app"}}})
    out = tmp_path / "worked.json"

    def plays(*play_vars: dict) -> list[int]:
        book = [
            {"hosts": "app", "gather_facts": False, "vars": {"play_number": n, **v}, "roles": ["app"]}
            for n, v in enumerate(play_vars)
        ]
        write = {
            "ansible.builtin.copy": {"content": "{{ worked | default([]) | to_json }}", "dest": str(out)}
        }
        book.append({"hosts": "app", "gather_facts": False, "tasks": [write]})
        playbook = tmp_path / "plays.yml"
        playbook.write_text(yaml.safe_dump(book))
        roles = {"ANSIBLE_ROLES_PATH": str(tmp_path / "roles")}
        result = ansible_playbook(playbook, inventory=inventory, extra_env=roles, timeout=120)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return json.loads(out.read_text())

    return plays


def test_the_later_plays_of_a_run_reuse_the_app_and_the_next_run_converges_again(run):
    assert run({}, {}, {}) == [0]
    assert run({}, {}) == [0]


@pytest.mark.parametrize(
    "changed",
    [
        {"celery_app_requirements": ["celery[redis]==5.7.0", "gevent"]},
        {"celery_broker_host": "redis-2"},
        {"celery_workers": [{"name": "w", "queues": ["q"]}]},
    ],
    ids=["app", "broker", "workers"],
)
def test_a_play_whose_own_vars_change_an_input_converges_again(run, changed):
    assert run({}, changed, changed) == [0, 1]
