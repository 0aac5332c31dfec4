"""Benchmark 4: cost of broker safety."""

from __future__ import annotations

from benchlib import Sample, Target, bar_chart, paired_ratio, table, targets_table
from common import Context, agent, dexec, log

# redis-cli as the admin user; its password travels as REDISCLI_AUTH in docker exec's environment.
ADMIN = "redis-cli --user admin --no-auth-warning"
BENCH_USER = "bench-redis-benchmark"


def bench_broker(ctx: Context) -> str:
    """(4) Cost of broker safety: project Redis vs bare Redis on the same host, same run."""
    ctx.sandbox.up()
    # Bench-only password, generated for this run, of a container removed at the end.
    auth = {"REDISCLI_AUTH": ctx.sandbox.passwords["admin"]}
    n = 1500 if ctx.quick else 5000
    lat_n = 100 if ctx.quick else 300
    drain = {b: Sample() for b in ("safe", "bare")}
    publish = {b: Sample() for b in ("safe", "bare")}
    p50 = {b: Sample() for b in ("safe", "bare")}
    p99 = {b: Sample() for b in ("safe", "bare")}
    no_aof = Sample()
    for rep in range(ctx.reps):
        order = ("safe", "bare") if rep % 2 == 0 else ("bare", "safe")
        for broker in order:
            log(f"broker: drain {n} no-ops, {broker}, rep {rep + 1}")
            r = agent("drain", broker=broker, n=n, pool="prefork", concurrency=2)
            drain[broker].add(r["tasks_per_s"])
            publish[broker].add(r["published_per_s"])
            log(f"broker: latency x{lat_n}, {broker}, rep {rep + 1}")
            r = agent("latency", broker=broker, n=lat_n, pool="prefork", concurrency=2)
            p50[broker].add(r["p50_ms"])
            p99[broker].add(r["p99_ms"])
        # Information, to attribute the cost: the project's Redis with its AOF switched off for one
        # drain (CONFIG SET at run time; ACL users, RDB schedule and the systemd unit unchanged).
        log(f"broker: drain {n} no-ops, safe with AOF off, rep {rep + 1}")
        dexec(f"{ADMIN} CONFIG SET appendonly no >/dev/null", secret_env=auth)
        try:
            no_aof.add(agent("drain", broker="safe", n=n, pool="prefork", concurrency=2)["tasks_per_s"])
        finally:
            dexec(f"{ADMIN} CONFIG SET appendonly yes >/dev/null", secret_env=auth)
            # Back to the deployed state before the next sample: the live switch rewrites the AOF.
            done = "grep -c -e aof_rewrite_in_progress:0 -e aof_rewrite_scheduled:0 | grep -q 2"
            dexec(
                f"for i in $(seq 60); do {ADMIN} INFO persistence | {done} && exit 0; sleep 1; done; exit 1",
                secret_env=auth,
            )
    rb: dict[str, dict[str, Sample]] = {}
    requests = 20000 if ctx.quick else 100000
    # redis-benchmark takes a password only in argv (-a). For its runs against the project's Redis it
    # logs in as a user added live for them, with the admin user's rules and no password, reachable
    # only inside bench-host (the project's Redis listens on its loopback there), removed after them.
    dexec(f"{ADMIN} ACL SETUSER {BENCH_USER} on nopass '~*' '&*' +@all >/dev/null", secret_env=auth)
    try:
        for rep in range(ctx.reps):
            order = ("safe", "bare") if rep % 2 == 0 else ("bare", "safe")
            for broker in order:
                for pipe in (1, 16):
                    log(f"broker: redis-benchmark -P {pipe}, {broker}, rep {rep + 1}")
                    port = 6379 if broker == "safe" else 6380
                    # A nopass user accepts any password; -a only makes redis-benchmark send AUTH.
                    user = f"--user {BENCH_USER} -a any" if broker == "safe" else ""
                    csv = dexec(
                        f"redis-benchmark -p {port} {user} -t lpush,rpop -n {requests} -P {pipe} --csv -q"
                        " 2>/dev/null"
                    )
                    for line in csv.splitlines():
                        cells = [c.strip('"') for c in line.split(",")]
                        if cells[0] in ("LPUSH", "RPOP"):
                            key = f"{cells[0]} -P {pipe}"
                            samples = rb.setdefault(key, {"safe": Sample(), "bare": Sample()})
                            samples[broker].add(float(cells[1]))
    finally:
        dexec(f"{ADMIN} ACL DELUSER {BENCH_USER} >/dev/null", secret_env=auth)
    drain_ratio = paired_ratio(drain["safe"].values, drain["bare"].values)
    # Latency: bare ÷ safe, so that ≥ 1 would mean safe is faster, like the throughput ratios.
    p50_ratio = paired_ratio(p50["bare"].values, p50["safe"].values)
    p99_ratio = paired_ratio(p99["bare"].values, p99["safe"].values)
    rows = [
        [
            "Drain, no-op tasks/s (prefork c=2)",
            drain["safe"].show(0),
            drain["bare"].show(0),
            drain_ratio.show(),
        ],
        [
            "Drain, project Redis with AOF off (information)",
            no_aof.show(0),
            drain["bare"].show(0),
            paired_ratio(no_aof.values, drain["bare"].values).show(),
        ],
        [
            "Publish, tasks/s (one producer)",
            publish["safe"].show(0),
            publish["bare"].show(0),
            paired_ratio(publish["safe"].values, publish["bare"].values).show(),
        ],
        ["Latency p50, ms (bare ÷ safe)", p50["safe"].show(1), p50["bare"].show(1), p50_ratio.show()],
        ["Latency p99, ms (bare ÷ safe)", p99["safe"].show(1), p99["bare"].show(1), p99_ratio.show()],
    ]
    rb_ratio = {}
    for key, s in rb.items():
        rb_ratio[key] = paired_ratio(s["safe"].values, s["bare"].values)
        rows.append(
            [f"redis-benchmark {key}, ops/s", s["safe"].show(0), s["bare"].show(0), rb_ratio[key].show()]
        )
    targets = [
        Target("Drain throughput safe ÷ bare", drain_ratio.median, 0.9, True),
        Target("Latency p50 bare ÷ safe", p50_ratio.median, 0.9, True),
        Target("Latency p99 bare ÷ safe", p99_ratio.median, 0.9, True),
    ]
    targets += [
        Target(f"redis-benchmark {k} safe ÷ bare", v.median, 0.9, True)
        for k, v in rb_ratio.items()
        if "-P 1" in k and "-P 16" not in k
    ]
    targets += [
        Target(f"redis-benchmark {k} safe ÷ bare", v.median, 0.9, True, gated=False)
        for k, v in rb_ratio.items()
        if "-P 16" in k
    ]
    path, img = ctx.chart("broker-safety")
    labels = ["drain", "p50 (bare÷safe)", "p99 (bare÷safe)", *rb_ratio]
    bar_chart(path, "Project Redis ÷ bare Redis (1.0 = no cost)", labels,
              [drain_ratio, p50_ratio, p99_ratio, *rb_ratio.values()], "ratio")  # fmt: skip
    return "\n\n".join(
        [
            "## 4. Cost of broker safety",
            f"Project Redis (roles/redis defaults: AOF everysec + RDB + noeviction, default user off, "
            f"least-privilege ACL users; worker and producer each as their own user) on port 6379 vs a "
            f'bare `redis-server` (appendonly no, save "", no auth) on port 6380, same container, same '
            f"binary. Drain: {n} preloaded no-ops, first to last `date_done`, worker start excluded, one "
            f"prefork worker c=2 with `-E`. Latency: {lat_n} sequential send→result round trips after "
            f"20 warm-up tasks. redis-benchmark: {requests} requests, 50 clients, `-t lpush,rpop`. "
            f"Repetitions alternate which broker goes first. Ratio column: per-repetition ratio, "
            f"median (range).",
            table(["Measure", "Safe (project)", "Bare", "Ratio safe ÷ bare"], rows),
            targets_table(targets),
            img,
        ]
    )
