"""scripts/run-scenarios.sh with a stand-in for Molecule: the summary line, failures, the phase
record benchmark 7 reads, and JOBS=N (scenarios at once, longest first, the rest in the order that
ends soonest: scripts/plan-lanes.py, tested in test_plan_lanes.py)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]

# Prints Molecule's action lines for its scenario (-s NAME), sleeping SLEEP_<name> seconds in
# converge; exits 1 for the scenarios listed in FAIL.
FAKE_MOLECULE = r"""#!/usr/bin/env bash
while [ $# -gt 0 ]; do [ "$1" = -s ] && s=$2; shift; done
echo "$s $(date +%s.%N) start" >>"$STARTS"
for action in create converge verify; do
  echo "INFO     [$s > $action] Executing"
  if [ $action = converge ]; then var=SLEEP_$s; sleep "${!var:-0}"; fi
  echo "INFO     [$s > $action] Executed: Successful"
done
echo "$s $(date +%s.%N) end" >>"$STARTS"
case " $FAIL " in *" $s "*)
  # pytest's report of a failed test, then more output than the report's last lines hold.
  printf '%s\n' "=================================== FAILURES ===================================" \
    "______________________________ test_lost_in_$s ______________________________" \
    "" "    def test_lost_in_$s():" ">       assert lost == 0" "E       AssertionError: $s lost 2: ids a, b" \
    "E       assert 2 == 0" "" "tests/test_$s.py:7: AssertionError" \
    "============================= slowest 10 durations =============================" \
    "E not an assertion of a failed test"
  for i in $(seq 1 80); do echo "destroy line $i"; done
  echo "boom in $s"; exit 1 ;;
esac
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(TOP / "scripts" / "run-scenarios.sh", tmp_path / "scripts")
    shutil.copy(TOP / "scripts" / "plan-lanes.py", tmp_path / "scripts")
    for name in ("alpha", "beta", "gamma"):
        (tmp_path / "molecule" / name).mkdir(parents=True)
        (tmp_path / "molecule" / name / "molecule.yml").write_text("---\n")
    (tmp_path / "molecule" / "resources").mkdir()
    fake = tmp_path / "fake-molecule"
    fake.write_text(FAKE_MOLECULE)
    fake.chmod(0o755)
    return tmp_path


def run(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "MOLECULE": str(project / "fake-molecule"),
        "STARTS": str(project / "starts"),
        "FAIL": "",
        **env,
    }
    return subprocess.run(
        ["bash", str(project / "scripts" / "run-scenarios.sh"), *args],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def started(project: Path) -> list[str]:
    return [
        line.split()[0] for line in (project / "starts").read_text().splitlines() if line.endswith(" start")
    ]


def spans(project: Path) -> dict[str, tuple[float, float]]:
    """Scenario -> (start, end) of its stand-in Molecule run, from the clock of the run itself."""
    times: dict[str, dict[str, float]] = {}
    for line in (project / "starts").read_text().splitlines():
        name, stamp, what = line.split()
        times.setdefault(name, {})[what] = float(stamp)
    return {name: (t["start"], t["end"]) for name, t in times.items()}


def test_one_after_another_by_default_with_the_summary_and_the_record(project):
    result = run(project, FAIL="beta")

    assert result.returncode == 1
    assert started(project) == ["alpha", "beta", "gamma"]
    assert "Molecule scenarios: 2 passed (alpha gamma), 1 failed (beta)" in result.stdout
    assert "=== beta: FAILED in" in result.stdout and "boom in beta" in result.stdout
    logs = project / ".cache" / "molecule-logs"
    record = rows(logs / "phases.tsv")
    assert [(r["scenario"], r["action"]) for r in record if r["scenario"] == "beta"] == [
        ("beta", "create"),
        ("beta", "converge"),
        ("beta", "verify"),
        ("beta", "total"),
    ]
    totals = [r["result"] for r in rows(logs / "beta.phases.tsv") if r["action"] == "total"]
    assert totals == ["Failed (exit 1)"]
    assert "boom in beta" in (logs / "beta.log").read_text()
    (run_row,) = rows(logs / "runs.tsv")
    assert (run_row["passed"], run_row["failed"]) == ("alpha gamma", "beta")


def test_a_failure_is_reported_with_its_assertions_and_its_log_kept(project):
    assert run(project, FAIL="beta").returncode == 1
    logs = project / ".cache" / "molecule-logs"
    (kept,) = logs.glob("beta.failed-*.log")
    # A second run of the scenario alone (a retry) writes beta.log again, not the kept one.
    result = run(project, "beta", FAIL="")
    assert result.returncode == 0
    assert "boom in beta" not in (logs / "beta.log").read_text()
    assert "boom in beta" in kept.read_text()
    assert list(logs.glob("beta.failed-*.log")) == [kept]

    report = run(project, FAIL="beta").stdout
    failures = report[report.index("=== beta: FAILED in") : report.index("=== beta: last lines:")]
    # The failed test, its assertion and where it failed, ahead of the 60 last lines, which no
    # longer reach back to them; nothing of pytest's later sections.
    assert "the failures:" in failures and "beta.failed-" in failures
    assert "test_lost_in_beta" in failures
    assert "E       AssertionError: beta lost 2: ids a, b" in failures
    assert "tests/test_beta.py:7: AssertionError" in failures
    assert "not an assertion" not in failures and "assert lost == 0" not in failures
    last = report[report.index("=== beta: last lines:") :]
    assert "boom in beta" in last and "AssertionError" not in last


def test_jobs_runs_scenarios_at_once_longest_first_by_the_last_record(project):
    # A first run records the times: gamma the longest, then alpha, then beta.
    sleeps = {"SLEEP_alpha": "1", "SLEEP_beta": "0", "SLEEP_gamma": "2"}
    assert run(project, **sleeps).returncode == 0
    (project / "starts").unlink()

    result = run(project, JOBS="2", FAIL="alpha", **sleeps)

    assert "=== 2 at a time, longest first, then packed: gamma alpha beta" in result.stdout
    # gamma (2 s) beside alpha (1 s): each started before the other ended, whatever the machine's
    # load (a bound on the wall time, 2.9 s, failed once on a busy machine at 3.1 s); beta after one
    # of them ended (two at a time).
    at = spans(project)
    assert at["alpha"][0] < at["gamma"][1] and at["gamma"][0] < at["alpha"][1], (at, result.stdout)
    assert at["beta"][0] >= min(at["alpha"][1], at["gamma"][1]), at
    assert result.returncode == 1
    assert "Molecule scenarios: 2 passed (beta gamma), 1 failed (alpha)" in result.stdout
    logs = project / ".cache" / "molecule-logs"
    second = [r for r in rows(logs / "phases.tsv") if r["run"] != rows(logs / "phases.tsv")[0]["run"]]
    assert sorted(r["scenario"] for r in second if r["action"] == "total") == ["alpha", "beta", "gamma"]
    assert len(second) == 12
    first, second_run = rows(logs / "runs.tsv")
    assert first["run"] != second_run["run"]


def test_a_scenario_never_recorded_goes_first(project):
    assert run(project, "alpha", "beta", SLEEP_alpha="1").returncode == 0

    result = run(project, JOBS="3")

    assert result.returncode == 0
    assert "=== 3 at a time, longest first, then packed: gamma alpha beta" in result.stdout


def test_a_fresh_clone_orders_by_the_committed_estimates(project):
    # No phases.tsv yet (a fresh clone, CI): molecule/expected-seconds.tsv orders them; a scenario
    # it does not list still goes first.
    (project / "molecule" / "expected-seconds.tsv").write_text("# scenario\tseconds\nalpha\t10\nbeta\t300\n")

    result = run(project, JOBS="2")

    assert result.returncode == 0, result.stdout
    assert "=== 2 at a time, longest first, then packed: gamma beta alpha" in result.stdout


def test_the_rest_start_in_the_order_that_ends_soonest(project):
    # Two lanes: gamma (480 s) and beta (390) first. Longest first then (alpha 370 after beta, delta
    # 320 after gamma, epsilon 190 after alpha) ends at 950 s; delta before alpha ends at 900.
    for name in ("delta", "epsilon"):
        (project / "molecule" / name).mkdir()
        (project / "molecule" / name / "molecule.yml").write_text("---\n")
    (project / "molecule" / "expected-seconds.tsv").write_text(
        "alpha\t370\nbeta\t390\ngamma\t480\ndelta\t320\nepsilon\t190\n"
    )

    result = run(project, JOBS="2")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "=== 2 at a time, longest first, then packed: gamma beta delta alpha epsilon" in result.stdout
    # The third starts only once one of the first two ended (the order among the later ones is the
    # printed one; their stand-ins, started a moment apart, may log their starts in either order).
    assert sorted(started(project)[:2]) == ["beta", "gamma"]


def test_jobs_must_be_a_number(project):
    result = run(project, JOBS="two")

    assert result.returncode == 2
    assert "JOBS must be a positive number" in result.stderr
