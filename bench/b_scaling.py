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
come from the same run (the current tree's fact cache is copied to the baseline's after each converge,
so neither side gathers facts the other did not). Target: re-run(8) / re-run(2) <= 1.3.

The one-host change (``change=True``): at the largest size, after each repetition's re-runs, one
worker's concurrency changes on one host (``w1``: host_vars toggling concurrency 2 and back to 1)
and the current tree's site.yml runs. Checked: only that host reports changes and only that host
enters the restart play. Target: its wall time <= 1.3 x the same repetition's no-op re-run + that
host's restart, the restart being the restart play's duration in that run (profile_tasks stamps:
the restart, then the live check through Celery).

Standalone: ``.venv/bin/python bench/b_scaling.py [--baseline REV] [--reps N] [--sizes 2 4 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Sample, table
from common import IMAGE, ROOT, SYSTEMD_ARGS, VENV_BIN, log, sh

# isort: split
from celery_fleet.recap import play_recap  # lib/ is on sys.path through common

NETWORK = "bench-scale"
PREFIX = "bench-sc-"
SANDBOX = ROOT / "inventories" / "sandbox"
# Inventory names are the containers' names: a host named like its group ("redis") took the
# group's name as its address (hostvars['redis'] answered 'redis', the workers could not resolve it).
CHANGED_HOST = PREFIX + "w1"
RESTART_PLAY = "Restart the changed workers"
PLAY_RE = re.compile(r"^PLAY \[(.*)\] \*+\s*$")
# profile_tasks' stamp after each task banner: "(0:00:01.234)       0:00:05.678 ****", the total.
STAMP_RE = re.compile(r"\)\s+(\d+):(\d\d):(\d\d(?:\.\d+)?) \*+\s*$")
HOST_RE = re.compile(r"^(?:ok|changed|skipping|failed|fatal): \[([\w.-]+)\]|^included: \S+ for ([\w., -]+)$")
WORKER_VARS = {
    # Both trees deploy the same app code (the sandbox's path is relative to the tree's playbooks, and
    # the example app changed after the baseline: the baseline's re-run redeployed it, changed 4).
    "celery_app_src": str(ROOT / "examples" / "celery_demo"),
    "celery_process_manager": "systemd",
    "celery_queues": ["light"],
    "celery_workers": [{"name": "light", "queues": ["light"], "concurrency": 1}],
}


def _hosts(size: int) -> list[str]:
    return ["redis", *(f"w{i}" for i in range(1, size + 1))]


def _inventory(directory: Path, size: int) -> Path:
    """An inventory directory of ``size`` worker hosts with the sandbox's app and Redis settings."""
    inv = directory / f"inventory-{size}"
    if inv.exists():
        return inv
    (inv / "group_vars" / "celery_workers").mkdir(parents=True)
    for group in ("all", "redis"):
        (inv / "group_vars" / group).symlink_to(SANDBOX / "group_vars" / group)
    (inv / "group_vars" / "celery_workers" / "celery_app.yml").symlink_to(
        SANDBOX / "group_vars" / "celery_workers" / "celery_app.yml"
    )
    (inv / "group_vars" / "celery_workers" / "celery_worker.yml").write_text(json.dumps(WORKER_VARS))

    def host(name: str) -> dict[str, str]:
        return {"ansible_host": PREFIX + name, "celery_fleet_private_address": PREFIX + name}

    workers = {PREFIX + h: host(h) for h in _hosts(size)[1:]}
    (inv / "hosts.yml").write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "redis": {"hosts": {PREFIX + "redis": host("redis")}},
                        "celery_workers": {"hosts": workers},
                    }
                }
            }
        )
    )
    return inv


def _containers(names: list[str]) -> None:
    sh(["docker", "network", "create", NETWORK], check=False)
    if os.environ.get("CELERY_FLEET_BENCH_REUSE"):  # keep the hosts a stopped run left (debugging)
        running = sh(["docker", "ps", "--format", "{{.Names}}"], check=False).split()
        names = [n for n in names if PREFIX + n not in running]
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


def plays(output: str) -> list[tuple[str, float, list[str]]]:
    """(play name, seconds, hosts) per play banner of a run, from the profile_tasks stamps: a play
    lasts from its first stamp to the next play's first stamp (the last one to the final stamp). A
    serial play prints one banner per batch, so each batch is an entry."""
    found: list[tuple[str, float, list[str]]] = []
    name = ""
    start: float | None = None
    hosts: list[str] = []
    last = 0.0
    pending = False
    for line in output.splitlines():
        if (m := PLAY_RE.match(line)) and not line.startswith("PLAY RECAP"):
            name, pending = m[1], True
            continue
        if stamp := STAMP_RE.search(line):
            last = int(stamp[1]) * 3600 + int(stamp[2]) * 60 + float(stamp[3])
            if pending:
                if found and start is not None:
                    found[-1] = (found[-1][0], last - start, found[-1][2])
                found.append((name, 0.0, []))
                hosts, start, pending = found[-1][2], last, False
            continue
        if (m := HOST_RE.match(line)) and found:
            for h in (m[1] or m[2]).replace(",", " ").split():
                if h not in hosts:
                    hosts.append(h)
    if found and start is not None:
        found[-1] = (found[-1][0], last - start, found[-1][2])
    return found


def _changed_hosts(output: str) -> list[str]:
    return sorted(h for h, r in play_recap(output).items() if r.get("changed", 0))


def _site(tree: Path, inventory: Path, facts: Path, log_path: Path) -> tuple[float, int, int, str]:
    """site.yml of ``tree`` on ``inventory``: (seconds, return code, hosts changed, output)."""
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
    changed = sum(r.get("changed", 0) for r in play_recap(done.stdout).values())
    return wall, done.returncode, changed, done.stdout


class Results:
    def __init__(self, trees: list[str]) -> None:
        self.walls: dict[str, dict[int, Sample]] = {name: {} for name in trees}
        # Per tree and size, per play name: the seconds of each re-run (summed over batches).
        self.plays: dict[str, dict[int, dict[str, Sample]]] = {name: {} for name in trees}
        # The one-host change: per repetition (no-op re-run, change run, restart play, changed
        # hosts, restarted hosts).
        self.change: list[tuple[float, float, float, list[str], list[str]]] = []
        self.notes: list[str] = []


def _change(inventory: Path, concurrency: int) -> None:
    """One worker's concurrency on CHANGED_HOST (host_vars); 1 is the group's own value."""
    host_vars = inventory / "host_vars"
    host_vars.mkdir(exist_ok=True)
    path = host_vars / f"{CHANGED_HOST}.yml"
    if concurrency == WORKER_VARS["celery_workers"][0]["concurrency"]:
        path.unlink(missing_ok=True)
        return
    workers = [{**WORKER_VARS["celery_workers"][0], "concurrency": concurrency}]
    path.write_text(json.dumps({"celery_workers": workers}))


def measure(
    baseline: str | None,
    reps: int,
    sizes: list[int],
    change: bool = False,
    converge_once: bool = False,
    size_reps: dict[int, int] | None = None,
    deadline: float | None = None,
) -> Results:
    """``converge_once``: all hosts of the largest size converged at the start and the smaller sizes
    measured on a subset of them (the others idle, their worker running): one converge instead of
    one per size, for a run that must be short; ``size_reps`` overrides ``reps`` for some sizes;
    ``deadline`` (epoch seconds): no further repetition of a size starts if the previous one would
    not end before it (the first always runs)."""
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
    results = Results(list(trees))
    try:
        _sizes(results, tmp, trees, reps, sizes, change, converge_once, size_reps, deadline)
    except (RuntimeError, KeyboardInterrupt) as exc:  # what was measured before stays in the report
        results.notes.append(f"**The run stopped**: {exc or 'interrupted (SIGINT)'}")
        log(f"scaling: stopped: {exc}")
    finally:
        _remove(max(sizes))
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"scaling: logs in {tmp}")
    return results


def _sizes(
    results: Results,
    tmp: Path,
    trees: dict[str, Path],
    reps: int,
    sizes: list[int],
    change: bool,
    converge_once: bool,
    size_reps: dict[int, int] | None,
    deadline: float | None,
) -> None:
    up: list[str] = []
    concurrency = WORKER_VARS["celery_workers"][0]["concurrency"]  # w1's, as the change left it
    smallest_rep = 0.0
    # Converged once: the two ends of the ratio first, the chart's middle sizes after them.
    for size in (
        sorted(sizes, key=lambda s: (s != min(sizes), s != max(sizes), s)) if converge_once else sizes
    ):
        if deadline and smallest_rep and time.time() + 1.5 * smallest_rep > deadline:
            results.notes.append(f"{size} hosts: not measured, cut by the run's deadline")
            log(f"scaling: deadline, {size} hosts not measured")
            continue
        inventory = _inventory(tmp, size)
        _change(inventory, concurrency)
        if converge_once and up:
            pass  # every host was converged with the largest inventory
        else:
            target = max(sizes) if converge_once else size
            new = [h for h in _hosts(target) if h not in up]
            _containers(new)
            up += new
            wall, rc, _, _ = _site(
                ROOT, _inventory(tmp, target) if target != size else inventory,
                tmp / "facts-current", tmp / f"converge-{target}.log",
            )  # fmt: skip
            log(f"scaling: converge of {target} worker hosts {wall:.0f} s (rc {rc})")
            if rc != 0:
                raise RuntimeError(f"converge of {target} hosts failed: {tmp / f'converge-{target}.log'}")
            if "baseline" in trees:  # the baseline's re-runs find the facts the converge gathered
                shutil.copytree(tmp / "facts-current", tmp / "facts-baseline", dirs_exist_ok=True)
        last = 0.0
        for rep in range((size_reps or {}).get(size, reps)):
            # Before a larger size is measured, keep room for its first repetition (3 x this one's:
            # the baseline's 8-host re-run is ~3 x its 2-host one, and the one-host change comes with it).
            reserve = 3 * last if size == min(sizes) and len(sizes) > 1 else 0.0
            if rep > 0 and deadline and time.time() + last + reserve > deadline:
                results.notes.append(f"{size} hosts: {rep} repetition(s), the rest cut by the run's deadline")
                log(f"scaling: deadline, {size} hosts stops after {rep} repetition(s)")
                break
            if rep == 0 and deadline and size == max(sizes) and "baseline" in trees and size != min(sizes):
                # The baseline's re-run grows with the hosts (~3.5 x its smallest one): if it cannot
                # end by the deadline, the current tree and the one-host change go first, alone.
                small = {n: results.walls[n].get(min(sizes), Sample()).values for n in trees}
                if small["baseline"] and small["current"]:
                    need = 3.5 * small["baseline"][0] + 3.5 * small["current"][0]
                    if time.time() + need > deadline + 120:
                        results.notes.append(
                            f"baseline not measured at {size} hosts: the deadline could not hold it"
                        )
                        log(f"scaling: deadline, no baseline at {size} hosts")
                        del trees["baseline"]
            t_rep = time.perf_counter()
            order = list(trees) if rep % 2 == 0 else list(reversed(trees))
            noop = 0.0
            for name in order:
                if name not in trees:
                    continue
                wall, rc, changed, out = _site(
                    trees[name], inventory, tmp / f"facts-{name}", tmp / f"rerun-{name}-{size}-{rep}.log"
                )
                log(f"scaling: {name} re-run, {size} worker hosts: {wall:.1f} s rc {rc} changed {changed}")
                if (rc != 0 or changed != 0) and name == "baseline":
                    # The baseline's roles may disagree with what the current tree converged: report
                    # it, drop the baseline, and let the current tree put its own state back.
                    results.notes.append(
                        f"baseline re-run of {size} hosts: rc {rc}, changed {changed}; baseline dropped "
                        "from then on"
                    )
                    del trees[name]
                    settle = _site(ROOT, inventory, tmp / "facts-current", tmp / f"settle-{size}-{rep}.log")
                    log(f"scaling: baseline dropped, current settled ({settle[0]:.0f} s, rc {settle[1]})")
                    continue
                if rc != 0 or changed != 0:
                    raise RuntimeError(f"{name} re-run of {size} hosts: rc {rc}, changed {changed} ({tmp})")
                results.walls[name].setdefault(size, Sample()).add(wall)
                by_play: dict[str, float] = {}
                for play, seconds, _ in plays(out):
                    by_play[play] = by_play.get(play, 0.0) + seconds
                for play, seconds in by_play.items():
                    results.plays[name].setdefault(size, {}).setdefault(play, Sample()).add(seconds)
                if name == "current":
                    noop = wall
            if change and size == max(sizes):
                # 2, 1, 2, ...: each run changes one worker's concurrency on one host.
                concurrency = 2 if rep % 2 == 0 else 1
                _change(inventory, concurrency)
                wall, rc, changed, out = _site(
                    ROOT, inventory, tmp / "facts-current", tmp / f"change-{size}-{rep}.log"
                )
                restart = [(s, h) for p, s, h in plays(out) if p.startswith(RESTART_PLAY)]
                restarted = sorted({h for _s, hs in restart for h in hs})
                hosts = _changed_hosts(out)
                log(
                    f"scaling: one-host change, {size} worker hosts: {wall:.1f} s rc {rc}, changed "
                    f"{hosts}, restarted {restarted}, restart play {sum(s for s, _ in restart):.1f} s"
                )
                if rc != 0:
                    raise RuntimeError(f"one-host change of {size} hosts: rc {rc} ({tmp})")
                results.change.append((noop, wall, sum(s for s, _ in restart), hosts, restarted))
            last = time.perf_counter() - t_rep
            if size == min(sizes):
                smallest_rep = max(smallest_rep, last)


def size_ratio(by_size: dict[int, Sample], large: int, small: int) -> Sample:
    """re-run(large) / re-run(small) per repetition index (a size cut short pairs its first ones)."""
    a, b = by_size.get(large, Sample()).values, by_size.get(small, Sample()).values
    return Sample([x / y for x, y in zip(a, b, strict=False) if y])


def report(results: Results, sizes: list[int]) -> str:
    rows = []
    for name, by_size in results.walls.items():
        ratio = size_ratio(by_size, max(sizes), min(sizes))
        rows.append([name, *(by_size.get(s, Sample()).show(1) for s in sizes), ratio.show()])
    headers = [
        "tree",
        *(f"re-run, {s} worker hosts (s)" for s in sizes),
        f"re-run({max(sizes)}) / re-run({min(sizes)})",
    ]
    return table(headers, rows)


def profile(results: Results, sizes: list[int]) -> str:
    """Where a re-run's time goes: seconds per play (median over the re-runs; a serial play's
    batches summed), per tree, at the smallest and the largest size."""
    ends = [min(sizes), max(sizes)] if len(sizes) > 1 else sizes
    headers = ["play", *(f"{name}, {s} hosts (s)" for name in results.plays for s in ends)]
    names: list[str] = []
    for by_size in results.plays.values():
        for size in ends:
            names += [p for p in by_size.get(size, {}) if p not in names]
    rows = [
        [
            p,
            *(
                results.plays[name].get(s, {}).get(p, Sample()).show(1)
                for name in results.plays
                for s in ends
            ),
        ]
        for p in names
    ]
    return table(headers, rows)


def change_ratio(results: Results) -> Sample:
    return Sample([wall / (noop + restart) for noop, wall, restart, _, _ in results.change if noop + restart])


def change_report(results: Results) -> str:
    rows = [
        [str(i + 1), f"{noop:.1f}", f"{wall:.1f}", f"{restart:.1f}", f"{wall / (noop + restart):.2f}",
         ", ".join(changed) or "none", ", ".join(restarted) or "none"]
        for i, (noop, wall, restart, changed, restarted) in enumerate(results.change)
    ]  # fmt: skip
    headers = ["rep", "no-op re-run (s)", "one-host change run (s)", "of which the restart play (s)",
               "change / (no-op + restart)", "hosts changed", "hosts restarted"]  # fmt: skip
    return table(headers, rows)


def chart(path: Path, results: Results, sizes: list[int]) -> None:
    """Re-run time against worker hosts, one line per tree (median, whiskers = range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, all_sizes in results.walls.items():
        by_size = {s: v for s, v in all_sizes.items() if v.values}
        xs = [s for s in sizes if s in by_size]
        medians = [by_size[s].median for s in xs]
        errors = [
            [by_size[s].median - by_size[s].low for s in xs],
            [by_size[s].high - by_size[s].median for s in xs],
        ]
        ax.errorbar(xs, medians, yerr=errors, marker="o", capsize=4, label=name)
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
    """``make bench`` entry: sizes 2, 4, 8, ``ctx.reps`` repetitions, the one-host change at 8; a
    baseline tree when CELERY_FLEET_BENCH_BASELINE names a git revision."""
    sizes = [2, 4, 8]
    baseline = os.environ.get("CELERY_FLEET_BENCH_BASELINE") or None
    # --quick: one converge of the 8 hosts first, and size 4 (the chart's middle point) measured once.
    size_reps = {4: 1} if ctx.quick else None
    deadline = float(os.environ.get("CELERY_FLEET_BENCH_DEADLINE", "0")) or None
    results = measure(baseline, ctx.reps, sizes, True, ctx.quick, size_reps, deadline)
    path, link = ctx.chart("scaling")
    chart(path, results, sizes)
    return section(results, sizes, baseline, link, ctx.quick)


def section(results: Results, sizes: list[int], baseline: str | None, link: str, quick: bool = False) -> str:
    small, large = min(sizes), max(sizes)
    ratio = size_ratio(results.walls["current"], large, small)
    verdict = ("met" if ratio.median <= 1.3 else "**MISSED**") if ratio.values else "**not measured**"
    parts = [
        "## 10. No-op re-run against the number of worker hosts (`scaling`)",
        "One light worker per host (prefork, concurrency 1, queue `light`), one Redis host, no beat or "
        "Flower; "
        + (
            "the 8 hosts converged once by the current tree at the start, each size then re-run on the first "
            "of them (the others idle, their worker running; `--quick`), sizes 2 and 8 first, then 4 once"
            if quick
            else "each size converged by the current tree (a size adds hosts to the one before), then re-run"
        )
        + " (changed=0 checked on every re-run)"
        + (
            f"; the baseline is `{baseline}`, its re-runs alternating with the current tree's on the same "
            "hosts (the converge's fact cache copied to it)"
            if baseline
            else ""
        )
        + ". Repetitions per size: "
        + ", ".join(f"{s}: {len(results.walls['current'].get(s, Sample()).values)}" for s in sizes)
        + ".",
        report(results, sizes),
        f"Target re-run({large}) / re-run({small}) <= 1.3 (current tree): {ratio.show()} - {verdict}.",
    ]
    if baseline and "baseline" in results.walls:
        base = size_ratio(results.walls["baseline"], large, small)
        parts.append(f"Baseline re-run({large}) / re-run({small}): {base.show()}.")
    parts += [
        "Where a re-run's time goes (seconds per play, profile_tasks stamps; the restart play has no "
        "host on a no-op run of the current tree):",
        profile(results, sizes),
    ]
    if results.change:
        ok = all(changed == [CHANGED_HOST] and restarted == [CHANGED_HOST]
                 for _, _, _, changed, restarted in results.change)  # fmt: skip
        cr = change_ratio(results)
        parts += [
            f"One-host change on the {large}-host fleet: one worker's concurrency on `{CHANGED_HOST}` "
            "(2, then back to 1), site.yml of the current tree, right after the same repetition's no-op "
            "re-runs. "
            "The restart is the restart play's duration in that run (restart + live check through Celery).",
            change_report(results),
            f"Only that host changed and restarted in every run: {'yes' if ok else '**NO**'}. "
            f"Target change <= 1.3 x (no-op + restart): {cr.show()} - "
            f"{('met' if cr.median <= 1.3 and ok else '**MISSED**') if cr.values else '**not measured**'}.",
        ]
    if results.notes:
        parts.append("Notes of this run:\n\n" + "\n".join(f"- {n}" for n in results.notes))
    parts.append(link)
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a git revision to measure beside the current tree")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--change", action="store_true", help="the one-host change at the largest size")
    parser.add_argument("--converge-once", action="store_true", help="converge the largest size only, first")
    parser.add_argument(
        "--deadline", type=float, help="epoch seconds: no repetition starts that would end later"
    )
    parser.add_argument("--size-reps", nargs="*", default=[], help="SIZE=N: N repetitions at that size")
    parser.add_argument("--chart", type=Path, help="write the chart (PNG) here")
    args = parser.parse_args(argv)
    size_reps = {int(k): int(v) for k, v in (item.split("=") for item in args.size_reps)}
    results = measure(
        args.baseline,
        args.reps,
        sorted(args.sizes),
        args.change,
        args.converge_once,
        size_reps,
        args.deadline,
    )
    print(section(results, sorted(args.sizes), args.baseline, ""))
    if args.chart:
        chart(args.chart, results, sorted(args.sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
