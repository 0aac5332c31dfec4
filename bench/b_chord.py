"""Benchmark 3: chord parallelism (seed 000)."""

from __future__ import annotations

from benchlib import Sample, Target, bar_chart, paired_ratio, table, targets_table
from common import Context, agent, log


def bench_chord(ctx: Context) -> str:
    """(3) Chord parallelism: seed-000 chord on a gevent worker vs a solo worker, same host."""
    ctx.sandbox.up()
    seconds = 2.0
    wall = {p: Sample() for p in ("gevent", "solo")}
    span = {p: Sample() for p in ("gevent", "solo")}
    for rep in range(ctx.reps):
        order = ("gevent", "solo") if rep % 2 == 0 else ("solo", "gevent")
        for pool in order:
            log(f"chord: {pool}, rep {rep + 1}")
            conc = 10 if pool == "gevent" else 1
            r = agent("chord", broker="safe", pool=pool, concurrency=conc, seconds=seconds)
            wall[pool].add(r["wall_seconds"])
            span[pool].add(r["parts_span_seconds"])
    speedup = paired_ratio(wall["solo"].values, wall["gevent"].values)
    per_task = Sample([w / seconds for w in wall["gevent"].values])
    rows = [
        [p, "c=10" if p == "gevent" else "c=1", wall[p].show(), span[p].show()] for p in ("gevent", "solo")
    ]
    targets = [
        Target("Speed-up solo wall ÷ gevent wall", speedup.median, 2.9, True),
        Target("gevent chord wall ÷ one task (2 s)", per_task.median, 1.05, False),
    ]
    path, img = ctx.chart("chord")
    bar_chart(path, "Seed-000 chord wall time (3 x 2 s parts + callback)", ["gevent c=10", "solo"],
              [wall["gevent"], wall["solo"]], "seconds")  # fmt: skip
    return "\n\n".join(
        [
            "## 3. Chord parallelism (seed 000)",
            "`celery_demo.workload.run_chord` (three 2 s I/O-bound parts, then the `director` callback) "
            "through one worker consuming the four chord queues on the project's Redis: gevent c=10 vs "
            "solo, same container, alternating order. Wall = send → callback result. Worker start "
            "excluded (a ping through the callback queue first).",
            table(["Pool", "Concurrency", "Chord wall, s", "Parts span, s"], rows),
            f"Speed-up solo ÷ gevent: {speedup.show()}; gevent wall ÷ one part: {per_task.show()}.",
            targets_table(targets),
            img,
        ]
    )
