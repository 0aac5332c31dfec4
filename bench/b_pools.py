"""Benchmark 5: pool scaling for I/O-bound tasks."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from benchlib import Sample, Target, line_chart, table, targets_table
from common import Context, agent, dexec, log

SLEEP = 0.1
# "app": the example app's settings (worker_prefetch_multiplier = 1, task_acks_late) and kombu's
# defaults (transport option max_connections = 10 per channel). "fix": the green-pool settings
# celery-fleet gives every gevent/eventlet worker (lib/celery_fleet/workers.py: GREEN_*; the entry
# module's green_pool_settings: result_backend_thread_safe). The
# target is checked on what the fleet deploys: "app" for prefork, "fix" for green pools.
# The green-pool settings measured beside them (information): the prefetch window a notch above
# the pool size, and kombu's per-channel Redis pool above the number of greenlets that ack at once.
# bench/README.md ("Pool scaling on green pools") explains both.
FIX_PREFETCH = 2
FIX_EXTRA_CONNECTIONS = 10
GREEN = ("gevent", "eventlet")
SIZES = [("prefork", 2), ("prefork", 8), ("prefork", 32), ("gevent", 8), ("gevent", 32), ("gevent", 100)]


@dataclass(frozen=True)
class Config:
    settings: str  # "app", "fix", or "fix-unshared": the fix without its one shared result backend
    pool: str
    concurrency: int
    drain: bool = False  # a no-op ceiling instead of sleeps

    @property
    def prefetch(self) -> int:  # 0: the app's own worker_prefetch_multiplier (1)
        return FIX_PREFETCH if self.settings != "app" else 0

    @property
    def max_connections(self) -> int:  # 0: kombu's default (10)
        return self.concurrency + FIX_EXTRA_CONNECTIONS if self.settings != "app" else 0

    @property
    def shared_backend(self) -> bool:  # result_backend_thread_safe, with the green-pool settings
        return self.settings != "fix-unshared"

    @property
    def ideal(self) -> float:
        return self.concurrency / SLEEP

    def label(self) -> str:
        what = "no-op ceiling" if self.drain else "sleeps"
        return f"{what} {self.pool} c={self.concurrency} ({SETTINGS[self.settings]})"


SETTINGS = {
    "app": "app settings",
    "fix": "with the fix",
    "fix-unshared": "with the fix, a result backend per task",
}


def deployed(cfg: Config) -> bool:
    """True for the settings the fleet deploys for this pool (the gated rows)."""
    return cfg.settings == ("fix" if cfg.pool in GREEN else "app")


@dataclass
class Outcome:
    rates: Sample = field(default_factory=Sample)
    idle: Sample = field(default_factory=Sample)  # share of the span with no task running
    failed_acks: list[int] = field(default_factory=list)
    twice: list[int] = field(default_factory=list)  # tasks that ran and are still in the broker
    lost: list[int] = field(default_factory=list)  # tasks with no result and no message left
    capped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _last_worker_error() -> str:
    line = dexec("grep -E '[A-Za-z]+(Error|Exception)' /opt/bench/worker.log | tail -1", check=False)
    return line.strip()[-160:]


def _sample(cfg: Config, n: int, noop_n: int, cap: float, out: Outcome) -> None:
    """One sample of `cfg`; a failure is recorded in `out` with its reason, never raised."""
    # Worker start is outside the measured span, so the sample skips what only slows the start
    # (mingle waits ~1 s for other workers' replies before consuming) and the warm stop (up to 4 s
    # for gevent c=100, once every result is in): a SIGKILL leaves a failed ack's message in the
    # unacked hash, where the agent counts it.
    options = {
        "broker": "safe",
        "pool": cfg.pool,
        "concurrency": cfg.concurrency,
        "stop": "kill",
        "mingle": "no",
    }
    options |= {
        "prefetch": cfg.prefetch,
        "max_connections": cfg.max_connections,
        "shared_backend": "yes" if cfg.shared_backend else "no",
    }
    try:
        if cfg.drain:
            r = agent("drain", exec_timeout=300, n=noop_n, timeout=180, **options)
        else:
            r = agent(
                "sleeps", exec_timeout=cap + 240, n=n, seconds=SLEEP, cap=cap, timeout=cap + 120, **options
            )
    except (RuntimeError, subprocess.TimeoutExpired):
        out.failures.append(_last_worker_error() or "timeout")
        return
    out.failed_acks.append(r.get("failed_acks", 0))
    out.twice.append(r["ran_twice"])
    out.lost.append(r["lost"])
    if "error" in r:
        out.failures.append(r["error"][-160:])
        return
    out.rates.add(r["tasks_per_s"])
    if not cfg.drain:
        out.idle.add(r["stall_seconds"] / r["span_seconds"])
        if r["capped"]:
            out.capped.append(f"{r['finished']}/{n}")


def bench_pools(ctx: Context) -> str:
    """(5) Pool scaling: 400 x 0.1 s sleeps at prefork 2/8/32, gevent 8/32/100; no-op ceiling.

    Every size with the app's settings (what the fleet deploys; gated), gevent also with the fix
    (information); no-op ceilings of prefork c=2 and gevent c=100 (with the fix) in the same run."""
    ctx.sandbox.up()
    n = 200 if ctx.quick else 400
    noop_n = 500 if ctx.quick else 2000
    # Bounds a sample's wall time (from the worker's launch): a configuration that stalls (gevent
    # with prefetch 1 runs about `concurrency` tasks per 2 s) is measured over the tasks finished
    # by then, over the time up to then, not over all n tasks.
    cap = 8.0 if ctx.quick else 30.0
    # "fix-unshared" (information): what the shared result backend of green pools is worth.
    sleeps = [Config("app", p, c) for p, c in SIZES] + [
        Config(kind, p, c) for kind in ("fix", "fix-unshared") for p, c in SIZES if p in GREEN
    ]
    ceilings = [
        Config("app", "prefork", 2, drain=True),
        Config("fix", "gevent", 100, drain=True),
        Config("fix-unshared", "gevent", 100, drain=True),
    ]
    configs = sleeps + ceilings
    outcomes = {cfg: Outcome() for cfg in configs}
    for rep in range(ctx.reps):
        for cfg in configs if rep % 2 == 0 else list(reversed(configs)):
            log(f"pools: {cfg.label()}, rep {rep + 1}")
            _sample(cfg, n, noop_n, cap, outcomes[cfg])

    top = max((outcomes[c].rates.median for c in ceilings if outcomes[c].rates.values), default=float("inf"))
    rows, targets = [], []
    for cfg in sleeps:
        o = outcomes[cfg]
        eff = Sample([v / cfg.ideal for v in o.rates.values])
        notes = []
        if o.capped:
            notes.append(f"capped at {cap:.0f} s: {', '.join(o.capped)} tasks done")
        if o.failures:
            notes.append(f"{len(o.failures)} of {ctx.reps} repetitions failed: `{o.failures[-1]}`")
        rows.append(
            [
                SETTINGS[cfg.settings] + (" (gated)" if deployed(cfg) else ""),
                cfg.pool,
                str(cfg.concurrency),
                str(cfg.prefetch or "1 (app)"),
                str(cfg.max_connections or "10 (kombu)"),
                f"{cfg.ideal:.0f}",
                o.rates.show(0),
                eff.show(),
                o.idle.show(),
                ", ".join(map(str, o.failed_acks)) or "n/a",
                ", ".join(map(str, o.twice)) or "n/a",
                ", ".join(map(str, o.lost)) or "n/a",
                "; ".join(notes),
            ]
        )
        in_scope = cfg.ideal < 0.8 * top
        targets.append(
            Target(
                f"Efficiency {cfg.pool} c={cfg.concurrency}, {SETTINGS[cfg.settings]}"
                + ("" if in_scope else " (ideal ≥ 0.8 x ceiling: out of scope)"),
                eff.median if eff.values else 0.0,
                0.85,
                True,
                gated=in_scope and deployed(cfg),
            )
        )
    ceiling_text = "; ".join(
        f"{c.pool} c={c.concurrency} ({SETTINGS[c.settings]}) {outcomes[c].rates.show(0)} tasks/s"
        + (
            f", {len(outcomes[c].failures)} failed: `{outcomes[c].failures[-1]}`"
            if outcomes[c].failures
            else ""
        )
        + (
            f", failed acks {', '.join(map(str, outcomes[c].failed_acks))}"
            if any(outcomes[c].failed_acks)
            else ""
        )
        for c in ceilings
    )
    path, img = ctx.chart("pools")
    series = {}
    for settings in SETTINGS:
        for pool in ("prefork", "gevent"):
            cfgs = [
                c for c in sleeps if c.settings == settings and c.pool == pool and outcomes[c].rates.values
            ]
            if cfgs:
                series[f"{pool}, {SETTINGS[settings]}"] = (
                    [c.concurrency for c in cfgs],
                    [outcomes[c].rates for c in cfgs],
                )
    line_chart(
        path,
        f"{n} x {SLEEP} s sleeps: tasks/s by concurrency",
        series,
        "concurrency",
        "tasks/s",
        hlines={
            f"no-op ceiling ({c.pool} c={c.concurrency}, {SETTINGS[c.settings]})": outcomes[c].rates.median
            for c in ceilings
            if outcomes[c].rates.values
        },
    )
    return "\n\n".join(
        [
            "## 5. Pool scaling for I/O-bound tasks",
            f"{n} preloaded `sleep_task({SLEEP})` per sample, first task start → last finish (the "
            f"tasks' own timestamps), worker start excluded; project Redis; workers with `-E` like the "
            f"fleet's; configurations in alternating order. **App settings**: the app's "
            f"`worker_prefetch_multiplier = 1` and `task_acks_late`, kombu's default "
            f"`max_connections` (10 Redis connections per channel). **With the fix** (gevent only: "
            f"prefork acks from one thread and runs the event loop, so neither setting changes it): "
            f"`--prefetch-multiplier {FIX_PREFETCH}` and `broker_transport_options` with "
            f"`max_connections` = concurrency + {FIX_EXTRA_CONNECTIONS}, given on the worker command "
            f"line after `--` (with the app's own transport options repeated: the value replaces them), "
            f"and `result_backend_thread_safe` (one result backend for all the greenlets, as the "
            f"fleet's entry module sets it for green pools: without it each task opened a Redis "
            f"connection to store its result); celery-fleet deploys these for every gevent/eventlet "
            f"worker (roles/celery_worker, roles/celery_app). **With the fix, a result backend per "
            f"task** (information): the same without `result_backend_thread_safe`, as the fleet's "
            f"green pools ran before it set that. "
            f"The target is checked on what the fleet deploys: app settings for prefork, the fix for "
            f"gevent. A sample is bounded to {cap:.0f} s: "
            f"a configuration still running then is measured over the tasks finished by that time "
            f"(noted as capped). Efficiency = tasks/s ÷ (concurrency / {SLEEP} s); the target applies "
            f"where that ideal < 0.8 x the higher no-op ceiling ({0.8 * top:.0f}/s). No-op ceilings "
            f"({noop_n} preloaded no-ops): {ceiling_text}.",
            "Idle share: part of the span in which no task was running at all (the consumer waiting "
            "for its 2 s poll timeout with a full prefetch window). Failed acks: `Couldn't ack ... "
            "MaxConnectionsError` per repetition. Ran twice: tasks that had run and whose message was still "
            "in the broker after the sample (a failed ack leaves it there: it is delivered again). Lost: "
            "tasks with neither a result nor a message left (kombu pops a message with BRPOP, then "
            "records it in the unacked hash: if that write fails, only the worker's memory holds it). "
            "All three per repetition.",
            table(
                [
                    "Settings",
                    "Pool",
                    "Concurrency",
                    "Prefetch multiplier",
                    "max_connections",
                    "Ideal tasks/s",
                    "Tasks/s",
                    "Efficiency",
                    "Idle share",
                    "Failed acks",
                    "Ran twice",
                    "Lost",
                    "Notes",
                ],
                rows,
            ),
            targets_table(targets),
            img,
        ]
    )
