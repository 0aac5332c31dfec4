"""Benchmark 6: offline install vs the package index."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from benchlib import Sample, Target, bar_chart, paired_ratio, table, targets_table
from common import AGENT, IN_VENV, UV_DIR, WHEELHOUSE, Context, dexec, log, sh, timed

INSTALL_REQS = "celery[redis]==5.7.0 flower==2.2.0 gevent==26.9.0"


def bench_install(ctx: Context) -> str:
    """(6) Offline install: wheelhouse pip vs --no-compile vs uv, in the target container; the
    controller's configured index vs its wheelhouse side by side; worker first start w/o bytecode."""
    ctx.sandbox.up()
    # uv ships in the wheelhouse's tools/ (requirements/tools.txt); UV_DIR is a fallback.
    uv_wheels = sorted(WHEELHOUSE.joinpath("tools").glob("uv-*.whl")) or sorted(UV_DIR.glob("uv-*.whl"))
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
        ctrl["uv, wheelhouse, --compile-bytecode (the role's uv path)"] = Sample()
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
            elif name.startswith("uv, wheelhouse"):
                pip = [str(uv_bin), "pip", "install", "-q", "--no-cache", "--offline", "--compile-bytecode"]
                pip += ["--python", str(venv / "bin" / "python"), *find, *INSTALL_REQS.split()]
            ctrl[name].add(timed(lambda pip=pip: sh(pip, timeout=900)))
            shutil.rmtree(venv, ignore_errors=True)
    ctrl_ratios = {k: paired_ratio(v.values, ctrl[index].values) for k, v in ctrl.items()}
    # The gate is on what the role ships: its uv path (with bytecode) when uv is there, else the
    # fastest offline variant (--no-compile is not a shipped path: services would compile on start).
    shipped = [k for k in ctrl if k.endswith("(the role's uv path)")]
    ctrl_fastest = (
        shipped[0] if shipped else min((k for k in ctrl if k != index), key=lambda k: ctrl_ratios[k].median)
    )
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
            f"Offline path the role ships ({ctrl_fastest}) ÷ index (controller)",
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
