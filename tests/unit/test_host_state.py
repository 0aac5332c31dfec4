"""Unit tests of the unchanged-host skip: the controller's signature (lib/celery_fleet/hoststate.py)
and the host's record (roles/celery_worker/library/celery_fleet_host_state.py) on a temporary tree,
with systemctl, supervisorctl and dpkg-query answered by a fake."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from celery_fleet import hoststate

pytest.importorskip("ansible.module_utils.basic")

PATH = (
    Path(__file__).resolve().parents[2] / "roles" / "celery_worker" / "library" / "celery_fleet_host_state.py"
)
spec = importlib.util.spec_from_file_location("celery_fleet_host_state", PATH)
state = importlib.util.module_from_spec(spec)
spec.loader.exec_module(state)


# --- the signature (controller) ---------------------------------------------------------------------


class LazyVars(dict):
    """Stands in for hostvars[host]: a value that fails to template raises on access."""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, Exception):
            raise value
        return value


BASE = {
    "celery_workers": [{"name": "fast", "queues": ["fast"]}],
    "celery_broker_host": "10.0.0.5",
    "inventory_hostname": "w1",
    "ansible_facts": {"nodename": "w1", "distribution": "Debian", "uptime_seconds": 5},
}


def test_the_signature_follows_every_input_variable_and_fact() -> None:
    first = hoststate.inputs_signature(LazyVars(BASE))
    assert first == hoststate.inputs_signature(LazyVars(dict(BASE)))
    assert first != hoststate.inputs_signature(LazyVars({**BASE, "celery_broker_host": "10.0.0.6"}))
    assert first != hoststate.inputs_signature(LazyVars({**BASE, "redis_port": 6380}))
    facts = {**BASE["ansible_facts"], "nodename": "w1b"}
    assert first != hoststate.inputs_signature(LazyVars({**BASE, "ansible_facts": facts}))


def test_the_signature_ignores_what_differs_from_run_to_run() -> None:
    first = hoststate.inputs_signature(LazyVars(BASE))
    noise = {
        "omit": "__omit_place_holder__1234",
        "ansible_check_mode": True,
        "ansible_run_tags": ["workers"],
        "__celery_app_register_dirs": {"changed": True, "delta": "0:00:01"},
        "celery_service_pending": {"restart": []},
        "celery_app_changed": True,
        "celery_fleet_serial": 2,
        "playbook_dir": "/elsewhere",
        "ansible_facts": {**BASE["ansible_facts"], "uptime_seconds": 999},
    }
    assert first == hoststate.inputs_signature(LazyVars({**BASE, **noise}))


def test_a_variable_that_cannot_be_templated_counts_as_its_error() -> None:
    broken = hoststate.host_inputs(LazyVars({**BASE, "celery_x": KeyError("undefined")}))
    assert broken["celery_x"] == "<KeyError>"


def test_a_replaced_variable_counts_as_the_value_given_for_it() -> None:
    """The app's part of the skip: of celery_workers only the pools' packages count."""

    def app_signature(workers: list[dict[str, Any]]) -> str:
        pools = sorted({"gevent" for w in workers if w.get("pool") == "gevent"})
        return hoststate.inputs_signature(
            LazyVars({**BASE, "celery_workers": workers}), replace={"celery_workers": pools}
        )

    first = app_signature([{"name": "fast", "queues": ["fast"], "concurrency": 1}])
    assert first == app_signature([{"name": "fast", "queues": ["fast"], "concurrency": 2}])
    assert first != app_signature([{"name": "fast", "queues": ["fast"], "pool": "gevent"}])
    # Replaced or not, the other variables still count; and a replaced one that fails to template
    # is never read.
    assert first != hoststate.inputs_signature(
        LazyVars({**BASE, "redis_port": 6380}), replace={"celery_workers": []}
    )
    assert (
        hoststate.host_inputs(LazyVars({**BASE, "celery_workers": KeyError("x")}), {"celery_workers": []})[
            "celery_workers"
        ]
        == []
    )


def test_the_app_role_reads_celery_workers_only_through_the_pool_filter() -> None:
    """What makes the app's part of the skip sound: roles/celery_app reads no worker variable but the
    pools (`celery_workers | celery_fleet_pool_packages`), so a worker's concurrency or queues cannot
    change what the role writes. A new read of celery_workers, or of a celery_worker_* name, must
    come with a new `replace` in roles/celery_worker/vars/main.yml's __celery_worker_app_signature."""
    role = Path(__file__).resolve().parents[2] / "roles" / "celery_app"
    reads = []
    for path in sorted(role.rglob("*")):
        if path.suffix not in {".yml", ".j2", ".py", ".sh"} or path.parent.name == "meta":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            if "celery_worker_" in line or "celery_workers" in line:
                reads.append((path.relative_to(role).as_posix(), number, line.strip()))
    allowed = [
        r
        for r in reads
        if "celery_workers | default([]) | celery_fleet_pool_packages" in r[2]
        # the in-run reuse's own signature (tasks/main.yml) lists the name: stricter, never looser
        or "celery_process_manager|celery_workers|" in r[2]
    ]
    assert reads == allowed, reads
    assert [r[0] for r in allowed] == ["vars/main.yml", "vars/main.yml"]


def test_the_signature_follows_the_code_and_the_wheelhouse_list(tmp_path: Path) -> None:
    code, wheels = tmp_path / "roles", tmp_path / "wheelhouse"
    (code / "r" / "__pycache__").mkdir(parents=True)
    (code / "r" / "main.yml").write_text("a")
    wheels.mkdir()
    (wheels / "celery-5.7.0-py3-none-any.whl").write_bytes(b"x" * 10)

    def sign() -> str:
        return hoststate.inputs_signature(LazyVars(BASE), [str(code)], [str(wheels)])

    first = sign()
    (code / "r" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"cache")
    assert sign() == first  # bytecode is not code
    (code / "r" / "main.yml").write_text("b")
    second = sign()
    assert second != first
    (wheels / "celery-5.7.1-py3-none-any.whl").write_bytes(b"y")
    assert sign() != second
    # A missing tree is an input too (absent), not an error.
    assert hoststate.tree_digest([str(tmp_path / "none")]) != hoststate.tree_digest([str(code)])


# --- the record (host) ------------------------------------------------------------------------------


class Host:
    """Answers the module's commands as a host would."""

    def __init__(self) -> None:
        self.units = {"app-worker-a.service": "active", "app-worker-b.service": "active"}
        self.packages = {"python3-venv": "ii 3.11.2-1+b1"}
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int, str]:
        self.calls.append(list(argv))
        if argv[0] == "systemctl":
            assert argv[3] == "--", argv
            blocks = [
                f"Id={u}\nLoadState=loaded\nActiveState={self.units.get(u, 'dead')}\nUnitFileState=enabled"
                for u in argv[4:]
            ]
            return 0, "\n\n".join(blocks) + "\n"
        if argv[0] == "dpkg-query":
            lines = [f"{p}\t{s.split()[0]} \t{s.split()[1]}" for p, s in self.packages.items() if p in argv]
            return 0, "\n".join(lines) + "\n"
        if argv[0] == "supervisorctl":
            return 3, "app-worker-a                     RUNNING   pid 12, uptime 0:01:00\n"
        raise AssertionError(argv)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Any]:
    home = tmp_path / "opt" / "app"
    (home / "venv" / "lib" / "__pycache__").mkdir(parents=True)
    (home / "venv" / "lib" / "celery.py").write_text("code")
    (home / "venv" / "bin").mkdir()
    (home / "venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    units = tmp_path / "systemd"
    units.mkdir()
    (units / "app-worker-a.service").write_text("[Service]\n")
    return {
        "home": home,
        "units": units,
        "spec": {
            "paths": [str(home), str(units / "app-worker-*"), str(tmp_path / "etc" / "worker-*.env")],
            "services": ["app-worker-a", "app-worker-b"],
            "manager": "systemd",
            "users": ["root"],
            "groups": ["root"],
            "packages": ["python3-venv"],
        },
        "pending": str(tmp_path / "workers.json"),
        "tmp": tmp_path,
    }


def _record(spec: dict[str, Any], host: Host, signature: str = "s1") -> dict[str, Any]:
    return {
        "version": state.RECORD_VERSION,
        "signature": signature,
        "spec": spec,
        "fingerprint": state.fingerprint(spec, host),
    }


def test_a_host_as_its_record_says_is_current(tree: dict[str, Any]) -> None:
    host = Host()
    record = _record(tree["spec"], host)
    assert state.check(record, "s1", [tree["pending"]], host).reasons == []
    # Bytecode written by a running interpreter is not a change.
    (tree["home"] / "venv" / "lib" / "__pycache__" / "celery.cpython-311.pyc").write_bytes(b"x")
    assert state.check(record, "s1", [tree["pending"]], host).reasons == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda t, h: (t["units"] / "app-worker-a.service").write_text("[Service]\n# by hand\n"),
            "app-worker-a.service changed",
        ),
        (lambda t, h: (t["home"] / "venv" / "lib" / "celery.py").unlink(), "celery.py is gone"),
        (lambda t, h: (t["units"] / "app-worker-z.service").write_text(""), "app-worker-z.service appeared"),
        (lambda t, h: os.chmod(t["home"] / "venv" / "lib" / "celery.py", 0o666), "celery.py changed"),
        (
            lambda t, h: h.units.update({"app-worker-b.service": "failed"}),
            "service app-worker-b.service: loaded/active/enabled -> loaded/failed/enabled",
        ),
        (lambda t, h: h.packages.clear(), "package python3-venv: ii 3.11.2-1+b1 -> absent"),
        (lambda t, h: (t["home"] / "venv" / "bin" / "python").unlink(), "python is gone"),
    ],
)
def test_anything_changed_behind_ansibles_back_is_named(
    tree: dict[str, Any], change: Any, expected: str
) -> None:
    host = Host()
    record = _record(tree["spec"], host)
    change(tree, host)
    reasons = state.check(record, "s1", [tree["pending"]], host).reasons
    assert any(expected in r for r in reasons), reasons


def test_a_file_rewritten_with_its_size_and_modification_time_kept_is_named(tree: dict[str, Any]) -> None:
    """As `cp -p` from a backup, or `touch -r`, would leave it: the change time still moves."""
    host = Host()
    code = tree["home"] / "venv" / "lib" / "celery.py"
    before = os.stat(code)
    record = _record(tree["spec"], host)
    time.sleep(0.05)  # past the kernel's coarse clock tick, which stamps files
    code.write_text("CODE")
    os.utime(code, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(code).st_size == before.st_size and os.stat(code).st_mtime_ns == before.st_mtime_ns
    assert any("celery.py changed" in r for r in state.check(record, "s1", [tree["pending"]], host).reasons)


def test_new_inputs_a_pending_restart_or_no_record_are_never_current(tree: dict[str, Any]) -> None:
    host = Host()
    record = _record(tree["spec"], host)
    assert "inputs changed" in state.check(record, "s2", [], host).reasons[0]
    Path(tree["pending"]).write_text("{}")
    assert "restart is pending" in state.check(record, "s1", [tree["pending"]], host).reasons[0]
    assert state.check(None, "s1", [], host).reasons == ["no record of an earlier converge"]
    assert "another version" in state.check({**record, "version": 0}, "s1", [], host).reasons[0]


def test_the_apps_part_is_current_when_only_other_inputs_changed_and_nothing_by_hand(
    tree: dict[str, Any],
) -> None:
    host = Host()
    record = {**_record(tree["spec"], host), "app_signature": "a1"}
    # One worker's concurrency: the host converges, the app's role has nothing to do.
    verdict = state.check(record, "s2", [], host, app_signature="a1")
    assert "inputs changed" in verdict.reasons[0] and verdict.app_current
    # A restart left pending is the workers' business, not the app's.
    Path(tree["pending"]).write_text("{}")
    assert state.check(record, "s1", [tree["pending"]], host, app_signature="a1").app_current
    # The app's own inputs changed, or no app signature given: the app converges.
    assert not state.check(record, "s2", [], host, app_signature="a2").app_current
    assert not state.check(record, "s2", [], host).app_current
    # Anything changed by hand on the host, even outside the app's files: the app converges too.
    (tree["units"] / "app-worker-a.service").write_text("[Service]\n# by hand\n")
    verdict = state.check(record, "s2", [], host, app_signature="a1")
    assert not verdict.app_current and any("app-worker-a.service changed" in r for r in verdict.reasons)
    # No record, or one of another version: never.
    assert not state.check(None, "s2", [], host, app_signature="a1").app_current
    assert not state.check({**record, "version": 2}, "s2", [], host, app_signature="a1").app_current


def test_supervisord_programs_are_fingerprinted_by_their_status() -> None:
    assert state.services_fingerprint("supervisord", ["app-worker-a", "app-worker-b"], Host()) == {
        "app-worker-a": "RUNNING",
        "app-worker-b": "unknown",
    }


def test_the_record_is_root_only_written_by_rename_and_only_when_it_differs(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "app-workers-state.json")
    assert state.write_record(path, {"signature": "s1"}) is True
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert state.write_record(path, {"signature": "s1"}) is False
    assert json.loads(Path(path).read_text()) == {"signature": "s1"}
    assert state.read_record(str(tmp_path / "none.json")) is None
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["app-workers-state.json"]


def test_a_current_host_reports_its_recorded_service_files_and_a_pattern_not_recorded_is_no_skip(
    tree: dict[str, Any],
) -> None:
    host = Host()
    (tree["units"] / "app-beat.service").write_text("[Service]\n")
    (tree["units"] / "app-worker-a.service.d").mkdir()
    (tree["units"] / "app-worker-a.service.d" / "x.service").write_text("")
    services = str(tree["units"] / "app-*.service")
    spec = {**tree["spec"], "paths": [*tree["spec"]["paths"], services]}
    record = _record(spec, host)
    assert state.check(record, "s1", [], host, report=[services]).reasons == []
    # In the pattern's own directory only, as glob matches on the host; nothing of the drop-in's.
    assert state.reported(record, [services]) == [
        str(tree["units"] / "app-beat.service"),
        str(tree["units"] / "app-worker-a.service"),
    ]
    # A pattern that matched nothing is recorded as absent, and reports nothing.
    assert state.reported(record, [str(tree["tmp"] / "etc" / "worker-*.env")]) == []
    # A record taken without the pattern (an older converge) cannot say what is there: no skip.
    old = _record(tree["spec"], host)
    assert state.check(old, "s1", [], host, report=[services]).reasons == [
        f"the record does not cover {services}"
    ]
