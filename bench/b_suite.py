"""Benchmark 7: test-suite cost.

Two parts, kept apart in the report because they come from different runs:

(a) The real suite, phase by phase. Running `make test` (≈ 22 min) inside the benchmark run does
    not fit the time of the whole benchmark set, so scripts/run-scenarios.sh (the Molecule step of
    `make test`) times every Molecule action of every scenario as it runs and appends the times to
    .cache/molecule-logs/phases.tsv, with one row per run in runs.tsv (commit, the enclosing
    `make` command and its elapsed time, which harness caches that run rebuilt). This benchmark
    reads the newest records and labels them with their date and commit: they are NOT measured by
    this run.

(b) Measured in this run: the project's Molecule configuration (.config/molecule/config.yml as
    is) against a stock one on the same role, side by side, >= 3 repetitions in alternating order.
    The role is molecule/redis reduced to its bookworm platform, generated in a temp directory
    (containers bench-suite-*). The stock side uses Molecule's own docker-driver create/destroy
    (the image built per scenario from Molecule's Dockerfile, Docker's layer cache as it is),
    Molecule's ansible.cfg defaults (no pipelining, implicit gathering, no profile_tasks), and
    only what the role needs to run at all: its roles/filter paths and systemd as PID 1.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from benchlib import Sample, Target, paired_ratio, table, targets_table
from common import IMAGE, ROOT, VENV_BIN, WHEELHOUSE, Context, log, sh

LOGS = ROOT / ".cache" / "molecule-logs"
SOURCE = ROOT / "molecule" / "redis"
BASE_CONFIG = ROOT / ".config" / "molecule" / "config.yml"
PREFIX = "bench-suite"
STOCK_IMAGE = f"molecule_local/{IMAGE}"  # what Molecule's docker driver tags its per-scenario build
SIDES = ("project", "stock")
# The order phases are drawn and tabulated in; "destroy (before)" is the first destroy of a sequence.
PHASES = ("destroy (before)", "syntax", "create", "prepare", "check", "converge", "idempotence", "verify",
          "destroy")  # fmt: skip
HARNESS = ("create", "destroy (before)", "destroy")
COLOURS = {
    "destroy (before)": "#c7c7c7", "syntax": "#dbdb8d", "create": "#7f7f7f", "prepare": "#9edae5",
    "check": "#aec7e8", "converge": "#1f77b4", "idempotence": "#ff7f0e", "verify": "#2ca02c",
    "destroy": "#8c564b", "Molecule + Ansible start-up": "#e377c2",
}  # fmt: skip
OTHER = "Molecule + Ansible start-up"
RUN_TIMEOUT = 1200  # one `molecule test` of the one-host scenario; ~2-3 min expected
# Molecule's action lines, after the level name: "[<scenario> > <action>] Executing" without colour,
# "<scenario> ➜ <action>: Executing" with it (the same two forms scripts/run-scenarios.sh reads).
ACTION_LINE = re.compile(
    r"^[A-Z]+ +(?:\[(?P<s1>[\w.-]+) > (?P<a1>[a-z_]+)\]|(?P<s2>[\w.-]+) \u279c (?P<a2>[a-z_]+):) "
    r"(?:Executing|Executed: (?P<result>.*))$"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "n/a"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def _label_phases(actions: list[tuple[str, float]]) -> dict[str, float]:
    """Sum per phase; the first destroy of a sequence (before create) is its own phase."""
    out: dict[str, float] = {}
    created = False
    for action, seconds in actions:
        if action == "create":
            created = True
        name = "destroy (before)" if action == "destroy" and not created else action
        out[name] = out.get(name, 0.0) + seconds
    return out


# --- (a) The record written by scripts/run-scenarios.sh ------------------------------------------


@dataclass
class SuiteRun:
    run: str
    commit: str
    ended: str
    scenarios_seconds: float
    make_command: str
    make_before: float | None
    make_end: float | None
    rebuilt: str
    passed: list[str]
    failed: list[str]
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # scenario -> phase -> s
    totals: dict[str, float] = field(default_factory=dict)  # scenario -> wall s

    @property
    def scenarios(self) -> list[str]:
        return [*self.passed, *self.failed]

    @property
    def make_test(self) -> bool:
        return bool(re.search(r"\bmake\b.*\btest\b", self.make_command)) and self.make_end is not None

    @property
    def warm(self) -> bool:
        return self.rebuilt == "none"


def _read_tsv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_record(logs: Path = LOGS) -> list[SuiteRun]:
    """Every run recorded by scripts/run-scenarios.sh, oldest first."""
    runs: dict[str, SuiteRun] = {}
    for row in _read_tsv(logs / "runs.tsv"):
        runs[row["run"]] = SuiteRun(
            run=row["run"],
            commit=row["commit"],
            ended=row["ended"],
            scenarios_seconds=float(row["scenarios_seconds"]),
            make_command=row["make_command"],
            make_before=_number(row["make_seconds_before"]),
            make_end=_number(row["make_seconds_at_end"]),
            rebuilt=row["rebuilt"],
            passed=[s for s in row["passed"].split() if s != "none"],
            failed=[s for s in row["failed"].split() if s != "none"],
        )
    actions: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for row in _read_tsv(logs / "phases.tsv"):
        if row["run"] not in runs:
            continue
        if row["action"] == "total":
            runs[row["run"]].totals[row["scenario"]] = float(row["seconds"])
        else:
            actions.setdefault((row["run"], row["scenario"]), []).append(
                (row["action"], float(row["seconds"]))
            )
    for (run, scenario), acts in actions.items():
        runs[run].phases[scenario] = _label_phases(acts)
    return sorted(runs.values(), key=lambda r: r.run)


def all_scenarios() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


def record_section() -> tuple[str, list[Target], dict[str, dict[str, float]]]:
    runs = read_record()
    wanted = set(all_scenarios())
    complete = [r for r in runs if wanted <= set(r.scenarios) and not r.failed]
    title = "### (a) The suite phase by phase: from the newest `make test` record, not from this run"
    if not runs:
        return (
            f"{title}\n\nNo record: `.cache/molecule-logs/runs.tsv` does not exist. "
            "`scripts/run-scenarios.sh` writes it on every `make test` (or `make molecule`); run the "
            "suite once and then this benchmark.",
            [],
            {},
        )
    lines = [title]
    warm = [r for r in complete if r.make_test and r.warm]
    cold = [r for r in complete if r.make_test and not r.warm]
    timed = [r for r in runs if r.phases]
    chosen = (warm or complete or timed or runs)[-1]
    lines.append(
        "These figures were **not measured by this benchmark run**: they are read from "
        "`.cache/molecule-logs/phases.tsv` and `runs.tsv`, which `scripts/run-scenarios.sh` writes "
        "as `make test` runs (each Molecule action timed as its `Executing` / `Executed` lines "
        "arrive). A time here is absolute, from another run: compare only within one record."
    )
    rows = []
    for r in runs[-6:]:
        rows.append(
            [
                r.run,
                f"`{r.commit}`",
                f"`{r.make_command}`" if r.make_command != "-" else "(not under make)",
                _minutes(r.make_end) if r.make_end is not None else "n/a",
                _minutes(r.scenarios_seconds),
                "warm" if r.warm else ("n/a" if r.rebuilt == "-" else f"cold ({r.rebuilt})"),
                str(len(r.scenarios)),
                ", ".join(r.failed) if r.failed else "none",
            ]
        )
    lines.append(
        "Recorded runs (newest last, at most 6):\n\n"
        + table(
            ["Run (UTC)", "Commit", "Command", "make wall", "Molecule part", "Caches", "Scenarios", "Failed"],
            rows,
        )
    )
    origin = (
        f"from the `{chosen.make_command}` run started {chosen.run}, commit `{chosen.commit}`"
        if chosen.make_command != "-"
        else f"from the scenario run started {chosen.run}, commit `{chosen.commit}` (not under make)"
    )
    if chosen not in complete:
        lines.append(
            f"No complete, passing run of all {len(wanted)} scenarios is recorded: the table below is "
            f"the newest run ({', '.join(chosen.scenarios)})."
        )
    elif not chosen.make_test:
        lines.append(
            "No complete run under `make test` is recorded: the table below is a `make molecule` run."
        )
    if cold:
        c = cold[-1]
        lines.append(
            f"Cold (caches rebuilt: {c.rebuilt}): `make test` took {_minutes(c.make_end or 0)} at "
            f"{c.run}, commit `{c.commit}`: {_minutes(c.make_before or 0)} before the first scenario "
            f"(venv, lint, unit, syntax, harness), Molecule {_minutes(c.scenarios_seconds)}."
        )
    else:
        lines.append("Cold: no recorded `make test` rebuilt its harness caches (images, wheelhouse, venv).")
    if not warm:
        lines.append("Warm: no complete, passing `make test` with every cache reused is recorded.")

    if not chosen.phases:
        lines.append(
            f"The newest run ({chosen.run}) has no per-action times (its log lines were not parsed), "
            "so there is no phase table."
        )
        return "\n\n".join(lines), [], {}
    seen = [p for p in PHASES if any(p in ph for ph in chosen.phases.values())]
    body = []
    breakdown: dict[str, dict[str, float]] = {}
    for scenario in chosen.scenarios:
        phases = chosen.phases.get(scenario, {})
        total = chosen.totals.get(scenario, sum(phases.values()))
        other = max(0.0, total - sum(phases.values()))
        breakdown[scenario] = {**phases, OTHER: other}
        harness = sum(phases.get(p, 0.0) for p in HARNESS)
        body.append(
            [
                scenario,
                *(f"{phases[p]:.1f}" if p in phases else "" for p in seen),
                f"{other:.1f}",
                f"{total:.1f}",
                f"{harness / total:.0%}" if total else "n/a",
            ]
        )
    slowest = max(chosen.scenarios, key=lambda s: chosen.totals.get(s, 0.0))
    all_phases = [p for ph in chosen.phases.values() for p in ph]
    harness_total = sum(ph.get(p, 0.0) for ph in chosen.phases.values() for p in HARNESS)
    molecule_total = sum(chosen.totals.values())
    body.append(
        [
            "**all**",
            *(f"{sum(ph.get(p, 0.0) for ph in chosen.phases.values()):.1f}" for p in seen),
            f"{sum(b[OTHER] for b in breakdown.values()):.1f}",
            f"{molecule_total:.1f}",
            f"{harness_total / molecule_total:.0%}" if molecule_total else "n/a",
        ]
    )
    lines.append(
        f"Seconds per Molecule action, {origin}:\n\n"
        + table(["Scenario", *seen, OTHER, "Total", "create + destroy share"], body)
    )
    suite = chosen.make_end if chosen.make_test else None
    # Scenarios run at once (run-scenarios.sh JOBS=N) overlap: the Molecule part's wall time is the
    # run's own (runs.tsv), less than the sum of the scenarios' times.
    molecule_wall = chosen.scenarios_seconds or molecule_total
    overlapped = molecule_total > 1.05 * molecule_wall
    lines.append(
        f"Slowest scenario: **{slowest}** ({_minutes(chosen.totals.get(slowest, 0.0))}). "
        + (
            f"`make test` wall {_minutes(suite)}: Molecule {_minutes(molecule_wall)}, everything before "
            f"it (venv, lint, unit, syntax, harness) {_minutes(chosen.make_before or 0.0)}. "
            if suite
            else "The wall time of `make test` itself is not in this record. "
        )
        + (
            f"The scenarios ran concurrently: their own times (the Total column) sum to "
            f"{_minutes(molecule_total)} against {_minutes(molecule_wall)} of wall time. "
            if overlapped
            else ""
        )
        + f"Actions timed: {len(all_phases)}; `{OTHER}` is a scenario's wall time outside its "
        "actions (Molecule's start, config and inventory writing)."
    )
    targets = []
    if suite is not None:
        targets.append(
            Target(
                f"`make test` minutes, {'warm' if chosen.warm else 'cold'} (record, {chosen.run})",
                suite / 60,
                20,
                at_least=False,
                gated=chosen.warm,
            )
        )
        targets.append(
            Target(
                f"create + destroy share of `make test` (record, {chosen.run})",
                # Against the time the scenarios took one after another when they overlapped.
                harness_total / (suite + max(0.0, molecule_total - molecule_wall)),
                0.25,
                at_least=False,
            )
        )
    if molecule_total:
        targets.append(
            Target(
                "create + destroy share of the Molecule part (record; information)",
                harness_total / molecule_total,
                0.25,
                at_least=False,
                gated=False,
            )
        )
    return "\n\n".join(lines), targets, breakdown


# --- (b) Project config vs stock, measured in this run ---------------------------------------------


def _scenario(side: str, sequence: list[str]) -> dict[str, Any]:
    """molecule/redis's bookworm platform with its inventory, for one side."""
    source = yaml.safe_load((SOURCE / "molecule.yml").read_text())
    platform = next(p for p in source["platforms"] if p["name"].endswith("bookworm"))
    name = f"{PREFIX}-{side}-bookworm"  # the tests pick the "bookworm" host by this suffix
    inventory = source["provisioner"]["inventory"]
    network = [{"name": f"{PREFIX}-{side}-net"}]
    host_vars = {name: inventory.get("host_vars", {}).get(platform["name"], {})}
    scenario: dict[str, Any] = {"scenario": {"test_sequence": sequence}}
    if side == "project":
        scenario["platforms"] = [{**platform, "name": name, "networks": network}]
        scenario["provisioner"] = {"name": "ansible", "inventory": {**inventory, "host_vars": host_vars}}
        return scenario
    scenario["driver"] = {"name": "docker"}
    scenario["platforms"] = [
        {
            "name": name,
            "image": platform["image"],
            "pre_build_image": False,  # Molecule builds its Dockerfile on this image per scenario
            "pull": False,  # the base image is local-only (scripts/build-images.sh)
            "networks": network,
            # systemd as PID 1: what the role's services need in any Docker setup.
            "command": "/lib/systemd/systemd",
            "capabilities": ["SYS_ADMIN", "SYS_PTRACE"],
            "security_opts": ["seccomp=unconfined", "apparmor=unconfined"],
            "cgroupns_mode": "host",
            "volumes": ["/sys/fs/cgroup:/sys/fs/cgroup:rw"],
            "tmpfs": ["/run", "/run/lock", "/tmp"],
        }
    ]
    scenario["provisioner"] = {
        "name": "ansible",
        # Only where the role, its filters and modules are, and the YAML result format the tests read
        # (test_redis_persistence matches "msg: 'WARNING..." in a playbook's output); everything
        # else is Molecule's default ansible.cfg.
        "config_options": {
            "defaults": {
                "roles_path": "${MOLECULE_PROJECT_DIRECTORY}/roles",
                "filter_plugins": "${MOLECULE_PROJECT_DIRECTORY}/plugins/filter",
                "library": "${MOLECULE_PROJECT_DIRECTORY}/library",
                "callback_result_format": "yaml",
            }
        },
        "inventory": {**inventory, "host_vars": host_vars},
    }
    scenario["verifier"] = {"name": "testinfra"}  # the same tests; Molecule's default is ansible
    return scenario


class Project:
    """A throw-away Molecule project: symlinks to the repo's roles, plugins, library and molecule/resources,
    and one scenario per side."""

    def __init__(self, sequence: list[str], failed_logs: Path | None = None) -> None:
        self.failed_logs = failed_logs  # where the log of a failed run is copied (the temp dir goes)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
        for link in ("roles", "plugins", "library"):
            (self.dir / link).symlink_to(ROOT / link)
        (self.dir / "molecule").mkdir()
        (self.dir / "molecule" / "resources").symlink_to(ROOT / "molecule" / "resources")
        for side in SIDES:
            scen = self.dir / "molecule" / side
            scen.mkdir()
            for name in ("converge.yml", "prepare.yml"):
                shutil.copy(SOURCE / name, scen / name)
            shutil.copytree(SOURCE / "tests", scen / "tests", ignore=shutil.ignore_patterns("__pycache__"))
            (scen / "molecule.yml").write_text(
                "---\n" + yaml.safe_dump(_scenario(side, sequence), sort_keys=False)
            )
        self.logs = self.dir / "logs"
        self.logs.mkdir()

    def env(self, side: str) -> dict[str, str]:
        # Nothing of the caller's Ansible/Molecule settings leaks into either side.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
        env.update(
            # Molecule's state stays in the temp project (default: ~/.ansible/tmp/molecule.*).
            MOLECULE_EPHEMERAL_DIRECTORY=str(self.dir / "ephemeral" / side),
            PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            PY_COLORS="0",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
            PYTHONUNBUFFERED="1",  # each line is timed as Molecule prints it
            CELERY_FLEET_WHEELHOUSE=str(WHEELHOUSE),
        )
        return env

    def molecule(self, side: str, command: str, tag: str) -> tuple[list[tuple[str, float]], float]:
        """Run `molecule <command> -s <side>`; return (actions with seconds, wall seconds)."""
        argv = [str(VENV_BIN / "molecule")]
        if side == "project":
            argv += ["-c", str(BASE_CONFIG)]
        argv += [command, "-s", side]
        log_path = self.logs / f"{side}-{tag}.log"
        actions: list[tuple[str, float]] = []
        t_start = time.perf_counter()
        started: float | None = None
        with log_path.open("w") as out:
            proc = subprocess.Popen(
                argv, cwd=self.dir, env=self.env(side), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, start_new_session=True,
            )  # fmt: skip
            # Bounded: the whole process group is killed at the timeout.
            timer = threading.Timer(RUN_TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
            timer.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    now = time.perf_counter()
                    out.write(line)
                    match = ACTION_LINE.match(ANSI.sub("", line).rstrip())
                    if not match or (match["s1"] or match["s2"]) != side:
                        continue
                    if match["result"] is None:
                        started = now
                    else:
                        action = match["a1"] or match["a2"]
                        actions.append((action, now - (started if started is not None else now)))
                        started = None
                rc = proc.wait()
            finally:
                timer.cancel()
        wall = time.perf_counter() - t_start
        if rc != 0:
            tail = "".join(log_path.read_text().splitlines(keepends=True)[-40:])
            if self.failed_logs is not None:
                kept = self.failed_logs.with_name(f"{self.failed_logs.name}-{side}-{tag}.log")
                shutil.copy(log_path, kept)
                tail = f"(whole log: {kept})\n{tail}"
            raise RuntimeError(
                f"molecule {command} -s {side} exit {rc} after {wall:.0f} s; log tail:\n{tail}"
            )
        return actions, wall

    def cleanup(self, keep: bool) -> None:
        for side in SIDES:
            try:
                self.molecule(side, "destroy", "cleanup")
            except Exception as exc:  # leftovers are removed by name below
                log(f"suite: molecule destroy -s {side} failed: {exc}")
        names = sh(
            ["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name={PREFIX}-"], check=False
        )
        for name in names.split():
            sh(["docker", "rm", "-f", name], check=False, timeout=120)
        nets = sh(
            ["docker", "network", "ls", "--format", "{{.Name}}", "--filter", f"name={PREFIX}-"], check=False
        )
        for net in nets.split():
            sh(["docker", "network", "rm", net], check=False, timeout=60)
        if keep:
            log(f"--keep: leaving {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def _stacked_chart(path: Path, panels: list[tuple[str, dict[str, dict[str, float]]]]) -> None:
    """One panel per breakdown: a stacked bar per label, one colour per phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (title, breakdown) in zip(axes[0], panels, strict=True):
        labels = list(breakdown)
        bottoms = [0.0] * len(labels)
        for phase in (*PHASES, OTHER):
            heights = [breakdown[label].get(phase, 0.0) for label in labels]
            if not any(heights):
                continue
            ax.bar(range(len(labels)), heights, bottom=bottoms, label=phase, color=COLOURS.get(phase))
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        ax.set_xticks(range(len(labels)), labels, rotation=15, ha="right")
        ax.set_ylabel("seconds")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bench_suite(ctx: Context) -> str:
    record_md, record_targets, record_breakdown = record_section()

    sequence = ["destroy", "create", "prepare", "converge", "idempotence", *([] if ctx.quick else ["verify"]),
                "destroy"]  # fmt: skip
    if not shutil.which("rsync"):  # Molecule's docker-driver create syncs the build context with it
        raise RuntimeError("the stock side needs rsync on the controller (apt-get install rsync)")
    stock_image_existed = bool(sh(["docker", "images", "-q", STOCK_IMAGE], check=False).strip())
    project = Project(sequence, failed_logs=ctx.out / f"{ctx.stem}-suite")
    actions: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    walls: dict[str, list[float]] = {side: [] for side in SIDES}
    try:
        # Warm-up, not counted: one create + destroy per side, so that every repetition finds the
        # same caches (the stock side's Docker layer cache for its per-scenario build included).
        warmup: dict[str, float] = {}
        for side in SIDES:
            log(f"suite: warm-up create + destroy, {side}")
            acts, _ = project.molecule(side, "create", "warmup-create")
            warmup[side] = dict(acts).get("create", 0.0)
            project.molecule(side, "destroy", "warmup-destroy")
        for rep in range(ctx.reps):
            order = SIDES if rep % 2 == 0 else SIDES[::-1]
            for side in order:
                log(f"suite: rep {rep + 1}/{ctx.reps} {side}: molecule test ({', '.join(sequence)})")
                acts, wall = project.molecule(side, "test", f"rep{rep + 1}")
                actions[side].append(_label_phases(acts))
                walls[side].append(wall)
                log(f"suite:   {side} {wall:.1f} s")
    finally:
        project.cleanup(ctx.sandbox.keep)
        if not stock_image_existed and not ctx.sandbox.keep:
            sh(["docker", "rmi", STOCK_IMAGE], check=False, timeout=120)

    phases = [p for p in PHASES if any(p in a for side in SIDES for a in actions[side])]
    per_phase = {side: {p: Sample([a.get(p, 0.0) for a in actions[side]]) for p in phases} for side in SIDES}
    total = {side: Sample(walls[side]) for side in SIDES}
    ratio = paired_ratio(walls["project"], walls["stock"])
    rows = []
    for p in phases:
        r = paired_ratio(
            [a.get(p, 0.0) for a in actions["project"]], [a.get(p, 0.0) for a in actions["stock"]]
        )
        rows.append([p, per_phase["project"][p].show(1), per_phase["stock"][p].show(1), r.show()])
    other = {
        side: Sample([w - sum(a.values()) for w, a in zip(walls[side], actions[side], strict=True)])
        for side in SIDES
    }
    rows.append(
        [
            OTHER,
            other["project"].show(1),
            other["stock"].show(1),
            paired_ratio(other["project"].values, other["stock"].values).show(),
        ]
    )
    rows.append(
        ["**whole `molecule test`**", total["project"].show(1), total["stock"].show(1), f"**{ratio.show()}**"]
    )
    converge_idem = paired_ratio(
        [a.get("converge", 0) + a.get("idempotence", 0) for a in actions["project"]],
        [a.get("converge", 0) + a.get("idempotence", 0) for a in actions["stock"]],
    )
    harness_share = {
        side: Sample(
            [sum(a.get(p, 0.0) for p in HARNESS) / w for a, w in zip(actions[side], walls[side], strict=True)]
        )
        for side in SIDES
    }

    targets = [
        *record_targets,
        Target(
            "project Molecule config ÷ stock, whole `molecule test` (this run)",
            ratio.median,
            0.85,
            at_least=False,
        ),
        Target(
            "project ÷ stock, converge + idempotence (this run; information)",
            converge_idem.median,
            0.85,
            at_least=False,
            gated=False,
        ),
    ]

    png, img = ctx.chart("suite")
    panels: list[tuple[str, dict[str, dict[str, float]]]] = []
    if record_breakdown:
        panels.append(("(a) make test record: seconds per scenario (not this run)", record_breakdown))
    panels.append(
        (
            "(b) this run: redis (bookworm), medians of the repetitions",
            {
                f"{side}": {**{p: per_phase[side][p].median for p in phases}, OTHER: other[side].median}
                for side in SIDES
            },
        )
    )
    _stacked_chart(png, panels)

    mode = (
        "`--quick`: destroy, create, prepare, converge, idempotence, destroy (no verify)"
        if ctx.quick
        else "full: destroy, create, prepare, converge, idempotence, verify, destroy"
    )
    side_md = "\n\n".join(
        [
            "### (b) Project Molecule configuration vs a stock one, measured in this run",
            f"Scenario: `molecule/redis` reduced to its bookworm platform (same role, inventory, "
            f"prepare, converge{'' if ctx.quick else ' and testinfra tests'}), generated in a temp "
            f"directory, containers `{PREFIX}-*`. Sequence, {mode}. {ctx.reps} repetitions, order "
            "alternating (project first in odd repetitions), after one uncounted create + destroy per "
            "side. **project** = `.config/molecule/config.yml` as is (pre-built image, "
            "`molecule/resources/create.yml`, pipelining, `gathering = smart`, forks 20, "
            "profile_tasks); **stock** = Molecule's defaults: the docker driver's own create/destroy "
            f"playbooks building `{STOCK_IMAGE}` from Molecule's Dockerfile in every create (Docker's "
            "layer cache as it is: warm after the warm-up), Molecule's ansible.cfg (no pipelining, "
            "implicit gathering), plus only the role/filter paths and systemd as PID 1 that the role "
            "needs to run at all, and the YAML result format one test reads.",
            table(["Phase (seconds)", "project", "stock", "project ÷ stock"], rows),
            f"Create + destroy share of the scenario: project {harness_share['project'].show()}, stock "
            f"{harness_share['stock'].show()}. Warm-up create (one sample each, information): project "
            f"{warmup.get('project', 0):.1f} s, stock {warmup.get('stock', 0):.1f} s"
            + (
                ""
                if stock_image_existed
                else f" (stock: including the first build of `{STOCK_IMAGE}` in this run)"
            )
            + ". Versions: molecule "
            f"`{_version('molecule')}`, molecule-plugins `{_version('molecule-plugins')}`, ansible-core "
            f"`{_version('ansible-core')}`.",
        ]
    )
    return "\n\n".join(
        [
            "## 7. Test-suite cost",
            "Targets: whole suite ≤ 20 min warm on 2 cores; create + destroy ≤ 25 % of the suite "
            "(both from the newest `make test` record, part a); project Molecule configuration ≤ 0.85 times "
            "a stock one on the same role (measured in this run, part b).",
            targets_table(targets),
            img,
            record_md,
            side_md,
        ]
    )
