"""Unit tests of roles/redis/library/celery_fleet_redis_ask.py: every server asked with every
password in one module run, the results in a loop's shape and order (what
lib/celery_fleet/sentinel.py reads), the passwords on stdin only."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

pytest.importorskip("ansible.module_utils.basic")

from celery_fleet import sentinel

PATH = Path(__file__).resolve().parents[2] / "roles" / "redis" / "library" / "celery_fleet_redis_ask.py"
spec = importlib.util.spec_from_file_location("celery_fleet_redis_ask", PATH)
redis_ask = importlib.util.module_from_spec(spec)
spec.loader.exec_module(redis_ask)

CLI = ["timeout", "5", "/usr/bin/redis-cli", "-p", "26379", "--tls", "--askpass"]
SERVERS = ["redis-1", "redis-2", "redis-3"]
ADDRESSES = {"redis-1": "10.0.0.1", "redis-2": "10.0.0.2", "redis-3": "10.0.0.3", "client": "10.0.0.9"}
CURRENT, OLD = "sentinels-new-0123456789", "sentinels-old-0123456789"  # TEST ONLY
COMMAND = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "celery-fleet"]


class Sentinels:
    """Each Sentinel by address: the password it accepts (None: unreachable) and the master it names."""

    def __init__(self, accepts: dict[str, str | None], master: str = "10.0.0.2") -> None:
        self.accepts, self.master = accepts, master
        self.calls: list[tuple[list[str], str]] = []
        self.lock = threading.Lock()

    def __call__(self, argv: Sequence[str], password: str) -> tuple[int, str, str]:
        with self.lock:
            self.calls.append((list(argv), password))
        address = argv[argv.index("-h") + 1]
        accepted = self.accepts[address]
        if accepted is None:
            return 1, "", f"Could not connect to Redis at {address}:26379: Connection refused\n"
        if password != accepted:
            return 0, "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n", ""
        return 0, f"{self.master}\n6380\n", ""


def test_every_server_is_asked_with_every_password_in_the_loops_order() -> None:
    fake = Sentinels(dict.fromkeys(ADDRESSES.values(), CURRENT))
    results = redis_ask.ask(CLI, SERVERS, ADDRESSES, COMMAND, [CURRENT, OLD], run=fake)
    assert [r["item"] for r in results] == [[s, i] for s in SERVERS for i in (0, 1)]
    assert len(fake.calls) == 6
    # Each argv is the cli, the server's address, the command: no password in any of them.
    for argv, _password in fake.calls:
        assert argv[: len(CLI)] == CLI and argv[-len(COMMAND) :] == COMMAND
        assert argv[len(CLI)] == "-h" and argv[len(CLI) + 1] in ADDRESSES.values()
        assert CURRENT not in argv and OLD not in argv
    assert {p for _argv, p in fake.calls} == {CURRENT, OLD}
    first = results[0]
    assert first["rc"] == 0 and first["stdout"] == "10.0.0.2\n6380"
    assert first["stdout_lines"] == ["10.0.0.2", "6380"]


def test_the_results_decide_the_master_as_the_loops_did() -> None:
    """The rules of lib/celery_fleet/sentinel.py read the module's results unchanged: a rotation
    where one Sentinel still knows only the old password, and one that is down."""
    fake = Sentinels({"10.0.0.1": CURRENT, "10.0.0.2": OLD, "10.0.0.3": None}, master="10.0.0.1")
    results = redis_ask.ask(CLI, SERVERS, ADDRESSES, COMMAND, [CURRENT, OLD], run=fake)
    master = sentinel.current_master(results, 3, {"address": "10.0.0.3", "port": 6380})
    assert master == {"address": "10.0.0.1", "port": 6380, "source": "sentinel"}


def test_a_sentinel_refusing_every_password_is_named() -> None:
    fake = Sentinels({"10.0.0.1": CURRENT, "10.0.0.2": CURRENT, "10.0.0.3": "some-other-password"})
    results = redis_ask.ask(CLI, SERVERS, ADDRESSES, COMMAND, [CURRENT], run=fake)
    with pytest.raises(ValueError, match="redis-3"):
        sentinel.current_master(results, 3, {"address": "10.0.0.1", "port": 6380})


def test_no_server_no_question() -> None:
    assert redis_ask.ask(CLI, [], ADDRESSES, COMMAND, [CURRENT], run=Sentinels({})) == []


def test_run_cli_gives_the_password_on_stdin_and_reports_a_missing_program() -> None:
    script = "import sys; print(' '.join(sys.argv[1:])); print(sys.stdin.readline().strip()[::-1])"
    argv = [sys.executable, "-c", script, "-h", "10.0.0.1", "PING"]
    rc, out, err = redis_ask.run_cli(argv, "secret-TEST-ONLY")
    assert (rc, err) == (0, "")
    assert out.splitlines() == ["-h 10.0.0.1 PING", "YLNO-TSET-terces"]
    rc, out, err = redis_ask.run_cli(["/nonexistent/redis-cli", "PING"], "x")
    assert rc == 127 and out == "" and "nonexistent" in err
