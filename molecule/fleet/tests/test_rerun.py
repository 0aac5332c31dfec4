"""The scenario's idempotence check, run first: site.yml again on the fleet as converged.

It replaces Molecule's `idempotence` step (molecule.yml), which ran the same playbook once more and
checked only `changed=0`: this run also checks that a re-run that changes nothing never enters the
worker restart batches (playbooks/deploy-workers.yml's second play) and leaves no restart record,
so the fleet pays one no-op run instead of two (Molecule's and a `--tags workers` one).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from conftest import LAYOUT, WORKERS, ansible_playbook, node

RESTART_PLAY = "PLAY [Restart the changed workers, host batch by host batch]"


def _play_section(output: str, header: str) -> str:
    """The output of one play, from its header to the next play or the recap."""
    start = output.index(header)
    end = output.find("\nPLAY ", start + 1)
    return output[start : end if end != -1 else len(output)]


@pytest.fixture(scope="module")
def rerun() -> dict[str, Any]:
    started = time.monotonic()
    play = ansible_playbook("site.yml")
    print(f"\nno-op re-run: site.yml {time.monotonic() - started:.1f} s")
    records = {name: node(name).exists(LAYOUT["worker_restart_file"]) for name in WORKERS}
    return {"play": play, "records": records}


def test_a_second_site_yml_changes_nothing_on_any_host(rerun) -> None:
    play = rerun["play"]
    assert play.returncode == 0, play.stdout[-3000:]
    recap = play.stdout[play.stdout.rindex("PLAY RECAP") :]
    hosts = re.findall(r"^(fleet-\S+)\s*:\s*ok=\d+\s+changed=(\d+)", recap, re.MULTILINE)
    print(recap)
    assert {name for name, _ in hosts} >= set(WORKERS), recap
    assert all(changed == "0" for _, changed in hosts), recap


def test_a_noop_rerun_does_not_enter_the_restart_batches(rerun) -> None:
    section = _play_section(rerun["play"].stdout, RESTART_PLAY)
    print(section)
    assert "skipping: no hosts matched" in section
    assert "TASK [" not in section
    assert rerun["records"] == dict.fromkeys(WORKERS, False)
