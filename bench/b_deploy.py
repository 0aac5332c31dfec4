"""Benchmarks 1 and 2: deploy overhead vs Ansible's per-task floor; shipped ansible.cfg vs defaults.

Both come from the same runs on the four-host fleet of bench/fleet.py (bench-cf-* containers with
the sandbox inventory mapped onto them), so they are one benchmark ("deploy") with two sections.

Per repetition (the order of the two configurations alternates between repetitions): fresh
containers and an empty fact cache, (b) the first converge of site.yml, (a) its idempotent re-run
(changed and failed are recorded; a re-run with changes is reported as such), (c) a micro playbook
of K no-op ``ansible.builtin.stat`` tasks over the same four hosts at two values of K: the per-task
floor f is the slope between them, so the playbook's fixed start-up is not counted as per-task cost.
Every run has the callback bench/callback_plugins/bench_task_times.py (with
ansible.posix.profile_tasks, on both sides), which gives the task count and the per-task and
per-role breakdown of the re-run.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import Sample, Target, bar_chart, paired_ratio, table, targets_table
from common import BENCH, ROOT, VENV_BIN, Context, log, sh
from fleet import HOSTS, Fleet

CONFIGS = ("shipped", "defaults")
# Task headers that run nothing on a host: not counted as executed tasks.
BOOKKEEPING = {"include_tasks", "include_role", "import_tasks", "import_role", "include", "meta"}
# Actions that run on the controller only (no module goes to the host): counted as executed, since
# they are task headers that did work for a host, and also shown apart.
CONTROLLER_SIDE = {
    "set_fact", "assert", "debug", "fail", "add_host", "group_by", "include_vars", "set_stats",
    "pause", "validate_argument_spec",
}  # fmt: skip
CALLBACKS = "ansible.posix.profile_tasks,bench_task_times"
ONE_HOST = "cf-worker-cpu"  # the one-host floor is measured here
CONVERGE_TIMEOUT = 1200.0
RERUN_TIMEOUT = 900.0
MICRO_TIMEOUT = 300.0
Tasks = list[dict[str, Any]]


@dataclass
class Plan:
    """What one invocation runs; the report states it."""

    ks: tuple[int, int]  # the two sizes of the stat micro playbook
    fresh_each_rep: bool  # False: one fresh fleet and first converge for all the repetitions
    converge_each: bool  # each configuration gets its own fresh fleet and first converge
    docker_api: bool  # one extra shipped re-run per repetition over community.docker.docker_api
    pipelined: bool  # one extra shipped re-run per repetition with ANSIBLE_PIPELINING=True

    def describe(self, reps: int) -> str:
        extras = [
            name
            for name, on in (
                ("the `community.docker.docker_api` connection", self.docker_api),
                ("`ANSIBLE_PIPELINING=True`", self.pipelined),
            )
            if on
        ]
        if self.converge_each:
            converge = "each configuration gets its own fresh containers, empty fact cache and first converge"
        else:
            converge = (
                ("one fresh fleet per repetition" if self.fresh_each_rep else "**one** fresh fleet for "
                 "all the repetitions (`--quick`: re-run ÷ first converge divides each re-run by that one "
                 "converge)")
                + ", first-converged with the shipped configuration; both configurations then re-run it "
                "(the deployed state does not depend on ansible.cfg), so the first converge with the "
                "defaults is **not measured** in this mode (`CELERY_FLEET_BENCH_DEPLOY_CONVERGE_EACH=1` "
                "measures it, at the cost of one more fresh fleet and converge per repetition)"
            )  # fmt: skip
        return (
            f"{reps} repetitions, alternating which configuration goes first; {converge}; micro "
            f"playbook at K = {self.ks[0]} and {self.ks[1]}"
            + (
                f"; one extra shipped re-run per repetition with {' and with '.join(extras)}"
                if extras
                else ""
            )
            + "."
        )


@dataclass
class Run:
    label: str
    wall: float
    ok: bool
    changed: int = 0
    failed: int = 0
    tasks: Tasks = field(default_factory=list)


def short_action(action: str) -> str:
    return action.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")


def ran(task: dict[str, Any]) -> bool:
    """A task header that ran on >= 1 host (includes and meta are not tasks that run anything)."""
    return short_action(task["action"]) not in BOOKKEEPING and any(h["ran"] for h in task["hosts"].values())


def n_ran(task: dict[str, Any]) -> int:
    return sum(1 for h in task["hosts"].values() if h["ran"])


def weight(task: dict[str, Any]) -> int:
    """A loop counts once per item: the most items any host ran."""
    return max([h["items"] for h in task["hosts"].values() if h["ran"]] or [1]) or 1


def task_count(tasks: Tasks) -> tuple[int, int, int, int]:
    """(executed tasks, of which send a module to a host, task headers seen, module runs summed over
    hosts and loop items), loops counted per item."""
    done = [t for t in tasks if ran(t)]
    remote = [t for t in done if short_action(t["action"]) not in CONTROLLER_SIDE]
    host_runs = sum(h["items"] for t in remote for h in t["hosts"].values() if h["ran"])
    return sum(weight(t) for t in done), sum(weight(t) for t in remote), len(tasks), host_runs


def stat_playbook(directory: Path, k: int) -> Path:
    """K no-op stat tasks over every host, no facts: the per-task floor."""
    path = directory / f"stat-floor-{k}.yml"
    tasks = [{"name": f"No-op stat {i + 1}", "ansible.builtin.stat": {"path": "/"}} for i in range(k)]
    play = {"name": "Per-task floor", "hosts": "all", "gather_facts": False, "tasks": tasks}
    path.write_text(json.dumps([play], indent=1))
    return path


@dataclass
class Results:
    # (rep, key, phase) -> wall seconds; key is a configuration or an information variant
    walls: dict[tuple[int, str, str], float] = field(default_factory=dict)
    rerun_tasks: dict[tuple[int, str], Tasks] = field(default_factory=dict)
    # (rep, key) -> (slope f, intercept, wall/K at the larger K)
    floor: dict[tuple[int, str], tuple[float, float, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    changed_reruns: list[str] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # rep -> the repetition whose fresh fleet and first converge its re-runs ran on
    fleet_of: dict[int, int] = field(default_factory=dict)
    fleet_rep: int = 0


class Runner:
    """Runs playbooks on the fleet with the task callback; a failed run becomes a report line."""

    def __init__(self, fleet: Fleet, plan: Plan) -> None:
        self.fleet = fleet
        self.plan = plan
        self.res = Results()
        self.facts = fleet.tmp / "facts"
        self.converged = False

    def playbook(
        self,
        playbook: str,
        label: str,
        phase: str,
        config: str,
        facts: Path,
        timeout: float,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> Run:
        out = self.fleet.tmp / f"{label}.tasks.json"
        run_env = {
            "ANSIBLE_CALLBACK_PLUGINS": str(BENCH / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": CALLBACKS,
            "BENCH_TASK_TIMES_OUT": str(out),
            **(env or {}),
        }
        log(f"deploy: {label}")
        t0 = time.perf_counter()
        try:
            r = self.fleet.playbook(
                playbook, *args, facts=facts, config=config, env=run_env, timeout=timeout, name=label
            )
        except subprocess.TimeoutExpired:
            self.res.failures.append(f"`{label}`: timed out after {timeout:.0f} s")
            return Run(label, time.perf_counter() - t0, ok=False)
        self.res.phases[phase].append(r.wall)
        tasks = json.loads(out.read_text())["tasks"] if out.exists() else []
        run = Run(label, r.wall, r.returncode == 0 and r.failed == 0, r.changed, r.failed, tasks)
        log(f"deploy: {label}: {r.wall:.1f} s, exit {r.returncode}, changed {r.changed}, failed {r.failed}")
        if not run.ok:
            lines = r.output.splitlines()
            # Ansible's own error line first (the per-host lines carry the whole loop item)
            errors = [ln.strip()[:240] for ln in lines if ln.startswith("[ERROR]")] + [
                ln.strip()[:240] for ln in lines if ln.startswith(("fatal:", "failed:"))
            ]
            detail = "; ".join(f"`{e}`" for e in errors[:2]) or f"last output `{r.output.strip()[-300:]}`"
            self.res.failures.append(
                f"`{label}`: exit {r.returncode}, failed/unreachable {r.failed}: {detail} "
                f"(full log `{self.fleet.log_path(label)}`, kept with `--keep`)"
            )
        return run

    # --- the phases of one repetition ------------------------------------------------------------

    def fresh_facts(self, rep: int, key: str) -> Path:
        facts = self.fleet.tmp / f"facts-rep{rep + 1}-{key}"
        shutil.rmtree(facts, ignore_errors=True)
        facts.mkdir()
        return facts

    def converge(self, rep: int, config: str, facts: Path) -> bool:
        """Fresh containers, then (b) the first converge."""
        try:
            log(f"deploy: rep {rep + 1}: fresh containers")
            self.res.phases["fresh containers"].append(self.fleet.recreate())
        except (RuntimeError, subprocess.TimeoutExpired, TimeoutError) as exc:
            self.res.failures.append(f"rep {rep + 1} {config}: the containers did not start: {exc}")
            return False
        c = self.playbook("site.yml", f"rep{rep + 1}-{config}-converge", f"first converge ({config})", config,
                          facts, CONVERGE_TIMEOUT)  # fmt: skip
        if c.ok:
            self.res.walls[(rep, config, "converge")] = c.wall
        return c.ok

    def rerun(self, rep: int, config: str, facts: Path) -> None:
        """(a) the idempotent re-run, and the information variants after the shipped one."""
        variants: list[tuple[str, str, dict[str, str], tuple[str, ...]]] = [(config, config, {}, ())]
        if config == "shipped" and self.plan.docker_api:
            # As inventory host variables of the four hosts, not -e: an extra var would also apply
            # to the tasks delegated to localhost (the controller is no container).
            api = self.fleet.tmp / "docker-api.yml"
            hosts = {h: {"ansible_connection": "community.docker.docker_api"} for h in HOSTS}
            api.write_text(json.dumps({"all": {"hosts": hosts}}))
            variants.append(("docker_api", config, {}, ("-i", str(api))))
        if config == "shipped" and self.plan.pipelined:
            variants.append(("pipelined", config, {"ANSIBLE_PIPELINING": "True"}, ()))
        for key, cfg, env, args in variants:
            r = self.playbook("site.yml", f"rep{rep + 1}-{key}-rerun", f"re-run ({key})", cfg, facts,
                              RERUN_TIMEOUT, env, args)  # fmt: skip
            if not r.ok:
                continue
            self.res.walls[(rep, key, "rerun")] = r.wall
            self.res.rerun_tasks[(rep, key)] = r.tasks
            if r.changed:
                names = sorted({t["name"] for t in r.tasks if any(h["changed"] for h in t["hosts"].values())})
                self.res.changed_reruns.append(f"`{r.label}`: changed={r.changed} ({'; '.join(names[:8])})")

    def floor(self, rep: int, config: str, facts: Path) -> None:
        """(c) f = slope of the micro playbook's wall over K. For the shipped configuration also on
        one host (a task of a `serial` batch or of a one-host group pays less than a four-host one)
        and with ANSIBLE_PIPELINING=True (what pipelining buys per task on this connection)."""
        keys: list[tuple[str, dict[str, str], tuple[str, ...]]] = [(config, {}, ())]
        if config == "shipped":
            keys += [
                (f"{config}-1host", {}, ("--limit", ONE_HOST)),
                ("pipelined", {"ANSIBLE_PIPELINING": "True"}, ()),
            ]
        for key, env, args in keys:
            walls: dict[int, float] = {}
            for k in self.plan.ks if rep % 2 == 0 else self.plan.ks[::-1]:
                pb = stat_playbook(self.fleet.tmp, k)
                r = self.playbook(str(pb), f"rep{rep + 1}-{key}-stat{k}", f"micro K={k} ({key})", config,
                                  facts, MICRO_TIMEOUT, env, args)  # fmt: skip
                if r.ok:
                    walls[k] = r.wall
            if len(walls) == 2:
                k1, k2 = self.plan.ks
                slope = (walls[k2] - walls[k1]) / (k2 - k1)
                self.res.floor[(rep, key)] = (slope, walls[k2] - slope * k2, walls[k2] / k2)

    def repetition(self, rep: int) -> None:
        order = CONFIGS if rep % 2 == 0 else CONFIGS[::-1]
        if self.plan.converge_each:
            for config in order:
                facts = self.fresh_facts(rep, config)
                if self.converge(rep, config, facts):
                    self.rerun(rep, config, facts)
                    self.floor(rep, config, facts)
            return
        if rep == 0 or self.plan.fresh_each_rep:
            self.facts = self.fresh_facts(rep, "fleet")
            self.converged = self.converge(rep, "shipped", self.facts)
            self.res.fleet_rep = rep
        self.res.fleet_of[rep] = self.res.fleet_rep
        if not self.converged:
            return
        facts = self.facts
        for config in order:
            self.rerun(rep, config, facts)
        for config in order:
            self.floor(rep, config, facts)


# --- Figures -----------------------------------------------------------------------------------


class Figures:
    def __init__(self, res: Results, reps: int) -> None:
        self.res = res
        self.reps = reps

    def side(self, key: str, phase: str) -> Sample:
        return Sample([v for i in range(self.reps) if (v := self.res.walls.get((i, key, phase))) is not None])

    def get(self, i: int, key: str, phase: str) -> float | None:
        """A repetition's wall; its first converge is that of the fleet its re-runs ran on."""
        if phase == "converge" and i in self.res.fleet_of:
            i = self.res.fleet_of[i]
        return self.res.walls.get((i, key, phase))

    def pair(self, a: tuple[str, str], b: tuple[str, str]) -> Sample:
        """Per-repetition ratio a ÷ b over the repetitions where both sides succeeded."""
        ok = [
            (x, y)
            for i in range(self.reps)
            if (x := self.get(i, *a)) is not None and (y := self.get(i, *b)) is not None
        ]
        return paired_ratio([x for x, _ in ok], [y for _, y in ok])

    def floor(self, key: str, part: int = 0) -> Sample:
        return Sample([v[part] for i in range(self.reps) if (v := self.res.floor.get((i, key))) is not None])

    def count(self, key: str, part: int) -> Sample:
        return Sample(
            [
                task_count(t)[part]
                for i in range(self.reps)
                if (t := self.res.rerun_tasks.get((i, key))) is not None
            ]
        )

    def overhead(self, key: str, floor_key: str, part: int = 0) -> tuple[Sample, Sample]:
        """Per repetition: re-run ÷ (tasks executed x f), and tasks x f in seconds."""
        ratios, expected = Sample(), Sample()
        for i in range(self.reps):
            wall = self.res.walls.get((i, key, "rerun"))
            tasks = self.res.rerun_tasks.get((i, key))
            f = self.res.floor.get((i, floor_key))
            if wall is None or tasks is None or f is None or f[0] <= 0:
                continue
            # part 3 counts module runs per host: a host's share of the floor is f / hosts
            e = task_count(tasks)[part] * f[0] / (len(HOSTS) if part == 3 else 1)
            expected.add(e)
            ratios.add(wall / e)
        return ratios, expected

    def host_floor(self, i: int | None, key: str) -> dict[int, float] | None:
        """f for a task that ran on n hosts: linear between the one-host and the all-host floor
        (repetition i, or the medians when i is None)."""
        if i is None:
            f1s, fns = self.floor(f"{key}-1host"), self.floor(key)
            if not f1s.values or not fns.values:
                return None
            f1, fn = f1s.median, fns.median
        else:
            a, b = self.res.floor.get((i, f"{key}-1host")), self.res.floor.get((i, key))
            if a is None or b is None:
                return None
            f1, fn = a[0], b[0]
        last = len(HOSTS)
        return {n: f1 + (fn - f1) * (n - 1) / (last - 1) for n in range(1, last + 1)}

    def host_aware(self, key: str) -> tuple[Sample, Sample]:
        """Re-run ÷ the sum over executed tasks of items x f(hosts it ran on), and that sum."""
        ratios, expected = Sample(), Sample()
        for i in range(self.reps):
            wall, tasks, f = self.res.walls.get((i, key, "rerun")), self.res.rerun_tasks.get((i, key)), None
            if tasks is not None:
                f = self.host_floor(i, key)
            if wall is None or tasks is None or f is None:
                continue
            e = sum(weight(t) * f[max(n_ran(t), 1)] for t in tasks if ran(t))
            if e > 0:
                expected.add(e)
                ratios.add(wall / e)
        return ratios, expected

    def gather(self, key: str) -> Sample:
        """Seconds of the re-run spent in fact gathering task headers."""
        return Sample(
            [
                sum(t["wall"] for t in tasks if short_action(t["action"]) in ("gather_facts", "setup"))
                for i in range(self.reps)
                if (tasks := self.res.rerun_tasks.get((i, key))) is not None
            ]
        )

    def breakdown(self, key: str) -> tuple[list[list[str]], list[list[str]]]:
        """Top-10 slow task names and per-role totals of the re-runs (medians over repetitions)."""
        runs = [t for i in range(self.reps) if (t := self.res.rerun_tasks.get((i, key))) is not None]
        flat = self.floor(key)
        fh = self.host_floor(None, key) or (
            {n: flat.median for n in range(1, len(HOSTS) + 1)} if flat.values else None
        )
        per_task: dict[tuple[str, str], list[float]] = defaultdict(list)
        per_role: dict[str, list[float]] = defaultdict(list)
        meta: dict[tuple[str, str], tuple[str, int, int]] = {}
        floor_of: dict[tuple[str, str], float] = defaultdict(float)  # sum of items x f(hosts) per name
        role_n: dict[str, list[int]] = defaultdict(list)
        for tasks in runs:
            t_sum: dict[tuple[str, str], float] = defaultdict(float)
            r_sum: dict[str, float] = defaultdict(float)
            r_n: dict[str, int] = defaultdict(int)
            headers: dict[tuple[str, str], int] = defaultdict(int)
            weights: dict[tuple[str, str], int] = defaultdict(int)
            for t in tasks:
                role = t["role"] or f"(play) {t['play'][:48]}"
                label = t["name"].removeprefix(f"{t['role']} : ") if t["role"] else t["name"]
                name = (role, label)
                t_sum[name] += t["wall"]
                r_sum[role] += t["wall"]
                headers[name] += 1
                w = weight(t) if ran(t) else 0
                weights[name] += w
                r_n[role] += w
                if fh and tasks is runs[0] and w:
                    floor_of[name] += w * fh[max(n_ran(t), 1)]
                meta[name] = (short_action(t["action"]), headers[name], weights[name])
            for name, v in t_sum.items():
                per_task[name].append(v)
            for role, v in r_sum.items():
                per_role[role].append(v)
                role_n[role].append(r_n[role])
        top = sorted(per_task.items(), key=lambda kv: -statistics.median(kv[1]))[:10]
        rows = []
        for name, walls in top:
            action, headers_n, weight_n = meta[name]
            med = statistics.median(walls)
            vs_floor = f"{med / floor_of[name]:.1f}" if floor_of[name] else "skipped"
            if action in BOOKKEEPING:
                vs_floor = "(include)"
            cells = [name[1][:80].replace("|", "\\|"), name[0], f"`{action}`", str(headers_n), str(weight_n)]
            rows.append([*cells, Sample(walls).show(1), vs_floor])
        total = statistics.median([sum(t["wall"] for t in tasks) for tasks in runs]) if runs else 0.0
        role_rows = [
            [
                role,
                str(int(statistics.median(role_n[role]))),
                Sample(walls).show(1),
                f"{statistics.median(walls) / total:.0%}" if total else "n/a",
            ]
            for role, walls in sorted(per_role.items(), key=lambda kv: -statistics.median(kv[1]))
            if statistics.median(role_n[role]) or statistics.median(walls) >= 0.5
        ]
        return rows, role_rows


def shipped_pipelining() -> str:
    """The global pipelining setting as the shipped ansible.cfg resolves it (`ansible-config dump`)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = sh([str(VENV_BIN / "ansible-config"), "dump"], check=False, cwd=ROOT, env=env, timeout=120)
    return next((ln.strip() for ln in out.splitlines() if ln.startswith("ANSIBLE_PIPELINING(")), "n/a")


def mitogen_installed() -> bool:
    done = subprocess.run([str(VENV_BIN / "python"), "-c", "import ansible_mitogen"],
                          capture_output=True, timeout=60, check=False)  # fmt: skip
    return done.returncode == 0


def bench_deploy(ctx: Context) -> str:
    """(1) Deploy overhead vs the per-task floor and (2) shipped ansible.cfg vs defaults."""
    # Issue 9 compares the first converge too: full mode gives each configuration its own fresh
    # fleet and converge (≈ 2 min more per repetition); --quick does not, unless asked.
    setting = os.environ.get("CELERY_FLEET_BENCH_DEPLOY_CONVERGE_EACH", "" if ctx.quick else "1")
    each = setting == "1"
    if ctx.quick:
        plan = Plan(ks=(4, 12), fresh_each_rep=each, converge_each=each, docker_api=False, pipelined=False)
    else:
        plan = Plan(ks=(6, 18), fresh_each_rep=True, converge_each=each, docker_api=True, pipelined=False)
    started = time.perf_counter()
    fleet = Fleet(keep=ctx.sandbox.keep)
    runner = Runner(fleet, plan)
    try:
        for rep in range(ctx.reps):
            runner.repetition(rep)
    finally:
        fleet.down()
    minutes = (time.perf_counter() - started) / 60
    return render(ctx, plan, runner.res, minutes)


# --- Report ------------------------------------------------------------------------------------


def target(label: str, sample: Sample, limit: float, reps: int, gated: bool = True) -> Target | None:
    """An at-most target on a sample's median; the label says when repetitions are missing."""
    if not sample.values:
        return None
    if len(sample.values) < reps:
        label += f" (**{len(sample.values)} of {reps} repetitions**: see the failed runs)"
    return Target(label, sample.median, limit, False, gated=gated)


def chart(ctx: Context, name: str, title: str, bars: list[tuple[str, Sample]]) -> str:
    """A bar chart of the measured bars (medians, range whiskers); its markdown, or "" if none."""
    bars = [(label, sample) for label, sample in bars if sample.values]
    if not bars:
        return ""
    path, img = ctx.chart(name)
    bar_chart(path, title, [label for label, _ in bars], [sample for _, sample in bars], "seconds")
    return img


def render(ctx: Context, plan: Plan, res: Results, minutes: float) -> str:
    fig = Figures(res, ctx.reps)
    over, expected = fig.overhead("shipped", "shipped")
    over_remote, _ = fig.overhead("shipped", "shipped", part=1)
    over_hosts, expected_hosts = fig.host_aware("shipped")
    over_def, _ = fig.overhead("defaults", "defaults")
    rerun_vs_converge = fig.pair(("shipped", "rerun"), ("shipped", "converge"))
    counts, remote, headers = fig.count("shipped", 0), fig.count("shipped", 1), fig.count("shipped", 2)
    f_s, f_d = fig.floor("shipped"), fig.floor("defaults")
    cfg_rerun = fig.pair(("shipped", "rerun"), ("defaults", "rerun"))
    cfg_converge = fig.pair(("shipped", "converge"), ("defaults", "converge"))
    api = fig.pair(("docker_api", "rerun"), ("shipped", "rerun"))
    pipelined = fig.pair(("pipelined", "rerun"), ("shipped", "rerun"))
    floor_ratio = Sample(
        [a[0] / b[0] for i in range(ctx.reps)
         if (a := res.floor.get((i, "shipped"))) and (b := res.floor.get((i, "defaults"))) and b[0] > 0]
    )  # fmt: skip
    pipe_floor_ratio = Sample(
        [a[0] / b[0] for i in range(ctx.reps)
         if (a := res.floor.get((i, "pipelined"))) and (b := res.floor.get((i, "shipped"))) and b[0] > 0]
    )  # fmt: skip
    n_hosts = len(HOSTS)
    health = (
        "Every measured re-run finished with changed=0 and failed=0."
        if not res.changed_reruns
        else "**Re-runs that changed something** (not idempotent; their times are still counted): "
        + "; ".join(res.changed_reruns)
        + "."
    )
    failures = (
        "**Failed runs** (left out of the ratios; a pair with a failed side is dropped): "
        + "; ".join(res.failures)
        if res.failures
        else "No run failed."
    )
    time_rows = [[phase, str(len(v)), Sample(v).show(1)] for phase, v in res.phases.items()]

    # --- section 1
    targets1 = [
        t
        for t in (
            target("Re-run ÷ (tasks executed x f), shipped", over, 1.3, ctx.reps),
            target("Re-run ÷ first converge, shipped", rerun_vs_converge, 0.6, ctx.reps),
            target("Re-run ÷ (tasks executed x f), defaults", over_def, 1.3, ctx.reps, gated=False),
        )
        if t
    ]
    rows1 = [
        ["First converge (fresh containers, empty fact cache), s", fig.side("shipped", "converge").show(1)],
        ["Idempotent re-run, s", fig.side("shipped", "rerun").show(1)],
        ["Tasks executed in the re-run (loops per item)", counts.show(0)],
        ["… of which send a module to a host (the rest: set_fact, assert, debug …)", remote.show(0)],
        ["Task headers seen in the re-run (with skipped ones and includes)", headers.show(0)],
        [f"Per-task floor f (slope, {n_hosts} hosts), s", f_s.show(3)],
        ["Micro playbook start-up (intercept), s", fig.floor("shipped", 1).show(1)],
        [f"Wall ÷ K at K = {plan.ks[1]} (start-up included), s", fig.floor("shipped", 2).show(3)],
        ["Tasks executed x f, s", expected.show(1)],
        ["Re-run ÷ (tasks executed x f)", over.show()],
        ["Re-run ÷ (module tasks only x f), information", over_remote.show()],
        [f"Per-task floor on one host ({ONE_HOST}), s", fig.floor("shipped-1host").show(3)],
        ["Sum over executed tasks of items x f(hosts it ran on), s", expected_hosts.show(1)],
        ["Re-run ÷ that sum (information: host-aware, stricter)", over_hosts.show()],
        ["Re-run ÷ first converge", rerun_vs_converge.show()],
    ]
    top, roles = fig.breakdown("shipped")
    bars1 = [("first converge", fig.side("shipped", "converge")), ("re-run", fig.side("shipped", "rerun")),
             ("tasks x f", expected), ("tasks x f(hosts)", expected_hosts)]  # fmt: skip
    img1 = chart(ctx, "deploy-overhead", "site.yml on 4 hosts, shipped ansible.cfg", bars1)
    section1 = "\n\n".join(
        [
            "## 1. Deploy overhead vs Ansible's per-task floor",
            f"`site.yml` on the four-host sandbox fleet (`bench-cf-*` containers, inventory "
            f"`inventories/sandbox` mapped onto them), shipped `ansible.cfg`. {plan.describe(ctx.reps)} "
            "f is the slope of the micro playbook's wall time between its two sizes (K no-op "
            "`ansible.builtin.stat` tasks on all four hosts, no facts, same configuration, same "
            "callbacks), so its fixed start-up is not spread over the tasks; nothing is subtracted from "
            "the re-run, which pays its own start-up. Tasks executed = task headers that ran on at least "
            "one host (includes and meta not counted, loops once per item, the most items over the "
            "hosts), from the `bench_task_times` callback.",
            table(["Quantity (shipped ansible.cfg)", "Median (range)"], rows1),
            targets_table(targets1) if targets1 else "No target could be computed: see the failures below.",
            health,
            "Slowest tasks of the re-run (task names summed over their headers, median over the "
            'repetitions; "÷ floor" = wall ÷ the sum of items x f(hosts it ran on), f(n) linear between '
            "the one-host and the four-host floor; 1.0 = the cost of no-op tasks):",
            table(["Task", "Role / play", "Action", "Headers", "Items", "Wall, s", "÷ floor"], top)
            if top
            else "n/a",
            "Per role (or play) of the re-run:",
            table(["Role / play", "Tasks executed", "Wall, s", "Share of task time"], roles)
            if roles
            else "n/a",
            img1,
        ]
    )

    # --- section 2
    targets2 = [
        t
        for t in (
            target("Re-run: shipped ÷ defaults", cfg_rerun, 0.7, ctx.reps),
            target("First converge: shipped ÷ defaults", cfg_converge, 0.7, ctx.reps, gated=False),
        )
        if t
    ]
    mitogen = (
        "Mitogen: installed, but not measured by this benchmark."
        if mitogen_installed()
        else "Mitogen: **not installed** in the project venv (`ansible_mitogen` does not import), so not "
        "measured; FACTS.md explains why it would only ever be an opt-in (strategy plugin, deprecated in "
        "ansible-core 2.19; apt tasks need `python3-apt`)."
    )
    pipe_line = shipped_pipelining()
    sd = ("shipped", "defaults")
    rows2 = [
        ["First converge, s", *(fig.side(c, "converge").show(1) for c in sd), cfg_converge.show()],
        ["Idempotent re-run, s", *(fig.side(c, "rerun").show(1) for c in sd), cfg_rerun.show()],
        ["Fact gathering in the re-run, s", *(fig.gather(c).show(1) for c in sd), ""],
        ["Tasks executed in the re-run", counts.show(0), fig.count("defaults", 0).show(0), ""],
        ["Per-task floor f, s", f_s.show(3), f_d.show(3), floor_ratio.show()],
        ["Re-run ÷ (tasks x f)", over.show(), over_def.show(), ""],
    ]  # fmt: skip
    info_rows = [
        ["f with `ANSIBLE_PIPELINING=True` ÷ f shipped (micro playbook)", pipe_floor_ratio.show()],
    ]
    if plan.pipelined:
        info_rows.append(["Re-run with `ANSIBLE_PIPELINING=True` ÷ shipped re-run", pipelined.show()])
    if plan.docker_api:
        info_rows.append(
            ["Re-run over `community.docker.docker_api` ÷ shipped re-run (CLI docker)", api.show()]
        )
    bars2 = [
        (f"{phase.replace('rerun', 're-run')} {key}", fig.side(key, phase))
        for phase, key in [("converge", "shipped"), ("converge", "defaults"), ("rerun", "shipped"),
                           ("rerun", "defaults"), ("rerun", "docker_api"), ("rerun", "pipelined")]
    ]  # fmt: skip
    img2 = chart(ctx, "ansible-cfg", "site.yml on 4 hosts: shipped ansible.cfg vs defaults", bars2)
    section2 = "\n\n".join(
        [
            "## 2. Shipped `ansible.cfg` vs Ansible's defaults",
            "The same runs as section 1. Defaults = `ANSIBLE_CONFIG` pointing at a file with only "
            "`roles_path`, `filter_plugins` and `library` (the repository's; stock otherwise: no pipelining, "
            "implicit gathering in every play, no "
            "fact cache, forks 5); both sides get the same callbacks (`profile_tasks` and "
            "`bench_task_times` through `ANSIBLE_CALLBACKS_ENABLED`). The shipped re-run reuses the fact "
            "cache its first converge filled, as an operator's would. Ratios are per repetition, "
            "shipped ÷ defaults.",
            table(["Quantity", "Shipped", "Defaults", "Shipped ÷ defaults"], rows2),
            targets_table(targets2) if targets2 else "No target could be computed: see the failures below.",
            f"Global pipelining as the shipped `ansible.cfg` resolves it (`ansible-config dump`): "
            f"`{pipe_line}`."
            + (
                " The file's `pipelining = True` sits under `[ssh_connection]`, which only the ssh "
                "connection plugin reads; the sandbox (and this benchmark) reach the hosts through "
                "`community.docker.docker`, which has no pipelining option of its own and falls back to "
                "the global setting, so the shipped configuration does **not** pipeline here."
                if pipe_line.endswith("= False")
                else ""
            )
            + " Information, not gated:",
            table(["Variant", "Ratio, median (range)"], info_rows),
            mitogen,
            img2,
            failures,
            f"Time spent by this benchmark: {minutes:.1f} min. Per phase (count, median and range, s):",
            table(["Phase", "Runs", "Wall, s"], time_rows) if time_rows else "n/a",
        ]
    )
    return section1 + "\n\n" + section2
