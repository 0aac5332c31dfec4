"""The scenario's idempotence check, run first: site.yml again on the fleet as converged.

It replaces Molecule's `idempotence` step (molecule.yml), which ran the same playbook once more and
checked only `changed=0`: this run also checks that a re-run that changes nothing never enters the
worker restart batches (playbooks/deploy-workers.yml's second play) and leaves no restart record,
so the fleet pays one no-op run instead of two (Molecule's and a `--tags workers` one).

Then the unchanged-host skip (celery_worker_skip_unchanged_hosts, roles/celery_worker's entry points
current and record): the default re-run leaves the worker play on every worker host after one check,
a re-run with the skip switched off converges every host in full and still changes nothing (the
roles' own idempotence), and a host changed behind Ansible's back (a unit edited, a worker stopped,
a file of the app's code removed) converges in full while the other one is skipped. The same for
the app of the ops host, which runs beat and Flower but no worker (roles/celery_worker, entry points
app_current and app_record): skipped by a no-op re-run, converged again once a file of its code is
removed by hand.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery_fleet.recap import changed_per_host  # lib/ is on sys.path through fleetnode
from conftest import (
    APP,
    LAYOUT,
    OPS,
    WORKER_PLAY,
    WORKERS,
    ansible_playbook,
    converged,
    node,
    play_section,
    task_section,
    worker_service,
)

RESTART_PLAY = "PLAY [Restart the changed workers, host batch by host batch]"
BEAT_PLAY, FLOWER_PLAY = "PLAY [Deploy Celery beat]", "PLAY [Deploy Flower]"
APP_WHY = "TASK [celery_worker : app_current | Say why the app converges on the host]"
RETIRE_PLAY = "PLAY [Retire the services the inventory no longer places]"
# The host changed behind Ansible's back, and the other one.
DRIFTED, UNTOUCHED = "fleet-worker-cpu", "fleet-worker-gpu"


def _timed(label: str, *args: str) -> Any:
    started = time.monotonic()
    play = ansible_playbook("site.yml", *args)
    print(f"\n{label}: site.yml {time.monotonic() - started:.1f} s")
    return play


def _ops_app_converged(play: Any) -> bool:
    """Whether roles/celery_app ran its tasks on the ops host (in beat's play: Flower's reuses it)."""
    sections = play_section(play.stdout, BEAT_PLAY) + play_section(play.stdout, FLOWER_PLAY)
    return "TASK [celery_app : user | Create the app's system group]" in sections


def _changed(play: Any) -> dict[str, int]:
    """host -> changed, from the recap of a run that must have succeeded."""
    assert play.returncode == 0, play.stdout[-3000:]
    changed = {name: n for name, n in changed_per_host(play.stdout).items() if name.startswith("fleet-")}
    print(f"changed per host: {changed}")
    return changed


@pytest.fixture(scope="module")
def rerun() -> dict[str, Any]:
    play = _timed("no-op re-run")
    records = {name: node(name).exists(LAYOUT["worker_restart_file"]) for name in WORKERS}
    return {"play": play, "records": records}


def test_a_second_site_yml_changes_nothing_on_any_host(rerun) -> None:
    changed = _changed(rerun["play"])
    assert changed.keys() >= set(WORKERS), changed
    assert set(changed.values()) == {0}, changed


def test_a_noop_rerun_skips_the_converge_of_every_worker_host(rerun) -> None:
    section = play_section(rerun["play"].stdout, WORKER_PLAY)
    assert converged(rerun["play"]) == {}, section[-3000:]
    # The roles ran on no host: the play's tasks after the check name no worker host.
    assert "TASK [celery_app :" not in section, section[-3000:]
    # Nor did the retire play's `find`: their records list nothing stale.
    retire = play_section(rerun["play"].stdout, RETIRE_PLAY)
    assert not [w for w in WORKERS if f"[{w}]" in retire], retire[-3000:]
    assert "ok: [fleet-ops]" in retire, retire[-3000:]


def test_a_noop_rerun_skips_the_app_on_the_ops_host(rerun) -> None:
    """The ops host runs beat and Flower, no worker: its app was compared once (beat's play) and found
    as the converge left it, so neither play ran roles/celery_app's tasks; the record was taken again."""
    beat = play_section(rerun["play"].stdout, BEAT_PLAY)
    compared = task_section(beat, "TASK [celery_worker : app_current | Compare the app")
    assert f"ok: [{OPS}]" in compared, beat[-3000:]
    # Its "Say why" printed nothing for the host (a task's header shows even when skipped).
    assert f"ok: [{OPS}]" not in task_section(beat, APP_WHY), beat[-3000:]
    assert not _ops_app_converged(rerun["play"]), beat[-3000:]
    assert node(OPS).exists(LAYOUT["app_state_file"])


def test_a_noop_rerun_does_not_enter_the_restart_batches(rerun) -> None:
    section = play_section(rerun["play"].stdout, RESTART_PLAY)
    print(section)
    assert "skipping: no hosts matched" in section
    assert "TASK [" not in section
    assert rerun["records"] == dict.fromkeys(WORKERS, False)


def test_a_full_noop_rerun_without_the_skip_changes_nothing(rerun) -> None:
    """Every role run in full on every worker host (the converge the skip stands for) is idempotent
    too. Limited to the worker hosts: the skip leaves the broker and the ops host alone, which every
    run converges in full, so the no-op re-run above already held them to changed=0."""
    play = _timed(
        "no-op re-run of the worker hosts without the skip",
        "-e",
        "celery_worker_skip_unchanged_hosts=false",
        "--limit",
        ",".join(WORKERS),
    )
    changed = _changed(play)
    assert changed.keys() == set(WORKERS), changed
    assert set(changed.values()) == {0}, changed
    assert set(converged(play)) == set(WORKERS), play_section(play.stdout, WORKER_PLAY)[-3000:]
    assert "skipping: no hosts matched" in play_section(play.stdout, RESTART_PLAY)


@pytest.fixture(scope="module")
def drifted(rerun) -> dict[str, Any]:
    """DRIFTED changed behind Ansible's back: one worker's unit edited, another stopped, a file of the
    app's code removed; then site.yml."""
    workers = [w["name"] for w in WORKERS[DRIFTED]]
    edited, stopped = worker_service(workers[0]), worker_service(workers[-1])
    unit = f"/etc/systemd/system/{edited}.service"
    host = node(DRIFTED)
    found = host.check(f"find {LAYOUT['code_dir']} -name '*.py' -not -path '*/__pycache__/*' | sort")
    code = found.split()[0] if found.split() else ""
    assert code, f"no Python file under {LAYOUT['code_dir']} on {DRIFTED}"
    host.check(f"echo '# edited by hand' >> {unit} && systemctl daemon-reload && systemctl stop {stopped}")
    host.check(f"rm {code}")
    # The same file of the app's code removed on the ops host: its app converges again.
    node(OPS).check(f"rm {code}")
    # A beat unit of the app on this host, which runs no beat (left behind by hand): not as recorded,
    # so the host converges, and the retire play stops and removes it.
    stale = f"/etc/systemd/system/{APP}-beat.service"
    unit_text = f"[Unit]\nX-CeleryFleet=celery-fleet beat of app {APP}\n[Service]\nExecStart=/bin/sleep 600\n"
    host.check(f"cat > {stale} && systemctl daemon-reload && systemctl start {APP}-beat", stdin=unit_text)
    play = _timed("re-run after a change by hand")
    return {
        "play": play,
        "unit": unit,
        "stopped": stopped,
        "code": code,
        "unit_text": host.read(unit),
        "stopped_state": host.state(stopped),
        "code_back": host.exists(code),
        "stale_left": host.exists(stale),
        "ops_code_back": node(OPS).exists(code),
    }


def test_a_host_changed_by_hand_converges_and_the_other_is_skipped(drifted) -> None:
    play = drifted["play"]
    changed = _changed(play)
    why = converged(play)
    print(why)
    assert set(why) == {DRIFTED}, why
    # The check names what differs: the stopped worker comes first, then the files.
    assert drifted["stopped"] in why[DRIFTED], why
    assert changed[DRIFTED] > 0 and changed[UNTOUCHED] == 0, changed
    # The ops host's app: compared, found changed (the file named), converged.
    why_app = " ".join(task_section(play_section(play.stdout, BEAT_PLAY), APP_WHY).split())
    assert f"ok: [{OPS}]" in why_app and f"{drifted['code']} is gone" in why_app, why_app
    assert _ops_app_converged(play)


def test_the_converge_puts_back_what_was_changed_by_hand(drifted) -> None:
    assert "# edited by hand" not in drifted["unit_text"]
    assert drifted["stopped_state"] == "active"
    assert drifted["code_back"], drifted["code"]
    assert drifted["ops_code_back"], f"{OPS}: {drifted['code']}"
    assert not drifted["stale_left"]
    assert f"Retiring {APP}-beat under systemd" in play_section(drifted["play"].stdout, RETIRE_PLAY)
    assert not node(DRIFTED).exists(LAYOUT["worker_restart_file"])
    # And the host is current again: the next run would skip it (its record was refreshed after the
    # restart batch).
    play = _timed("re-run after the repair")
    assert converged(play) == {}, play_section(play.stdout, WORKER_PLAY)[-3000:]
    assert not _ops_app_converged(play), play_section(play.stdout, BEAT_PLAY)[-3000:]
    assert set(_changed(play).values()) == {0}
