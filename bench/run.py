"""celery-fleet benchmarks: ``python bench/run.py [--quick] [--only NAME ...] [--keep]``.

Runs the benchmarks of issue 9 that this file implements, each as ratios measured side by side in
this run (medians of >= 3 repetitions with ranges), and writes bench/results/<date>.md plus one
PNG chart per benchmark. Containers it creates are named ``bench-*`` on the network ``bench-net``
and removed at the end (``--keep`` leaves them for debugging). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from b_broker import bench_broker
from b_chord import bench_chord
from b_deploy import bench_deploy
from b_install import bench_install
from b_pools import bench_pools
from b_rolling import bench_rolling
from b_scaling import bench_scaling
from b_sentinel import bench_sentinel
from b_suite import bench_suite
from benchlib import table
from common import BENCH, ROOT, VENV_BIN, Context, Sandbox, log, sh

# In the order of issue 9's numbering (deploy writes 1 and 2); 9, sentinel, is issue 16's;
# 10, scaling, issue 19's.
BENCHMARKS: dict[str, Callable[[Context], str]] = {
    "deploy": bench_deploy,
    "chord": bench_chord,
    "broker": bench_broker,
    "pools": bench_pools,
    "install": bench_install,
    "suite": bench_suite,
    "rolling": bench_rolling,
    "sentinel": bench_sentinel,
    "scaling": bench_scaling,
}
NOT_IMPLEMENTED: dict[str, str] = {}


def commit_at_start() -> str:
    """The commit and whether the tree differs from it, taken before any benchmark runs: the
    modules are loaded then, so later commits do not change what this run measures."""
    head = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False).strip() or "n/a"
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "--", "bench", "roles", "lib", "playbooks",
                "site.yml", "ansible.cfg", "inventories", "examples"], check=False).strip()  # fmt: skip
    return head + (" + uncommitted changes" if dirty else "")


def header(sandbox: Sandbox, quick: bool, load_start: str, commit: str) -> str:
    def first_line(argv: list[str]) -> str:
        try:
            return sh(argv, check=False).splitlines()[0]
        except (IndexError, OSError):
            return "n/a"

    versions = {
        "ansible-core (controller)": first_line([str(VENV_BIN / "ansible"), "--version"]),
        "python (controller)": sys.version.split()[0],
        "docker": first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
        **{k: v.strip() for k, v in sandbox.versions().items()},
    }
    rows = [[k, f"`{v}`"] for k, v in versions.items()]
    rows += [
        ["CPU cores (nproc)", str(os.cpu_count())],
        ["Load average at start (1/5/15 min)", load_start],
        ["Load average at end", " ".join(Path("/proc/loadavg").read_text().split()[:3])],
        ["Commit (at start)", commit],
        ["Mode", "--quick (reduced task counts)" if quick else "full"],
    ]
    return table(["", ""], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="celery-fleet benchmarks (issue 9)")
    parser.add_argument("--quick", action="store_true", help="reduced task counts, still 3 repetitions")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (the rules ask for >= 3)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--keep", action="store_true", help="leave bench-host running at the end")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    commit = commit_at_start()
    # A partial run gets its own report, so that every figure of a report comes from one run.
    stem = started.strftime("%Y-%m-%d") + ("-" + "-".join(args.only) if args.only else "")
    args.out.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(keep=args.keep)
    ctx = Context(args.quick, sandbox, args.out, stem)
    ctx.reps = args.reps
    sections: list[str] = []
    failed: list[str] = []
    durations: list[list[str]] = []
    names = args.only or list(BENCHMARKS)
    path = args.out / f"{stem}.md"

    def write(head: str, done: bool) -> None:
        # Written after every benchmark too, so an interrupted run keeps the figures it has.
        missing = "\n".join(f"- {k}: {v}" for k, v in NOT_IMPLEMENTED.items())
        progress = (
            []
            if done
            else [f"**Run in progress or interrupted: {len(durations)} of {len(names)} benchmarks done.**"]
        )
        report = "\n\n".join(
            [
                f"# celery-fleet benchmarks, {started:%Y-%m-%d %H:%M} UTC",
                "Generated by `python bench/run.py"
                + (" --quick" if args.quick else "")
                + (f" --reps {args.reps}" if args.reps != 3 else "")
                + (f" --only {' '.join(args.only)}" if args.only else "")
                + "`; every figure below comes from this run. Each ratio is the median of per-repetition "
                f"ratios of two measurements taken side by side ({args.reps} repetitions), with the range in "
                "parentheses. Never compare absolute times across reports.",
                *progress,
                head,
                "Wall time of each benchmark in this run:\n\n" + table(["Benchmark", "Minutes"], durations),
                *sections,
                *(["## Not measured by this run\n\n" + missing] if missing else []),
            ]
        )
        path.write_text(report + "\n")

    try:
        for name in names:
            log(f"=== {name}")
            t0 = time.perf_counter()
            try:
                sections.append(BENCHMARKS[name](ctx))
            except Exception as exc:  # one broken benchmark must not lose the others' figures
                failed.append(name)
                sections.append(f"## {name}\n\nFAILED in this run: `{type(exc).__name__}: {exc}`")
            minutes = (time.perf_counter() - t0) / 60
            durations.append([name, f"{minutes:.1f}"])
            log(f"=== {name} done in {minutes:.1f} min")
            write(header(sandbox, args.quick, load_start, commit), done=False)
        head = header(sandbox, args.quick, load_start, commit)
    finally:
        sandbox.down()
    write(head, done=True)
    log(f"report: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
