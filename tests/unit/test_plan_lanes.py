"""scripts/plan-lanes.py: the order scripts/run-scenarios.sh starts scenarios in with JOBS > 1."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plan-lanes.py"
_spec = importlib.util.spec_from_file_location("plan_lanes", SCRIPT)
assert _spec and _spec.loader
lanes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lanes)

# 272d445's clean-clone run: each scenario's seconds, three at a time (README, stop 41).
RUN = [
    ("sentinel", 1104),
    ("fleet", 1057),
    ("flower", 638),
    ("workers_supervisord", 439),
    ("monitoring", 410),
    ("workers", 392),
    ("redis", 337),
    ("ssh", 162),
]


def seconds_of(order: list[str], scenarios=RUN) -> list[float]:
    table = dict(scenarios)
    return [table[name] for name in order]


def test_makespan_fills_the_lane_that_frees_first():
    assert lanes.makespan([10, 5, 5, 5], 2) == 15
    assert lanes.makespan([10, 5, 5, 5], 1) == 25
    assert lanes.makespan([], 3) == 0


def test_the_measured_run_ends_sooner_than_longest_first():
    order = lanes.plan(RUN, 3)

    assert sorted(order) == sorted(name for name, _ in RUN)
    assert order[:3] == ["sentinel", "fleet", "flower"]
    longest_first = [name for name, _ in sorted(RUN, key=lambda item: -item[1])]
    assert lanes.makespan(seconds_of(longest_first), 3) == 1603
    assert lanes.makespan(seconds_of(order), 3) == 1529


def test_the_plan_is_the_best_order_that_starts_with_the_longest():
    scenarios = [("a", 700), ("b", 650), ("c", 400), ("d", 380), ("e", 300), ("f", 120), ("g", 90)]
    order = lanes.plan(scenarios, 3)
    best = min(
        lanes.makespan([700, 650, 400, *rest], 3)
        for rest in itertools.permutations(seconds_of(["d", "e", "f", "g"], scenarios))
    )
    assert lanes.makespan(seconds_of(order, scenarios), 3) == best


def test_equal_plans_keep_longest_first_and_ties_keep_the_given_order():
    # Nothing to pack: one lane, or no more scenarios than lanes, or equal times.
    assert lanes.plan([("x", 1), ("y", 3), ("z", 2)], 1) == ["y", "z", "x"]
    assert lanes.plan([("x", 1), ("y", 3)], 3) == ["y", "x"]
    assert lanes.plan([("x", 5), ("y", 5), ("z", 5), ("w", 5)], 2) == ["x", "y", "z", "w"]


def test_many_scenarios_are_improved_by_swaps_and_stay_complete():
    scenarios = [(f"s{i}", 1000 - 37 * i) for i in range(14)]
    order = lanes.plan(scenarios, 3)

    assert sorted(order) == sorted(name for name, _ in scenarios)
    longest_first = [name for name, _ in scenarios]
    planned = lanes.makespan(seconds_of(order, scenarios), 3)
    assert planned <= lanes.makespan(seconds_of(longest_first, scenarios), 3)


def test_jobs_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        lanes.plan(RUN, 0)


def test_command_line_reads_seconds_and_names_and_refuses_garbage():
    text = "".join(f"{seconds}\t{name}\n" for name, seconds in RUN)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "3"], input=text, capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == lanes.plan(RUN, 3)

    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "3"], input="soon\tssh\n", capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "line 1" in bad.stderr
    usage = subprocess.run(
        [sys.executable, str(SCRIPT), "0"], input="", capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2 and "usage" in usage.stderr
