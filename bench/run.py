"""celery-fleet benchmarks: ``python bench/run.py [--quick] [--only NAME ...] [--keep]``.

Runs the benchmarks of issue 9 that this file implements, each as ratios measured side by side in
this run (medians of >= 3 repetitions with ranges), and writes bench/results/<date>.md plus one
PNG chart per benchmark. Containers it creates are named ``bench-*`` on the network ``bench-net``
and removed at the end (``--keep`` leaves them for debugging). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import Sample, Target, bar_chart, line_chart, paired_ratio, table, targets_table

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
WHEELHOUSE = Path(
    os.environ.get("CELERY_FLEET_WHEELHOUSE", Path.home() / ".cache" / "celery-fleet" / "wheelhouse")
)
# uv is not (yet) in the project's wheelhouse: the benchmark takes its wheel from the wheelhouse's
# py311/ or, failing that, from this directory (bench/README.md says how to fill it).
UV_DIR = Path(os.environ.get("CELERY_FLEET_BENCH_UV", Path.home() / ".cache" / "celery-fleet" / "bench-uv"))
IMAGE = "celery-fleet/debian:bookworm"
NETWORK = "bench-net"
HOST = "bench-host"
# The systemd-in-Docker settings of molecule/resources/create.yml.
SYSTEMD_ARGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
    "--stop-signal", "SIGRTMIN+3",
]  # fmt: skip
IN_VENV = "/opt/bench/venv"
AGENT = f"{IN_VENV}/bin/python /opt/bench/agent.py"


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def sh(argv: Sequence[str], timeout: float = 600, check: bool = True, **kw: Any) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... exit {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def dexec(script: str, timeout: float = 600, check: bool = True) -> str:
    return sh(["docker", "exec", HOST, "bash", "-ec", script], timeout=timeout, check=check)


def timed(func: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


def agent(command: str, exec_timeout: float = 900, **options: object) -> dict[str, Any]:
    """One sample: options become agent.py's flags (its own --timeout bounds the wait for results)."""
    args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items())
    return json.loads(dexec(f"{AGENT} {command} {args}", timeout=exec_timeout).strip().splitlines()[-1])


# --- The benchmark container -------------------------------------------------------------------


class Sandbox:
    """bench-host: a systemd container with the project's Redis (6379), a bare Redis (6380) and a
    Celery venv from the wheelhouse. Built once per run, shared by the container benchmarks."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.ready = False
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))

    def up(self) -> None:
        if self.ready:
            return
        log("creating bench-host")
        self.down(quiet=True)
        sh(["docker", "network", "create", NETWORK], check=False)
        sh(["docker", "run", "-d", "--name", HOST, "--hostname", HOST, "--network", NETWORK,
            "--label", "owner=celery-fleet-bench", *SYSTEMD_ARGS, IMAGE, "/lib/systemd/systemd"])  # fmt: skip
        # As in create.yml: the first exec into a booting container can fail empty; ask again.
        state = ""
        for _ in range(10):
            state = dexec("systemctl is-system-running --wait || true", timeout=180, check=False).strip()
            if state in ("running", "degraded"):
                break
            time.sleep(2)
        if state not in ("running", "degraded"):
            raise RuntimeError(f"bench-host did not boot: {state!r}")
        dexec("mkdir -p /opt/bench/app /opt/bench/wheels")
        sh(["docker", "cp", str(WHEELHOUSE / "py311.tar"), f"{HOST}:/opt/bench/py311.tar"])
        sh(
            [
                "docker",
                "cp",
                str(ROOT / "examples" / "celery_demo" / "celery_demo"),
                f"{HOST}:/opt/bench/app/",
            ]
        )
        sh(["docker", "cp", str(BENCH / "agent.py"), f"{HOST}:/opt/bench/agent.py"])
        for wheel in sorted([*UV_DIR.glob("uv-*.whl"), *(WHEELHOUSE / "py311").glob("uv-*.whl")]):
            sh(["docker", "cp", str(wheel), f"{HOST}:/opt/bench/{wheel.name}"])
        dexec(
            "tar -C /opt/bench/wheels -xf /opt/bench/py311.tar"
            " && apt-get install -y -qq python3-venv >/dev/null",
            timeout=300,
        )
        log("deploying roles/redis (the safe broker)")
        self._deploy_redis()
        dexec(
            f"python3 -m venv {IN_VENV} && W=$(dirname $(find /opt/bench/wheels -name 'celery-*.whl'))"
            f" && {IN_VENV}/bin/pip install -q --no-index --find-links $W -r $W/requirements.txt",
            timeout=600,
        )
        # The bare broker: no persistence, no password, no ACL, same binary, same host.
        dexec(
            "redis-server --port 6380 --bind 127.0.0.1 --appendonly no --save '' --daemonize yes"
            " --dir /tmp --logfile /tmp/redis-bare.log"
        )
        self.ready = True

    def _deploy_redis(self) -> None:
        pw = {u: secrets.token_hex(16) for u in ("default", "worker", "producer", "admin")}
        self.passwords = pw
        inventory = self.tmp / "hosts.yml"
        inventory.write_text(
            json.dumps(
                {
                    "bench": {
                        "hosts": {HOST: None},
                        "vars": {
                            "ansible_connection": "community.docker.docker",
                            "ansible_python_interpreter": "/usr/bin/python3",
                        },
                    }
                }
            )
        )
        extra = self.tmp / "vars.json"
        extra.write_text(
            json.dumps(
                {
                    "redis_password": pw["default"],
                    "redis_acl_users": [
                        {"name": name, "password": pw[name], "ruleset": ruleset}
                        for name, ruleset in (
                            ("worker", "celery_worker"),
                            ("producer", "celery_producer"),
                            ("admin", "admin"),
                        )
                    ],
                }
            )
        )
        extra.chmod(0o600)
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
        env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(self.tmp / "facts")
        done = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{extra}",
             str(BENCH / "playbooks" / "redis.yml")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        (self.tmp / "redis-deploy.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"roles/redis deploy failed, log: {self.tmp / 'redis-deploy.log'}")
        urls = {
            "safe": {
                role: f"redis://{role}:{pw[role]}@127.0.0.1:6379/0"
                for role in ("worker", "producer", "admin")
            },
            "bare": {role: "redis://127.0.0.1:6380/0" for role in ("worker", "producer", "admin")},
        }
        subprocess.run(
            ["docker", "exec", "-i", HOST, "bash", "-ec",
             "umask 077 && cat > /opt/bench/brokers.json"],
            input=json.dumps(urls), text=True, check=True, timeout=60,
        )  # fmt: skip

    def versions(self) -> dict[str, str]:
        if not self.ready:
            return {}
        return {
            "redis-server (bench-host)": dexec("redis-server --version").split()[2].removeprefix("v="),
            "celery (bench-host)": dexec(
                f"{IN_VENV}/bin/python -c 'import celery; print(celery.__version__)'"
            ),
            "kombu (bench-host)": dexec(f"{IN_VENV}/bin/python -c 'import kombu; print(kombu.__version__)'"),
            "python (bench-host)": dexec("python3 -V").split()[1],
        }

    def down(self, quiet: bool = False) -> None:
        if self.keep and not quiet:
            log("--keep: leaving bench-host running")
            return
        if not quiet:  # the inventory and the bench-only passwords of this run
            shutil.rmtree(self.tmp, ignore_errors=True)
        sh(["docker", "rm", "-f", HOST], check=False, timeout=120)
        sh(["docker", "network", "rm", NETWORK], check=False, timeout=60)


# --- Benchmarks ------------------------------------------------------------------------------
# Each returns a markdown section; charts go next to the report.


class Context:
    def __init__(self, quick: bool, sandbox: Sandbox, out: Path, stem: str) -> None:
        self.quick = quick
        self.reps = 3
        self.sandbox = sandbox
        self.out = out
        self.stem = stem

    def chart(self, name: str) -> tuple[Path, str]:
        filename = f"{self.stem}-{name}.png"
        return self.out / filename, f"![{name}]({filename})"


def bench_broker(ctx: Context) -> str:
    """(4) Cost of broker safety: project Redis vs bare Redis on the same host, same run."""
    ctx.sandbox.up()
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
        admin = f"REDISCLI_AUTH={ctx.sandbox.passwords['admin']} redis-cli --user admin --no-auth-warning"
        dexec(f"{admin} CONFIG SET appendonly no >/dev/null")
        try:
            no_aof.add(agent("drain", broker="safe", n=n, pool="prefork", concurrency=2)["tasks_per_s"])
        finally:
            dexec(f"{admin} CONFIG SET appendonly yes >/dev/null")
            # Back to the deployed state before the next sample: the live switch rewrites the AOF.
            done = "grep -c -e aof_rewrite_in_progress:0 -e aof_rewrite_scheduled:0 | grep -q 2"
            dexec(
                f"for i in $(seq 60); do {admin} INFO persistence | {done} && exit 0; sleep 1; done; exit 1"
            )
    rb: dict[str, dict[str, Sample]] = {}
    requests = 20000 if ctx.quick else 100000
    for rep in range(ctx.reps):
        order = ("safe", "bare") if rep % 2 == 0 else ("bare", "safe")
        for broker in order:
            for pipe in (1, 16):
                log(f"broker: redis-benchmark -P {pipe}, {broker}, rep {rep + 1}")
                port = 6379 if broker == "safe" else 6380
                # Bench-only password, generated for this run, of a container removed at the end.
                auth = f"--user admin -a {ctx.sandbox.passwords['admin']}" if broker == "safe" else ""
                csv = dexec(
                    f"redis-benchmark -p {port} {auth} -t lpush,rpop -n {requests} -P {pipe} --csv -q"
                    " 2>/dev/null"
                )
                for line in csv.splitlines():
                    cells = [c.strip('"') for c in line.split(",")]
                    if cells[0] in ("LPUSH", "RPOP"):
                        key = f"{cells[0]} -P {pipe}"
                        rb.setdefault(key, {"safe": Sample(), "bare": Sample()})[broker].add(float(cells[1]))
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


def bench_pools(ctx: Context) -> str:
    """(5) Pool scaling: 400 x 0.1 s sleeps at prefork 2/8/32, gevent 8/32/100; no-op ceiling.

    Gated: the app's own settings (worker_prefetch_multiplier = 1, acks_late). Reported beside
    it, not gated: the same workers with --prefetch-multiplier 4, to show what prefetch 1 costs."""
    ctx.sandbox.up()
    n = 200 if ctx.quick else 400
    noop_n = 1500 if ctx.quick else 3000
    configs = [(p, c, f) for f in (0, 4) for p, c in POOL_CONFIGS]
    rates = {c: Sample() for c in configs}
    ceiling = {p: Sample() for p in ("prefork", "gevent")}
    ceiling_conc = {"prefork": 2, "gevent": 100}
    failures: dict[tuple[str, int, int], list[str]] = {}
    for rep in range(ctx.reps):
        seq = configs if rep % 2 == 0 else list(reversed(configs))
        for pool, conc, prefetch in seq:
            log(f"pools: {n} sleeps, {pool} c={conc} prefetch={prefetch or 'app'}, rep {rep + 1}")
            try:
                r = agent(
                    "sleeps", broker="safe", pool=pool, concurrency=conc, n=n, seconds=0.1, prefetch=prefetch,
                    timeout=240,
                )  # fmt: skip
            except (RuntimeError, subprocess.TimeoutExpired):
                # A configuration that breaks is a result: keep its reason, go on with the others.
                last = dexec(
                    "grep -E '[A-Za-z]+(Error|Exception)' /opt/bench/worker.log | tail -1", check=False
                )
                failures.setdefault((pool, conc, prefetch), []).append(last.strip()[-160:] or "timeout")
                continue
            rates[(pool, conc, prefetch)].add(r["tasks_per_s"])
        for pool, conc in ceiling_conc.items():
            log(f"pools: no-op ceiling {pool} c={conc}, rep {rep + 1}")
            try:
                r = agent("drain", broker="safe", pool=pool, concurrency=conc, n=noop_n, timeout=240)
            except (RuntimeError, subprocess.TimeoutExpired):
                last = dexec(
                    "grep -E '[A-Za-z]+(Error|Exception)' /opt/bench/worker.log | tail -1", check=False
                )
                failures.setdefault((pool, conc, -1), []).append(last.strip()[-160:] or "timeout")
                continue
            ceiling[pool].add(r["tasks_per_s"])
    # gevent c=100 has run out of Redis connections here (MaxConnectionsError on acks): a ceiling
    # that failed every time is left out, and its failures are listed below the table.
    top = max((s.median for s in ceiling.values() if s.values), default=float("inf"))
    rows, targets = [], []
    for pool, conc, prefetch in configs:
        ideal = conc / 0.1
        eff = Sample([v / ideal for v in rates[(pool, conc, prefetch)].values])
        gated = ideal < 0.8 * top and prefetch == 0
        label = "1 (app)" if prefetch == 0 else str(prefetch)
        failed = failures.get((pool, conc, prefetch), [])
        note = f"{len(failed)} of {ctx.reps} repetitions failed: `{failed[-1]}`" if failed else ""
        rows.append(
            [pool, str(conc), label, f"{ideal:.0f}", rates[(pool, conc, prefetch)].show(0), eff.show(), note]
        )
        if prefetch == 0:
            value = eff.median if eff.values else 0.0
            targets.append(Target(f"Efficiency {pool} c={conc}", value, 0.85, True, gated=gated))
    path, img = ctx.chart("pools")
    line_chart(
        path,
        f"{n} x 0.1 s sleeps: tasks/s by concurrency",
        {
            f"{pool}, prefetch {'1 (app)' if f == 0 else f}": (
                [c for p, c in POOL_CONFIGS if p == pool and rates[(p, c, f)].values],
                [rates[(p, c, f)] for p, c in POOL_CONFIGS if p == pool and rates[(p, c, f)].values],
            )
            for f in (0, 4)
            for pool in ("prefork", "gevent")
        },
        "concurrency",
        "tasks/s",
        hlines={
            f"no-op ceiling ({p} c={c})": ceiling[p].median
            for p, c in ceiling_conc.items()
            if ceiling[p].values
        },
    )
    return "\n\n".join(
        [
            "## 5. Pool scaling for I/O-bound tasks",
            f"{n} preloaded `sleep_task(0.1)` per configuration, first start → last finish (from the "
            f"tasks' own timestamps), worker start excluded; project Redis; configurations run in "
            f"alternating order. Each configuration twice: with the app's settings "
            f"(`worker_prefetch_multiplier = 1`, `task_acks_late`; gated) and with "
            f"`--prefetch-multiplier 4` (information). No-op ceiling: {noop_n} preloaded no-ops drained "
            f"by prefork c=2 and gevent c=100 in the same run: prefork {ceiling['prefork'].show(0)}, "
            f"gevent {ceiling['gevent'].show(0)} tasks/s. Efficiency = tasks/s ÷ (concurrency / 0.1 s); "
            f"the target applies where concurrency / 0.1 s < 0.8 x the higher ceiling ({0.8 * top:.0f}/s).",
            table(
                [
                    "Pool",
                    "Concurrency",
                    "Prefetch multiplier",
                    "Ideal tasks/s",
                    "Tasks/s",
                    "Efficiency",
                    "Failures",
                ],
                rows,
            ),
            targets_table(targets),
            "No-op ceiling failures: "
            + (
                "; ".join(
                    f"{p} c={c}: {len(v)} of {ctx.reps} failed, `{v[-1]}`"
                    for (p, c, f), v in failures.items()
                    if f == -1
                )
                or "none"
            ),
            img,
        ]
    )


POOL_CONFIGS = [
    ("prefork", 2),
    ("prefork", 8),
    ("prefork", 32),
    ("gevent", 8),
    ("gevent", 32),
    ("gevent", 100),
]


INSTALL_REQS = "celery[redis]==5.7.0 flower==2.2.0 gevent==26.9.0"


def bench_install(ctx: Context) -> str:
    """(6) Offline install: wheelhouse pip vs --no-compile vs uv, in the target container; the
    controller's configured index vs its wheelhouse side by side; worker first start w/o bytecode."""
    ctx.sandbox.up()
    uv_wheels = sorted([*UV_DIR.glob("uv-*.whl"), *(WHEELHOUSE / "py311").glob("uv-*.whl")])
    variants = {
        "pip, wheelhouse": "{v}/bin/pip install -q --no-cache-dir --no-index --find-links $W {r}",
        "pip, wheelhouse, --no-compile": (
            "{v}/bin/pip install -q --no-cache-dir --no-compile --no-index --find-links $W {r}"
        ),
    }
    uv_setup = ""
    if uv_wheels:
        uv_setup = (
            "test -x /opt/bench/uv/bin/uv || (python3 -m venv /opt/bench/uv && "
            f"/opt/bench/uv/bin/pip install -q --no-index /opt/bench/{uv_wheels[-1].name});"
        )
        # uv writes no bytecode unless asked: both ways, to compare like with like.
        uv = "/opt/bench/uv/bin/uv pip install -q --no-cache --offline --python {v}/bin/python"
        variants["uv, wheelhouse"] = uv + " --no-index --find-links $W {r}"
        variants["uv, wheelhouse, --compile-bytecode"] = (
            uv + " --compile-bytecode --no-index --find-links $W {r}"
        )
    target = {k: Sample() for k in variants}
    uv_install = Sample()
    wh = "W=$(dirname $(find /opt/bench/wheels -name 'celery-*.whl'))"
    for rep in range(ctx.reps):
        names = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for name in names:
            log(f"install: {name} in bench-host, rep {rep + 1}")
            venv = f"/opt/bench/i{rep}"
            dexec(f"rm -rf {venv} && python3 -m venv {venv}")
            cmd = variants[name].format(v=venv, r=" ".join(f"'{r}'" for r in INSTALL_REQS.split()))
            out = dexec(
                f"{wh}; {uv_setup} s=$(date +%s.%N); {cmd}; e=$(date +%s.%N); echo $s $e", timeout=600
            )
            s, e = (float(x) for x in out.split()[-2:])
            target[name].add(e - s)
        if uv_wheels:
            t = dexec(
                "rm -rf /opt/bench/uvt && python3 -m venv /opt/bench/uvt && s=$(date +%s.%N) &&"
                f" /opt/bench/uvt/bin/pip install -q --no-index /opt/bench/{uv_wheels[-1].name} &&"
                " echo $s $(date +%s.%N)"
            )
            s, e = (float(x) for x in t.split()[-2:])
            uv_install.add(e - s)
    base = target["pip, wheelhouse"]
    rows = []
    ratios = {}
    for name, sample in target.items():
        ratios[name] = paired_ratio(sample.values, base.values)
        rows.append([name, sample.show(), ratios[name].show()])
    # Controller side: the same requirement set from the configured index vs the wheelhouse (pip,
    # pip --no-compile, uv), fresh venv, no cache, same Python, alternating order.
    index = "pip, configured index"
    ctrl = {index: Sample(), "pip, wheelhouse": Sample(), "pip, wheelhouse, --no-compile": Sample()}
    py = sys.executable
    uv_bin = Path(ctx.sandbox.tmp) / "uv" / "bin" / "uv"
    if uv_wheels:
        sh([py, "-m", "venv", str(uv_bin.parent.parent)])
        sh([str(uv_bin.parent / "pip"), "install", "-q", "--no-index", str(uv_wheels[-1])])
        ctrl["uv, wheelhouse"] = Sample()
    find = ["--no-index", "--find-links", str(WHEELHOUSE / "py311")]
    for rep in range(ctx.reps):
        names = list(ctrl) if rep % 2 == 0 else list(reversed(ctrl))
        for name in names:
            log(f"install: {name} on the controller, rep {rep + 1}")
            venv = Path(ctx.sandbox.tmp) / f"ctrl{rep}"
            shutil.rmtree(venv, ignore_errors=True)
            sh([py, "-m", "venv", str(venv)])
            pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir", *INSTALL_REQS.split()]
            if name == "pip, wheelhouse":
                pip += find
            elif name == "pip, wheelhouse, --no-compile":
                pip += [*find, "--no-compile"]
            elif name == "uv, wheelhouse":
                pip = [str(uv_bin), "pip", "install", "-q", "--no-cache", "--offline"]
                pip += ["--python", str(venv / "bin" / "python"), *find, *INSTALL_REQS.split()]
            ctrl[name].add(timed(lambda pip=pip: sh(pip, timeout=900)))
            shutil.rmtree(venv, ignore_errors=True)
    ctrl_ratios = {k: paired_ratio(v.values, ctrl[index].values) for k, v in ctrl.items()}
    ctrl_fastest = min((k for k in ctrl if k != index), key=lambda k: ctrl_ratios[k].median)
    # Worker first start (launch -> first task result) with and without precompiled bytecode.
    first = {"compiled venv": Sample(), "--no-compile venv, first start": Sample()}
    for rep in range(ctx.reps):
        log(f"install: worker first start, rep {rep + 1}")
        dexec(
            f"{wh}; rm -rf /opt/bench/nc && python3 -m venv /opt/bench/nc && /opt/bench/nc/bin/pip install -q"
            " --no-cache-dir --no-compile --no-index --find-links $W -r $W/requirements.txt"
        )
        for name in first if rep % 2 == 0 else reversed(list(first)):
            venv = IN_VENV if name == "compiled venv" else "/opt/bench/nc"
            r = json.loads(dexec(f"{AGENT} first-start --venv {venv}").strip().splitlines()[-1])
            first[name].add(r["first_task_seconds"])
    start_ratio = paired_ratio(first["--no-compile venv, first start"].values, first["compiled venv"].values)
    fastest = min(ratios, key=lambda k: ratios[k].median)
    targets = [
        Target(
            f"Fastest offline path ({ctrl_fastest}) ÷ index (controller)",
            ctrl_ratios[ctrl_fastest].median,
            0.5,
            False,
        ),
        Target(
            "Plain pip from the wheelhouse ÷ index (controller)",
            ctrl_ratios["pip, wheelhouse"].median,
            0.5,
            False,
            gated=False,
        ),
        Target(
            f"Fastest offline path ({fastest}) ÷ pip wheelhouse (target)",
            ratios[fastest].median,
            0.5,
            False,
            gated=False,
        ),
    ]
    path, img = ctx.chart("install")
    bar_chart(path, f"Fresh venv install of {INSTALL_REQS} (bench-host, Python 3.11)", list(target),
              list(target.values()), "seconds")  # fmt: skip
    uv_line = (
        f"Installing uv itself into a venv from its wheel: {uv_install.show()} s."
        if uv_wheels
        else "uv: no uv wheel in CELERY_FLEET_BENCH_UV, not measured."
    )
    return "\n\n".join(
        [
            "## 6. Offline install",
            f"Fresh venv (`python3 -m venv`, not timed), then `{INSTALL_REQS}` with no cache. Target "
            "side: inside bench-host (Debian 12, Python 3.11.2), from the wheelhouse, three ways, "
            "alternating order. Ratio = per-repetition ÷ plain pip from the wheelhouse.",
            table(["Variant (target)", "Seconds", "Ratio ÷ pip wheelhouse"], rows),
            uv_line,
            "Controller side (same Python, same requirement set, fresh venv, `--no-cache-dir`): "
            "pip from the index this controller is configured with vs `--no-index` from the "
            "wheelhouse with pip, pip `--no-compile` and uv. Caveat: this machine's configured "
            "index includes local file mirrors, so the index figure is not a network download "
            "and flatters the index.",
            table(
                ["Variant (controller)", "Seconds", "Ratio ÷ index"],
                [[k, v.show(), ctrl_ratios[k].show()] for k, v in ctrl.items()],
            ),
            "Inside a container pip cannot reach "
            "the index (TLS), so the index cannot be measured on the target itself.",
            "Worker first start (launch → first no-op result, prefork c=2, project Redis), a venv "
            "installed with bytecode vs one installed `--no-compile` (its first start compiles, as "
            "root here; a service user without write access to the venv would pay it on every start):",
            table(
                ["Venv", "First task after launch, s"],
                [[k, v.show()] for k, v in first.items()],
            ),
            f"No-compile ÷ compiled first start: {start_ratio.show()}.",
            targets_table(targets),
            img,
        ]
    )


BENCHMARKS: dict[str, Callable[[Context], str]] = {
    "install": bench_install,
    "broker": bench_broker,
    "chord": bench_chord,
    "pools": bench_pools,
}
NOT_IMPLEMENTED = {
    "deploy-overhead (1)": "needs the sandbox fleet of scripts/demo.sh; not built in this session",
    "ansible-cfg (2)": "needs the sandbox fleet of scripts/demo.sh; not built in this session",
    "test-suite (7)": "a full measured Molecule run does not fit one session; not built",
    "rolling-restart (8)": "needs the sandbox fleet and playbooks/rolling-restart.yml; not built",
}


def header(sandbox: Sandbox, quick: bool, load_start: str) -> str:
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
    commit = first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    rows = [[k, f"`{v}`"] for k, v in versions.items()]
    rows += [
        ["CPU cores (nproc)", str(os.cpu_count())],
        ["Load average at start (1/5/15 min)", load_start],
        ["Load average at end", " ".join(Path("/proc/loadavg").read_text().split()[:3])],
        ["Commit", commit],
        ["Mode", "--quick (reduced task counts)" if quick else "full"],
    ]
    return table(["", ""], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="celery-fleet benchmarks (issue 9)")
    parser.add_argument("--quick", action="store_true", help="reduced task counts, still 3 repetitions")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--keep", action="store_true", help="leave bench-host running at the end")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    # A partial run gets its own report, so that every figure of a report comes from one run.
    stem = started.strftime("%Y-%m-%d") + ("-" + "-".join(args.only) if args.only else "")
    args.out.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(keep=args.keep)
    ctx = Context(args.quick, sandbox, args.out, stem)
    sections: list[str] = []
    failed: list[str] = []
    try:
        for name in args.only or list(BENCHMARKS):
            log(f"=== {name}")
            t0 = time.perf_counter()
            try:
                sections.append(BENCHMARKS[name](ctx))
            except Exception as exc:  # one broken benchmark must not lose the others' figures
                failed.append(name)
                sections.append(f"## {name}\n\nFAILED in this run: `{type(exc).__name__}: {exc}`")
            log(f"=== {name} done in {time.perf_counter() - t0:.0f} s")
        head = header(sandbox, args.quick, load_start)
    finally:
        sandbox.down()
    missing = "\n".join(f"- {k}: {v}" for k, v in NOT_IMPLEMENTED.items())
    report = "\n\n".join(
        [
            f"# celery-fleet benchmarks, {started:%Y-%m-%d %H:%M} UTC",
            "Generated by `python bench/run.py"
            + (" --quick" if args.quick else "")
            + (f" --only {' '.join(args.only)}" if args.only else "")
            + "`; every figure below comes from this run. Each ratio is the median of per-repetition "
            "ratios of two measurements taken side by side (≥ 3 repetitions), with the range in "
            "parentheses. Never compare absolute times across reports.",
            head,
            *sections,
            "## Not measured by this run\n\n" + missing,
        ]
    )
    path = args.out / f"{stem}.md"
    path.write_text(report + "\n")
    log(f"report: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
