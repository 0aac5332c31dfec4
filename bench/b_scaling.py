"""Benchmark 10 (issue 19): the cost of a no-op re-run of site.yml against the number of worker hosts.

Light hosts, so that 2 cores hold eight of them: one Redis host (``bench-sc-redis``) and up to eight
worker hosts (``bench-sc-w1`` ... ``bench-sc-w8``), each running one prefork worker with
concurrency 1 on the queue ``light``; no beat, no Flower. The inventory is written for each size
(2, 4, 8 worker hosts) with the sandbox's group_vars for the app and Redis (same vault), so every
size runs the same site.yml. Sizes are measured in ascending order, each first converged (a size
adds hosts to the one before), then re-run ``reps`` times, changed=0 checked on every run.

``baseline`` (a git revision, e.g. the commit before the rollout's rework) measures that tree too:
it is exported with ``git archive`` into a temporary directory and its re-runs alternate with the
current tree's on the same hosts (its own ansible.cfg and fact cache), so both sides of each ratio
come from the same run. Target: re-run(8) / re-run(2) <= 1.3.

Standalone: ``.venv/bin/python bench/b_scaling.py [--baseline REV] [--reps N] [--sizes 2 4 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Sample, paired_ratio, table
from common import IMAGE, ROOT, SYSTEMD_ARGS, VENV_BIN, log, sh
from fleet import parse_recap

NETWORK = "bench-scale"
PREFIX = "bench-sc-"
SANDBOX = ROOT / "inventories" / "sandbox"
WORKER_VARS = {
    "celery_process_manager": "systemd",
    "celery_queues": ["light"],
    "celery_workers": [{"name": "light", "queues": ["light"], "concurrency": 1}],
}


def _hosts(size: int) -> list[str]:
    return ["redis", *(f"w{i}" for i in range(1, size + 1))]


def _inventory(directory: Path, size: int) -> Path:
    """An inventory directory of ``size`` worker hosts with the sandbox's app and Redis settings."""
    inv = directory / f"inventory-{size}"
    (inv / "group_vars" / "celery_workers").mkdir(parents=True)
    for group in ("all", "redis"):
        (inv / "group_vars" / group).symlink_to(SANDBOX / "group_vars" / group)
    (inv / "group_vars" / "celery_workers" / "celery_app.yml").symlink_to(
        SANDBOX / "group_vars" / "celery_workers" / "celery_app.yml"
    )
    (inv / "group_vars" / "celery_workers" / "celery_worker.yml").write_text(json.dumps(WORKER_VARS))

    def host(name: str) -> dict[str, str]:
        return {"ansible_host": PREFIX + name, "celery_fleet_private_address": PREFIX + name}

    workers = {h: host(h) for h in _hosts(size)[1:]}
    (inv / "hosts.yml").write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "redis": {"hosts": {"redis": host("redis")}},
                        "celery_workers": {"hosts": workers},
                    }
                }
            }
        )
    )
    return inv


def _containers(names: list[str]) -> None:
    sh(["docker", "network", "create", NETWORK], check=False)
    for name in names:
        sh(["docker", "rm", "-f", PREFIX + name], check=False)
        sh(["docker", "run", "-d", "--name", PREFIX + name, "--hostname", PREFIX + name, "--network", NETWORK,
            "--label", "owner=celery-fleet-bench", *SYSTEMD_ARGS, IMAGE, "/lib/systemd/systemd"])  # fmt: skip
    for name in names:
        for _ in range(15):
            state = sh(["docker", "exec", PREFIX + name, "systemctl", "is-system-running", "--wait"],
                       check=False, timeout=180).strip()  # fmt: skip
            if state in ("running", "degraded"):
                break
            time.sleep(2)


def _remove(size: int) -> None:
    sh(["docker", "rm", "-f", *(PREFIX + h for h in _hosts(size))], check=False, timeout=300)
    sh(["docker", "network", "rm", NETWORK], check=False)


def _site(tree: Path, inventory: Path, facts: Path, log_path: Path) -> tuple[float, int, int]:
    """site.yml of ``tree`` on ``inventory``: (seconds, return code, hosts changed)."""
    env = dict(
        os.environ, ANSIBLE_CONFIG=str(tree / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1"
    )
    env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(facts)
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory),
            "--vault-password-file", str(SANDBOX / "vault-password.txt"), "site.yml"]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.perf_counter() - t0
    log_path.write_text(done.stdout + done.stderr)
    changed = sum(r.get("changed", 0) for r in parse_recap(done.stdout).values())
    return wall, done.returncode, changed


def measure(baseline: str | None, reps: int, sizes: list[int]) -> dict[str, dict[int, Sample]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    trees = {"current": ROOT}
    if baseline:
        base = tmp / "baseline"
        base.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", baseline], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        trees = {"baseline": base, "current": ROOT}
    results: dict[str, dict[int, Sample]] = {name: {} for name in trees}
    up: list[str] = []
    try:
        for size in sizes:
            inventory = _inventory(tmp, size)
            new = [h for h in _hosts(size) if h not in up]
            _containers(new)
            up += new
            wall, rc, _ = _site(ROOT, inventory, tmp / "facts-current", tmp / f"converge-{size}.log")
            log(f"scaling: converge of {size} worker hosts {wall:.0f} s (rc {rc})")
            if rc != 0:
                raise RuntimeError(f"converge of {size} hosts failed: {tmp / f'converge-{size}.log'}")
            for rep in range(reps):
                order = list(trees) if rep % 2 == 0 else list(reversed(trees))
                for name in order:
                    wall, rc, changed = _site(
                        trees[name], inventory, tmp / f"facts-{name}", tmp / f"rerun-{name}-{size}-{rep}.log"
                    )
                    log(
                        f"scaling: {name} re-run, {size} worker hosts: {wall:.1f} s rc {rc} changed {changed}"
                    )
                    if rc != 0 or changed != 0:
                        raise RuntimeError(
                            f"{name} re-run of {size} hosts: rc {rc}, changed {changed} ({tmp})"
                        )
                    results[name].setdefault(size, Sample()).add(wall)
    finally:
        _remove(max(sizes))
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"scaling: logs in {tmp}")
    return results


def report(results: dict[str, dict[int, Sample]], sizes: list[int]) -> str:
    rows = []
    for name, by_size in results.items():
        smallest, largest = by_size[min(sizes)], by_size[max(sizes)]
        ratio = paired_ratio(largest.values, smallest.values)
        rows.append([name, *(by_size[s].show(1) for s in sizes), ratio.show()])
    headers = [
        "tree",
        *(f"re-run, {s} worker hosts (s)" for s in sizes),
        f"re-run({max(sizes)}) / re-run({min(sizes)})",
    ]
    return table(headers, rows)


def chart(path: Path, results: dict[str, dict[int, Sample]], sizes: list[int]) -> None:
    """Re-run time against worker hosts, one line per tree (median, whiskers = range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, by_size in results.items():
        medians = [by_size[s].median for s in sizes]
        errors = [
            [by_size[s].median - by_size[s].low for s in sizes],
            [by_size[s].high - by_size[s].median for s in sizes],
        ]
        ax.errorbar(sizes, medians, yerr=errors, marker="o", capsize=4, label=name)
    ax.set_xlabel("worker hosts")
    ax.set_ylabel("no-op re-run of site.yml (s)")
    ax.set_xticks(sizes)
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title("No-op re-run against the number of worker hosts")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bench_scaling(ctx: Any) -> str:
    """``make bench`` entry: sizes 2, 4, 8, ``ctx.reps`` repetitions; a baseline tree when
    CELERY_FLEET_BENCH_BASELINE names a git revision."""
    sizes = [2, 4, 8]
    baseline = os.environ.get("CELERY_FLEET_BENCH_BASELINE") or None
    results = measure(baseline, ctx.reps, sizes)
    path, link = ctx.chart("scaling")
    chart(path, results, sizes)
    ratio = paired_ratio(results["current"][8].values, results["current"][2].values)
    verdict = "met" if ratio.median <= 1.3 else "**MISSED**"
    return "\n\n".join(
        [
            "## 10. No-op re-run against the number of worker hosts (`scaling`)",
            "One light worker per host (prefork, concurrency 1, queue `light`), one Redis host, no beat or "
            "Flower; each size converged, then re-run (changed=0 checked)"
            + (
                f"; the baseline is `{baseline}`, its re-runs alternating with the current tree's"
                if baseline
                else ""
            )
            + ".",
            report(results, sizes),
            f"Target re-run(8) / re-run(2) <= 1.3: {ratio.show()} - {verdict}.",
            link,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a git revision to measure beside the current tree")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--chart", type=Path, help="write the chart (PNG) here")
    args = parser.parse_args(argv)
    results = measure(args.baseline, args.reps, sorted(args.sizes))
    print(report(results, sorted(args.sizes)))
    if args.chart:
        chart(args.chart, results, sorted(args.sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
