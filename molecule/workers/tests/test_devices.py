"""GPU workers: a worker granted a device node sees and opens it, one not granted does not; /proc.

converge.yml grants `training` the devices [/dev/nvidia0, /dev/nvidiactl] (prepare.yml makes
/dev/nvidia0 with numbers Docker lets through; /dev/nvidiactl does not exist, which systemd skips)
and gives `extraction` all of /proc without a device. Under supervisord nothing is isolated: every
worker sees what the service user may open, and all of /proc.
"""

from __future__ import annotations

import shlex

import pytest
from conftest import APP, WORKERS, service

GRANTED = next(w for w in WORKERS if w.get("devices"))
FULL_PROC = next(w for w in WORKERS if w.get("proc_subset") == "all" and not w.get("devices"))
PLAIN = next(w for w in WORKERS if not w.get("devices") and not w.get("proc_subset"))
NODE = GRANTED["devices"][0]


@pytest.fixture(autouse=True)
def systemd_only(node):
    if node.manager != "systemd":
        pytest.skip("supervisord has no device or /proc isolation: nothing to grant")


def _pid(node, worker) -> int:
    pid = node.main_pid(service(worker["name"]))
    assert pid > 0, f"{service(worker['name'])} is not running"
    return pid


def _devices_cgroup(node, pid: int) -> str:
    line = next(x for x in node.read(f"/proc/{pid}/cgroup").splitlines() if ":devices:" in x)
    return "/sys/fs/cgroup/devices" + line.split(":", 2)[2]


def _open_in_cgroup_of(node, pid: int) -> str:
    """Open NODE as the service user from a shell moved into the worker's device cgroup (cgroup v1):
    what the worker itself would get from open()."""
    cgroup = _devices_cgroup(node, pid)
    script = (
        f"echo $$ > {cgroup}/cgroup.procs && "
        f"exec setpriv --reuid={APP} --regid={APP} --clear-groups sh -c ': < {NODE}' 2>&1"
    )
    result = node.run(f"sh -c {shlex.quote(script)}")
    return "opened" if result.returncode == 0 else result.stdout.strip()


def test_unit_grants_exactly_the_declared_devices(node):
    shown = node.check(
        f"systemctl show -p DevicePolicy -p DeviceAllow -p PrivateDevices {service(GRANTED['name'])}"
    )
    print(shown)
    assert "DevicePolicy=closed" in shown
    assert "PrivateDevices=no" in shown
    for device in GRANTED["devices"]:
        assert f"{device} rw" in shown


def test_granted_worker_sees_and_opens_its_device(node):
    pid = _pid(node, GRANTED)

    assert node.run(f"test -c /proc/{pid}/root{NODE}").returncode == 0
    assert _open_in_cgroup_of(node, pid) == "opened"


def test_missing_device_node_does_not_stop_the_worker(node):
    missing = GRANTED["devices"][1]
    assert not node.exists(missing)
    assert node.state(service(GRANTED["name"])) == "active"


@pytest.mark.parametrize("worker", [FULL_PROC, PLAIN], ids=lambda w: w["name"])
def test_worker_not_granted_neither_sees_nor_opens_the_device(node, worker):
    pid = _pid(node, worker)

    assert node.run(f"test -e /proc/{pid}/root{NODE}").returncode != 0
    # Even a process in its device cgroup with the host's /dev is refused.
    assert "Operation not permitted" in _open_in_cgroup_of(node, pid)


@pytest.mark.parametrize(("worker", "readable"), [(GRANTED, True), (FULL_PROC, True), (PLAIN, False)])
def test_meminfo_and_cpuinfo_only_with_full_proc(node, worker, readable):
    pid = _pid(node, worker)
    for name in ("meminfo", "cpuinfo"):
        # /proc/<pid>/root/proc is the worker's own /proc mount (ProcSubset= applies to it).
        result = node.run(f"head -c 64 /proc/{pid}/root/proc/{name}")
        print(f"{worker['name']} /proc/{name}: rc {result.returncode}")
        assert (result.returncode == 0) is readable
