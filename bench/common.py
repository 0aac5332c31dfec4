"""Shared pieces of the benchmarks: paths, shell helpers, the bench-host container (Sandbox) and
the Context each benchmark receives. See bench/README.md."""

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

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# lib/celery_fleet for the benchmarks as for the tests (the PLAY RECAP reader, the layout).
if str(ROOT / "lib") not in sys.path:
    sys.path.insert(0, str(ROOT / "lib"))
VENV_BIN = ROOT / ".venv" / "bin"
WHEELHOUSE = Path(
    os.environ.get("CELERY_FLEET_WHEELHOUSE", Path.home() / ".cache" / "celery-fleet" / "wheelhouse")
)
# uv's wheel: from the wheelhouse's tools/ (scripts/build-wheelhouse.sh), else from this directory.
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


def dexec(
    script: str, timeout: float = 600, check: bool = True, secret_env: dict[str, str] | None = None
) -> str:
    """``script`` in bench-host. ``secret_env`` reaches it through docker exec's environment: only the
    names are in argv (``-e NAME``), the values never (neither docker's nor the script's)."""
    names = [arg for name in secret_env or {} for arg in ("-e", name)]
    env = {**os.environ, **secret_env} if secret_env else None
    return sh(["docker", "exec", *names, HOST, "bash", "-ec", script], timeout=timeout, check=check, env=env)


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
