"""The GitHub Actions workflow runs what `make` runs: one matrix job per Molecule scenario, the
Makefile's own targets as its steps."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parents[2]
WORKFLOW = TOP / ".github" / "workflows" / "ci.yml"


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def scenario_dirs() -> set[str]:
    return {p.parent.name for p in (TOP / "molecule").glob("*/molecule.yml")}


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z-]+):", (TOP / "Makefile").read_text(), re.MULTILINE))


def run_lines(job: dict) -> list[str]:
    return [line.strip() for step in job["steps"] if "run" in step for line in step["run"].splitlines()]


def test_the_matrix_lists_every_scenario_of_molecule_and_nothing_else():
    matrix = workflow()["jobs"]["molecule"]["strategy"]["matrix"]["scenario"]

    assert len(matrix) == len(set(matrix)), f"a scenario is listed twice: {matrix}"
    missing = scenario_dirs() - set(matrix)
    extra = set(matrix) - scenario_dirs()
    assert not missing, f"molecule/ scenarios missing from the matrix of {WORKFLOW.name}: {sorted(missing)}"
    assert not extra, (
        f"matrix entries of {WORKFLOW.name} with no molecule/<name>/molecule.yml: {sorted(extra)}"
    )


def test_each_matrix_job_runs_its_scenario_with_the_makefile_targets():
    lines = run_lines(workflow()["jobs"]["molecule"])

    assert any(re.fullmatch(r'(sudo -E env "PATH=\$PATH" )?make venv harness', x) for x in lines), lines
    assert any(x.endswith("make molecule S=${{ matrix.scenario }}") for x in lines), lines


def test_the_static_job_runs_lint_unit_and_syntax():
    lines = run_lines(workflow()["jobs"]["static"])

    assert [x for x in lines if x.startswith("make ")] == [
        "make venv",
        "make lint",
        "make unit",
        "make syntax",
    ]


def test_every_make_target_the_workflow_calls_exists():
    targets = make_targets()
    called = {
        word
        for job in workflow()["jobs"].values()
        for line in run_lines(job)
        for match in re.finditer(r"\bmake ((?:[a-z-]+ ?)+)", line)
        for word in match.group(1).split()
    }

    assert called, "the workflow calls no make target"
    assert called <= targets, (
        f"make targets the workflow calls that the Makefile lacks: {sorted(called - targets)}"
    )
