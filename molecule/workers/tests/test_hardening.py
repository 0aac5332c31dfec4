"""Every generated worker unit scores <= 2.0 in systemd-analyze security (Celery's upstream unit: 9.2)."""

from __future__ import annotations

import re

import pytest
from conftest import WORKERS, service

MAX_EXPOSURE = 2.0


@pytest.mark.parametrize("worker", WORKERS, ids=[w["name"] for w in WORKERS])
def test_worker_unit_exposure_at_most_two(node, worker):
    if node.manager != "systemd":
        pytest.skip("systemd units only")
    unit = service(worker["name"])
    out = node.run(f"systemd-analyze security --no-pager {unit}").stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, out[-500:]
    score = float(match.group(1))
    print(f"{unit}: systemd-analyze security exposure {score}")
    assert score <= MAX_EXPOSURE


def test_worker_units_pass_systemd_analyze_verify_without_warnings(node):
    # verify exits 0 on a misspelt setting (it only warns): the output must be empty too.
    if node.manager != "systemd":
        pytest.skip("systemd units only")
    units = " ".join(node.service_file(service(w["name"])) for w in WORKERS)
    result = node.run(f"systemd-analyze verify {units}")
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def test_worker_unit_stops_main_process_only(node):
    if node.manager != "systemd":
        pytest.skip("systemd units only")
    for worker in WORKERS:
        shown = node.check(f"systemctl show -p KillMode -p Restart {service(worker['name'])}")
        assert "KillMode=mixed" in shown
        assert "Restart=always" in shown
