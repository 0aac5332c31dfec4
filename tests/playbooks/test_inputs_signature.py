"""The inputs' signature of the unchanged-host skip (roles/celery_worker's lookup
celery_fleet_inputs_signature) follows a value built from another host's variables, as the sandbox's
broker address is (``hostvars[groups['redis'][0]][...]``), on the controller alone: the play gathers
no facts and its one task is a lookup, so the unreachable hosts are never contacted.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parents[2]
BROKER = "{{ hostvars[groups['redis'][0]]['celery_fleet_private_address'] }}"
LOOKUPS = TOP / "roles" / "celery_worker" / "lookup_plugins"
WHOLE = "lookup('celery_fleet_inputs_signature', trees=[], listings=[])"
# As roles/celery_worker's __celery_worker_app_signature reads the workers.
APP = (
    "lookup('celery_fleet_inputs_signature',"
    " replace={'celery_workers': celery_workers | default([]) | celery_fleet_pool_packages})"
)


def play(expression: str) -> list[dict[str, object]]:
    return [
        {
            "name": "Print the signature",
            "hosts": "celery_workers",
            "gather_facts": False,
            "tasks": [
                {"name": "Signature", "ansible.builtin.debug": {"msg": f"signature={{{{ {expression} }}}}"}}
            ],
        }
    ]


def signature(
    tmp_path: Path, broker_address: str, extra: dict[str, object] | None = None, expression: str = WHOLE
) -> str:
    """w1's signature when the Redis host r1 has ``broker_address``."""
    inventory = {
        "all": {
            "vars": {"ansible_host": "192.0.2.1", "ansible_connection": "ssh", "ansible_timeout": 1},
            "children": {
                "redis": {"hosts": {"r1": {"celery_fleet_private_address": broker_address}}},
                "celery_workers": {
                    "hosts": {
                        "w1": {
                            "celery_broker_host": BROKER,
                            # Not an input of any role and never templated by one: it must not
                            # fail the lookup, only count as its error.
                            "celery_fleet_unused": "{{ nothing_defines_this }}",
                            **(extra or {}),
                        }
                    }
                },
            },
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play(expression), sort_keys=False))
    env = dict(os.environ, ANSIBLE_LOOKUP_PLUGINS=str(LOOKUPS), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    env["ANSIBLE_CONFIG"] = str(TOP / "ansible.cfg")
    done = subprocess.run(
        [
            str(TOP / ".venv" / "bin" / "ansible-playbook"),
            "-i",
            str(tmp_path / "inventory.yml"),
            str(tmp_path / "play.yml"),
        ],
        cwd=TOP,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = re.findall(r"signature=([0-9a-f]{64})", done.stdout)
    assert len(found) == 1, done.stdout[-2000:]
    return found[0]


def test_the_signature_follows_a_value_built_from_another_hosts_variables(tmp_path: Path) -> None:
    first = signature(tmp_path, "10.0.0.1")
    assert signature(tmp_path, "10.0.0.1") == first
    # The broker moved: the worker host's own inventory is the same, its broker address is not.
    assert signature(tmp_path, "10.0.0.2") != first


def test_the_signature_follows_the_hosts_own_variables(tmp_path: Path) -> None:
    first = signature(tmp_path, "10.0.0.1")
    assert signature(tmp_path, "10.0.0.1", {"celery_broker_user": "worker2"}) != first


def test_the_apps_signature_follows_the_pools_not_the_workers_settings(tmp_path: Path) -> None:
    def workers(**settings: object) -> dict[str, object]:
        return {"celery_workers": [{"name": "fast", "queues": ["fast"], **settings}]}

    first = signature(tmp_path, "10.0.0.1", workers(concurrency=1), APP)
    assert signature(tmp_path, "10.0.0.1", workers(concurrency=4, queues=["fast", "slow"]), APP) == first
    assert signature(tmp_path, "10.0.0.1", workers(concurrency=1, pool="gevent"), APP) != first
    # The rest of the host's inputs still count, the broker's address among them.
    assert signature(tmp_path, "10.0.0.2", workers(concurrency=1), APP) != first
    # The whole signature follows the concurrency.
    whole = signature(tmp_path, "10.0.0.1", workers(concurrency=1))
    assert signature(tmp_path, "10.0.0.1", workers(concurrency=4)) != whole
