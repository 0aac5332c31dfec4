#!/usr/bin/env python3
"""The order in which scripts/run-scenarios.sh starts scenarios when it runs JOBS of them at once.

    plan-lanes.py JOBS < lines of "<seconds>\t<scenario>"   (in the order the scenarios were given)

Prints one scenario per line. The JOBS longest start first (longest first: the lanes that hold
them are the ones that end last). The others follow in the order that, each starting when a lane
frees up and taking as long as its record says, ends the last lane soonest; among orders that end
at the same time, the one closest to longest-first. Longest first alone left the shortest scenario
running by itself at the end: the eight scenarios of 272d445's clean-clone run (lanes of 1104, 1057
and 638 s, then 439, 410, 392, 337 and 162) ended at 1603 s in that order, the last ~130 s of them
on one of the two cores; the best order ends at 1529 s.

Up to EXHAUSTIVE of the remaining scenarios, every order is tried (8: 40,320 orders, about 0.3 s);
beyond that, longest first improved by swapping two scenarios while a swap ends sooner.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Sequence

EXHAUSTIVE = 8


def makespan(durations: Sequence[float], jobs: int) -> float:
    """When the last lane ends if each duration, in this order, starts in the lane that frees first."""
    lanes = [0.0] * jobs
    for seconds in durations:
        lane = lanes.index(min(lanes))
        lanes[lane] += seconds
    return max(lanes)


def plan(scenarios: Iterable[tuple[str, float]], jobs: int) -> list[str]:
    """The scenarios in the order to start them; ``scenarios`` as (name, seconds) in the given order."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    # Longest first; equal times keep the given order.
    ranked = sorted(enumerate(scenarios), key=lambda item: (-item[1][1], item[0]))
    ordered = [(name, float(seconds)) for _, (name, seconds) in ranked]
    first, rest = ordered[:jobs], ordered[jobs:]
    if len(rest) < 2:
        return [name for name, _ in ordered]
    head = [seconds for _, seconds in first]

    def cost(order: Sequence[tuple[str, float]]) -> float:
        return makespan(head + [seconds for _, seconds in order], jobs)

    if len(rest) <= EXHAUSTIVE:
        # permutations() yields orders in the lexicographic order of positions in `rest`: the first
        # one with the least cost is the closest to longest first among the best.
        best = min(itertools.permutations(rest), key=cost)
    else:
        best = tuple(rest)
        improved = True
        while improved:
            improved = False
            for i, j in itertools.combinations(range(len(best)), 2):
                swapped = list(best)
                swapped[i], swapped[j] = swapped[j], swapped[i]
                if cost(swapped) < cost(best):
                    best, improved = tuple(swapped), True
    return [name for name, _ in first] + [name for name, _ in best]


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit() or int(argv[1]) < 1:
        print("usage: plan-lanes.py JOBS < lines of '<seconds>\\t<scenario>'", file=sys.stderr)
        return 2
    scenarios = []
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        seconds, _, name = line.rstrip("\n").partition("\t")
        try:
            scenarios.append((name, float(seconds)))
        except ValueError:
            what = f"not '<seconds>\\t<scenario>': {line.rstrip()!r}"
            print(f"plan-lanes.py: line {number}: {what}", file=sys.stderr)
            return 2
    for name in plan(scenarios, int(argv[1])):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
