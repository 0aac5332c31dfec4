"""Unit tests of roles/redis/library/celery_fleet_redis_switchover.py against a scripted broker.

The fake answers redis-cli calls as a paused master, its replicas and the Sentinels would, on a
fake clock: what is checked is the order of the steps, that the pause never lapses while the module
waits, that the old master is unpaused whatever happens, and that no password reaches an argv.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import pytest

pytest.importorskip("ansible.module_utils.basic")

LIBRARY = Path(__file__).resolve().parents[2] / "roles" / "redis" / "library"
PATH = LIBRARY / "celery_fleet_redis_switchover.py"
spec = importlib.util.spec_from_file_location("celery_fleet_redis_switchover", PATH)
switchover = importlib.util.module_from_spec(spec)
spec.loader.exec_module(switchover)

ADMIN = ["/usr/bin/redis-cli", "-s", "/run/redis/redis-server.sock", "--user", "admin", "--askpass"]
SENTINEL = ["timeout", "5", "/usr/bin/redis-cli", "-p", "26379", "--tls", "--askpass"]
PARAMS = {
    "admin_cli": ADMIN,
    "admin_password": "admin-secret-0123456789",  # TEST ONLY
    "sentinel_cli": SENTINEL,
    "sentinel_password": "sentinel-secret-0123456789",  # TEST ONLY
    "sentinels": ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
    "master_name": "celery-fleet",
    "master": "10.0.0.1 6380",
    "timeout_ms": 20000,
}


class Broker:
    """A paused master with two replicas and three Sentinels, each answering after so many calls."""

    def __init__(self, *, sync_after: int = 3, named_after: int = 40, refusing: Sequence[str] = ()) -> None:
        self.now = 0.0
        self.calls: list[tuple[float, list[str]]] = []
        self.sync_after, self.named_after, self.refusing = sync_after, named_after, set(refusing)
        self.infos = self.polls = 0
        self.replicaof = "OK"

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def run(self, argv: Sequence[str], password: str) -> str:
        argv = list(argv)
        self.now += 0.005
        self.calls.append((self.now, argv))
        if argv[: len(ADMIN)] == ADMIN:
            assert password == PARAMS["admin_password"]
            return self.admin(argv[len(ADMIN) :])
        assert argv[: len(SENTINEL)] == SENTINEL and argv[len(SENTINEL)] == "-h"
        assert password == PARAMS["sentinel_password"]
        return self.sentinel(argv[len(SENTINEL) + 1], argv[len(SENTINEL) + 2 :])

    def admin(self, words: list[str]) -> str:
        if words[0] == "INFO":
            self.infos += 1
            behind = 0 if self.infos >= self.sync_after else 120
            return (
                "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n"
                f"slave0:ip=10.0.0.2,port=6380,state=online,offset={5000 - behind},lag=0\r\n"
                "slave1:ip=10.0.0.3,port=6380,state=online,offset=5000,lag=0\r\n"
                "master_repl_offset:5000\r\n"
            )
        if words[0] == "REPLICAOF":
            return self.replicaof
        if words[:2] == ["CLIENT", "KILL"]:
            return "3"
        return "OK"

    def sentinel(self, address: str, words: list[str]) -> str:
        if address in self.refusing:
            return "Could not connect to Redis at " + address + ":26379: Connection refused"
        if words[1] == "FAILOVER":
            return "OK"
        self.polls += 1
        return "10.0.0.3\n6380" if self.polls > self.named_after else "10.0.0.1\n6380"

    def words(self) -> list[str]:
        """Each call as its command words (the argv after the cli and a Sentinel's -h)."""
        out = []
        for _, argv in self.calls:
            if argv[: len(ADMIN)] == ADMIN:
                out.append(" ".join(argv[len(ADMIN) :]))
            else:
                out.append(" ".join(argv[len(SENTINEL) + 2 :]))
        return out


def run(broker: Broker, **params: object) -> object:
    return switchover.Switchover({**PARAMS, **params}, run=broker.run, clock=broker.clock, sleep=broker.sleep)


def assert_paused_throughout(broker: Broker) -> None:
    """Every renewal of the pause came before the previous one ran out, until the unpause."""
    pauses = [t for t, argv in broker.calls if argv[len(ADMIN) :][:2] == ["CLIENT", "PAUSE"]]
    unpause = next(t for t, argv in broker.calls if argv[len(ADMIN) :] == ["CLIENT", "UNPAUSE"])
    for earlier, later in zip(pauses, [*pauses[1:], unpause], strict=True):
        assert later - earlier < switchover.PAUSE_MS / 1000, (earlier, later)


def test_the_steps_run_in_order_with_the_writers_paused_until_the_old_master_follows():
    broker = Broker()
    s = run(broker)

    new = s()

    assert new == ["10.0.0.3", "6380"]
    words = broker.words()
    assert words[0] == "CLIENT PAUSE 2000 WRITE"
    assert words[-5:] == [
        "REPLICAOF 10.0.0.3 6380",
        "CONFIG REWRITE",
        "CLIENT KILL TYPE normal",
        "CLIENT KILL TYPE pubsub",
        "CLIENT UNPAUSE",
    ]
    failover = words.index("SENTINEL FAILOVER celery-fleet")
    assert broker.infos == 3 and words.index("INFO replication") < failover
    # The wait for the new master polled the Sentinel that was asked, and lasted long enough to
    # need renewals of the pause: none let it lapse.
    assert words.count("SENTINEL GET-MASTER-ADDR-BY-NAME celery-fleet") == 41
    assert words.count("CLIENT PAUSE 2000 WRITE") > 3
    assert_paused_throughout(broker)
    assert list(s.steps) == ["in_sync", "failover_asked", "new_master_named", "repointed"]
    assert s.paused_s > 2


def test_no_password_is_in_any_argv():
    broker = Broker()

    run(broker)()

    for _, argv in broker.calls:
        assert PARAMS["admin_password"] not in " ".join(argv)
        assert PARAMS["sentinel_password"] not in " ".join(argv)


@pytest.mark.parametrize(
    ("broker", "why", "steps", "never"),
    [
        (Broker(sync_after=10**9), r"every online one in sync.*3000 ms", [], "FAILOVER"),
        # The module's message then warns that the Sentinels may still promote a replica.
        (
            Broker(named_after=10**9),
            r"new master named by .* 10\.0\.0\.1",
            ["in_sync", "failover_asked"],
            "REPLICAOF",
        ),
    ],
    ids=["a replica never catches up", "no Sentinel names a new master"],
)
def test_a_wait_that_runs_out_stops_it_at_the_bound_paused_until_then_and_unpauses(broker, why, steps, never):
    s = run(broker, timeout_ms=3000)

    with pytest.raises(switchover.SwitchoverError, match=why):
        s()

    words = broker.words()
    assert not any(never in w for w in words)
    assert words[-1] == "CLIENT UNPAUSE"
    assert_paused_throughout(broker)
    assert list(s.steps) == steps
    assert broker.now == pytest.approx(3, abs=0.1)


def test_an_unreachable_first_sentinel_hands_the_failover_to_the_next_one():
    broker = Broker(refusing=["10.0.0.1"])

    run(broker)()

    asked = [argv[len(SENTINEL) + 1] for _, argv in broker.calls if "FAILOVER" in argv]
    polled = {argv[len(SENTINEL) + 1] for _, argv in broker.calls if "GET-MASTER-ADDR-BY-NAME" in argv}
    assert asked == ["10.0.0.1", "10.0.0.2"] and polled == {"10.0.0.2"}


def test_a_refused_replicaof_stops_it_and_unpauses():
    broker = Broker()
    broker.replicaof = "ERR something"

    with pytest.raises(switchover.SwitchoverError, match=r"REPLICAOF 10\.0\.0\.3 answered 'ERR something'"):
        run(broker)()

    assert broker.words()[-1] == "CLIENT UNPAUSE"


def test_replication_reads_the_offset_and_the_replicas():
    offset, replicas = switchover.replication(
        "role:master\r\nslave0:ip=10.0.0.2,port=6380,state=wait_bgsave,offset=0,lag=0\r\nmaster_repl_offset:77\r\n"
    )

    assert offset == 77
    assert replicas == [{"ip": "10.0.0.2", "port": "6380", "state": "wait_bgsave", "offset": "0", "lag": "0"}]
