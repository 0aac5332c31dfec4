"""The four-host fleet of the deploy and rolling-restart benchmarks (1, 2, 8).

The sandbox inventory (inventories/sandbox: cf-redis, cf-worker-gpu, cf-worker-cpu, cf-ops) mapped
onto four systemd containers of the benchmark's own (``bench-cf-*`` on the network
``bench-fleet``), so that a running ``make demo`` is never disturbed: a second inventory source
sets each host's ``ansible_host`` (the container the docker connection talks to) and
``celery_fleet_private_address`` (the name the other hosts reach it by). Inventory host variables
take precedence over the sandbox's group_vars, so nothing else changes: same site.yml, same
variables, same vault.

Each ``playbook()`` call gets a fact cache directory of its own choosing: a first converge starts
from an empty cache, a re-run reuses the cache of the converge before it (as an operator's would).
"""

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import IMAGE, ROOT, SYSTEMD_ARGS, VENV_BIN, log, sh

# isort: split
from celery_fleet.recap import play_recap  # lib/ is on sys.path through common

NETWORK = "bench-fleet"
PREFIX = "bench-"
HOSTS = ["cf-redis", "cf-worker-gpu", "cf-worker-cpu", "cf-ops"]
INVENTORY = ROOT / "inventories" / "sandbox"
VAULT_PASSWORD_FILE = INVENTORY / "vault-password.txt"
# The settings without which Ansible cannot find the project's code at all (roles, filters,
# modules): the "defaults" configuration of benchmark 2 keeps only these. Absolute paths: Ansible
# resolves a relative path in a config file against that file's directory, and this one is written
# to a temp directory.
MINIMAL_CONFIG = (
    f"[defaults]\nroles_path = {ROOT / 'roles'}\nfilter_plugins = {ROOT / 'plugins/filter'}\n"
    f"library = {ROOT / 'library'}\n"
)
# Only one fleet may exist on the machine at a time (the container names are fixed): recreate()
# takes this exclusive lock, waiting up to LOCK_WAIT seconds, and down() releases it (so does the
# end of the process).
LOCK_FILE = Path("/tmp/bench-fleet.lock")
LOCK_WAIT = 40 * 60


@dataclass
class PlaybookRun:
    """One ansible-playbook run: wall time, the PLAY RECAP per host and the whole output."""

    wall: float
    returncode: int
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    output: str = ""

    @property
    def changed(self) -> int:
        return sum(r.get("changed", 0) for r in self.recap.values())

    @property
    def failed(self) -> int:
        return sum(r.get("failed", 0) + r.get("unreachable", 0) for r in self.recap.values())


class Fleet:
    """``hosts`` (sandbox host names) and ``sources`` (more inventory sources after the sandbox's, as
    ``SENTINEL=1 make demo`` adds inventories/sandbox/sentinel.cfg) default to the four-host fleet."""

    def __init__(
        self, keep: bool = False, hosts: list[str] | None = None, sources: tuple[Path, ...] = ()
    ) -> None:
        self.keep = keep
        self.hosts = list(hosts or HOSTS)
        self.sources = sources
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
        self.overlay = self.tmp / "bench-fleet.yml"
        # Inventory host variables of each host (ansible_host, the address peers use, and whatever
        # a benchmark adds with set_host_vars once the containers exist).
        self.host_vars = {
            h: {"ansible_host": PREFIX + h, "celery_fleet_private_address": PREFIX + h} for h in self.hosts
        }
        self._write_overlay()
        self.minimal_cfg = self.tmp / "ansible-defaults.cfg"
        self.minimal_cfg.write_text(MINIMAL_CONFIG)
        self.containers_up = False
        self._lock: int | None = None

    def _write_overlay(self) -> None:
        self.overlay.write_text(json.dumps({"all": {"hosts": self.host_vars}}))

    def set_host_vars(self, host: str, values: dict[str, object]) -> None:
        """More inventory host variables for one host (they win over the sandbox's group_vars)."""
        self.host_vars[host].update(values)
        self._write_overlay()

    def address(self, host: str) -> str:
        """The container's IP address on the fleet's network."""
        fmt = '{{(index .NetworkSettings.Networks "' + NETWORK + '").IPAddress}}'
        return sh(["docker", "inspect", "-f", fmt, PREFIX + host], timeout=60).strip()

    # --- lock ----------------------------------------------------------------------------------

    def acquire(self) -> None:
        if self._lock is not None:
            return
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + LOCK_WAIT
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise TimeoutError(f"{LOCK_FILE} held by another fleet for {LOCK_WAIT} s") from None
                if not waited:
                    log(f"waiting for {LOCK_FILE} (another benchmark's fleet is up)")
                    waited = True
                time.sleep(5)
        self._lock = fd

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    # --- containers ----------------------------------------------------------------------------

    def recreate(self) -> float:
        """Fresh containers for every host (a first converge starts here); returns the seconds taken."""
        self.acquire()
        t0 = time.perf_counter()
        self._remove()
        sh(["docker", "network", "create", NETWORK], check=False)
        for h in self.hosts:
            name = PREFIX + h
            sh(["docker", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK,
                "--label", "owner=celery-fleet-bench", *SYSTEMD_ARGS,
                IMAGE, "/lib/systemd/systemd"])  # fmt: skip
        for h in self.hosts:
            state = ""
            for _ in range(15):  # the first exec into a booting container can fail empty: ask again
                state = sh(
                    ["docker", "exec", PREFIX + h, "systemctl", "is-system-running", "--wait"],
                    check=False,
                    timeout=180,
                ).strip()
                if state in ("running", "degraded"):
                    break
                time.sleep(2)
            if state not in ("running", "degraded"):
                raise RuntimeError(f"{PREFIX + h} did not boot: {state!r}")
        self.containers_up = True
        return time.perf_counter() - t0

    def exec(self, host: str, script: str, timeout: float = 300, check: bool = True) -> str:
        """A shell script on one host of the fleet (sandbox host name, e.g. ``cf-ops``)."""
        return sh(["docker", "exec", PREFIX + host, "bash", "-ec", script], timeout=timeout, check=check)

    def _remove(self) -> None:
        sh(["docker", "rm", "-f", *(PREFIX + h for h in self.hosts)], check=False, timeout=180)
        sh(["docker", "network", "rm", NETWORK], check=False, timeout=60)

    def down(self) -> None:
        if self.keep:
            log(f"--keep: leaving {', '.join(PREFIX + h for h in self.hosts)} running")
            self._release()
            return
        self._remove()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.containers_up = False
        self._release()

    # --- Ansible -------------------------------------------------------------------------------

    def playbook(
        self,
        playbook: str,
        *args: str,
        facts: Path,
        config: str = "shipped",
        env: dict[str, str] | None = None,
        timeout: float = 1800,
        name: str = "run",
    ) -> PlaybookRun:
        """``ansible-playbook <playbook> -i sandbox -i overlay`` from the repository root.

        config: "shipped" (the repository's ansible.cfg) or "defaults" (MINIMAL_CONFIG only).
        facts: the jsonfile fact cache directory for this run (ignored by "defaults", which has no
        fact cache). The whole output is kept in the run's temp directory as <name>.log."""
        cfg = ROOT / "ansible.cfg" if config == "shipped" else self.minimal_cfg
        run_env = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
        run_env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(facts)
        run_env.update(env or {})
        sources = [arg for source in (INVENTORY, *self.sources, self.overlay) for arg in ("-i", str(source))]
        argv = [str(VENV_BIN / "ansible-playbook"), *sources,
                "--vault-password-file", str(VAULT_PASSWORD_FILE), playbook, *args]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(
            argv, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=timeout, check=False
        )
        wall = time.perf_counter() - t0
        output = done.stdout + done.stderr
        (self.tmp / f"{name}.log").write_text(output)
        return PlaybookRun(wall, done.returncode, play_recap(done.stdout), output)

    def log_path(self, name: str) -> Path:
        return self.tmp / f"{name}.log"
