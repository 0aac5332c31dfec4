"""The workers' live check: its process on the host (roles/celery_worker/files/celery_fleet_live.py,
driven here with a stand-in for Celery's control API and a fake clock) and the controller's side
(lib/celery_fleet/live.py: the request it sends, the reply it parses, the messages it builds). The
real broker round trips run in molecule/workers, workers_supervisord and fleet."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from celery_fleet import broker
from celery_fleet.live import check_errors, live_check_reply, live_check_request

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "celery_worker" / "files" / "celery_fleet_live.py"
_spec = importlib.util.spec_from_file_location("celery_fleet_live", SCRIPT)
assert _spec is not None and _spec.loader is not None
live_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(live_check)

A, B = "worker-a@h1", "worker-b@h1"
PREFORK = {"implementation": "celery.concurrency.prefork:TaskPool", "max-concurrency": 2, "processes": [1, 2]}


def request(**changes: Any) -> dict[str, Any]:
    return {
        "nodes": {A: ["a"], B: ["b1", "b2"]},
        "destination": True,
        "queues": [],
        "timeout": 2,
        "delay": 2,
        "deadline": 20,
        **changes,
    }


def queues(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "exchange": {"name": n}, "routing_key": n} for n in names]


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


class FakeCelery:
    """Scripted replies per round: each round answers from the next item of ``rounds[command]``
    (a mapping node -> reply, or an exception to raise), restricted to the nodes asked, and costs
    ``timeout`` seconds when some node asked did not answer (a broadcast's wait), else 0.1 s."""

    def __init__(self, time: FakeTime, rounds: dict[str, list[Any]]) -> None:
        self.time = time
        self.rounds = rounds
        self.asked: list[tuple[str, list[str] | None]] = []

    def ask(self, command: str, nodes: list[str] | None, timeout: float) -> dict[str, Any]:
        self.asked.append((command, nodes))
        script = self.rounds[command]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            self.time.now += 1
            raise answer
        replies = {n: r for n, r in answer.items() if nodes is None or n in nodes}
        self.time.now += timeout if nodes is None or set(nodes) - set(replies) else 0.1
        return replies


def run(req: dict[str, Any], rounds: dict[str, list[Any]]) -> tuple[dict[str, Any], FakeCelery, FakeTime]:
    fake_time = FakeTime()
    celery = FakeCelery(fake_time, rounds)
    checked = live_check.read_request(json.dumps(req))
    return live_check.check(checked, celery.ask, fake_time.clock, fake_time.sleep), celery, fake_time


def test_answers_at_once_take_one_round_each():
    result, celery, _ = run(
        request(),
        {
            "active_queues": [{A: queues("a"), B: queues("b2", "b1")}],
            "stats": [{A: {"pool": PREFORK}, B: {}}],
        },
    )
    assert celery.asked == [("active_queues", [A, B]), ("stats", [A, B])]
    assert result["active_queues"] == {A: [{"name": "a"}], B: [{"name": "b1"}, {"name": "b2"}]}
    assert result["stats"][A] == {"pool": {"implementation": PREFORK["implementation"], "max-concurrency": 2}}
    assert result["rounds"] == 2
    assert result["error"] is None


def test_a_late_node_is_asked_again_alone_until_it_answers():
    result, celery, fake_time = run(
        request(),
        {"active_queues": [{A: queues("a")}, {}, {B: queues("b1", "b2")}], "stats": [{A: {}, B: {}}]},
    )
    assert [nodes for command, nodes in celery.asked if command == "active_queues"] == [[A, B], [B], [B]]
    assert set(result["active_queues"]) == {A, B}
    # Two rounds that waited their 2 s timeout, no pause after them, then one answered round.
    assert fake_time.now - 100.0 == pytest.approx(2 + 2 + 0.1 + 0.1)


def test_other_queues_than_declared_are_asked_again_after_the_delay():
    result, celery, fake_time = run(
        request(deadline=5),
        {"active_queues": [{A: queues("a"), B: queues("b1")}], "stats": [{A: {}, B: {}}]},
    )
    queue_rounds = [c for c in celery.asked if c[0] == "active_queues"]
    assert queue_rounds[0] == ("active_queues", [A, B])
    assert all(nodes == [B] for _, nodes in queue_rounds[1:])
    assert len(queue_rounds) == 4  # at 0, 2 and 4 s, and a last one at the deadline (5 s)
    # What it answered is what the controller compares: the difference is named there.
    assert result["active_queues"][B] == [{"name": "b1"}]
    assert fake_time.now - 100.0 == pytest.approx(5.1, abs=0.2)


def test_stats_are_asked_once_even_when_the_deadline_passed():
    result, celery, _ = run(request(deadline=1), {"active_queues": [{}], "stats": [{}]})
    assert [c[0] for c in celery.asked] == ["active_queues", "stats"]
    assert result["active_queues"] == {}
    assert result["stats"] == {}


def test_a_broker_failure_is_retried_and_reported_only_if_it_lasts():
    result, _, _ = run(
        request(),
        {"active_queues": [ConnectionError("Error 111 connecting"), {A: queues("a"), B: queues("b1", "b2")}],
         "stats": [{A: {}, B: {}}]},
    )  # fmt: skip
    assert result["error"] is None
    unreachable = OSError("No route to host")
    result, _, _ = run(request(deadline=3), {"active_queues": [unreachable], "stats": [unreachable]})
    assert result["error"] == "OSError: No route to host"


def test_coverage_is_waited_for_only_when_every_node_is_asked():
    other = "other@h2"
    result, celery, _ = run(
        request(nodes={A: ["a"]}, destination=False, queues=["a", "z"]),
        {"active_queues": [{A: queues("a")}, {A: queues("a"), other: queues("z")}], "stats": [{A: {}}]},
    )
    assert celery.asked[:2] == [("active_queues", None), ("active_queues", None)]
    assert set(result["active_queues"]) == {A, other}
    assert set(result["stats"]) == {A}
    # With a destination the declared nodes answered as declared: no wait for a queue they lack.
    _, celery, _ = run(
        request(nodes={A: ["a"]}, queues=["z"]), {"active_queues": [{A: queues("a")}], "stats": [{A: {}}]}
    )
    assert [c[0] for c in celery.asked] == ["active_queues", "stats"]


def test_no_declared_node_and_no_coverage_asks_nothing():
    result, celery, _ = run(request(nodes={}), {"active_queues": [{}], "stats": [{}]})
    assert celery.asked == []
    assert result["error"] is None


def test_the_sentinel_password_never_leaves_the_host():
    stats = {
        "pool": PREFORK,
        "broker": {
            "transport_options": {
                "master_name": "m",
                "sentinel_kwargs": {"password": "s3cret", "socket_timeout": 1},
            },
            "alternates": ["sentinel://:s3cret@h2:26379"],
            "hostname": "h1",
        },
        "rusage": {"maxrss": 1},
    }
    reduced = live_check.reduced_stats(stats)
    assert "s3cret" not in json.dumps(reduced)
    assert reduced["broker"] == {
        "transport_options": {
            "master_name": "m",
            "sentinel_kwargs": {"password": live_check.NOT_SHOWN, "socket_timeout": live_check.NOT_SHOWN},
        }
    }
    # The controller still tells a set sentinel_kwargs from a missing one.
    expected = {"sentinel_kwargs": broker.SECRET_SET}
    assert broker.option_errors("w", expected, reduced["broker"]["transport_options"]) == []
    assert broker.option_errors(
        "w",
        expected,
        live_check.reduced_stats({"broker": {"transport_options": {}}})["broker"]["transport_options"],
    )


def test_secret_options_match_the_controller():
    assert live_check.SECRET_OPTIONS == broker.SECRET_OPTIONS
    assert live_check.NOT_SHOWN == broker.SECRET_SET


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not JSON"),
        ("[]", "'nodes'"),
        ('{"nodes": {"a@h": "q"}, "timeout": 1, "delay": 1, "deadline": 1}', "node 'a@h'"),
        ('{"nodes": {}, "timeout": true, "delay": 1, "deadline": 1}', "'timeout'"),
        ('{"nodes": {}, "timeout": 1, "delay": -1, "deadline": 1}', "'delay'"),
        ('{"nodes": {}, "timeout": 1, "delay": 1, "deadline": 1, "queues": "q"}', "'queues'"),
    ],
)
def test_a_bad_request_is_refused(text, message):
    with pytest.raises(live_check.RequestError, match=message):
        live_check.read_request(text)


# --- The controller's side -------------------------------------------------------------------------

ENTRY = {
    "host": "h1",
    "nodename": "h1",
    "workers": [
        {"name": "a", "queues": ["a"], "concurrency": 2, "hostname": "worker-a@%h"},
        {"name": "b", "queues": ["b2", "b1"], "concurrency": 1, "hostname": "worker-b@%h"},
    ],
    "nodes": [A, B],
    "services": ["app-worker-a", "app-worker-b"],
}


def test_request_names_each_node_with_its_queues_and_a_deadline_as_long_as_the_retries():
    req = live_check_request([ENTRY], True, None, 2, 15, 2)
    assert req == {
        "nodes": {A: ["a"], B: ["b1", "b2"]},
        "destination": True,
        "queues": [],
        "timeout": 2.0,
        "delay": 2.0,
        "deadline": 16 * 2 + 15 * 2,
    }
    # The process accepts what the controller sends.
    assert live_check.read_request(json.dumps(req))["nodes"] == req["nodes"]


def test_reply_is_read_from_the_last_line():
    printed = '{"active_queues": {"x@h": []}, "stats": {}, "rounds": 3, "seconds": 4.2, "error": null}'
    assert live_check_reply(f"a banner line\n{printed}\n") == {
        "active_queues": {"x@h": []},
        "stats": {},
        "rounds": 3,
        "seconds": 4.2,
        "error": None,
    }


@pytest.mark.parametrize("stdout", ["", "Traceback ...", "{not json", None])
def test_no_result_gives_empty_replies_and_says_why(stdout):
    reply = live_check_reply(
        stdout, "Traceback (most recent call last):\n...\nModuleNotFoundError: No module named 'x'\n", 1
    )
    assert reply["active_queues"] == {} and reply["stats"] == {}
    assert (
        reply["error"]
        == "the live check printed no result (exit status 1): ModuleNotFoundError: No module named 'x'"
    )


def test_check_errors_name_the_worker_the_field_and_both_values():
    stats = {
        A: {"pool": {"implementation": "celery.concurrency.gevent:TaskPool", "max-concurrency": 2}},
        B: {"pool": {"implementation": "celery.concurrency.prefork:TaskPool", "max-concurrency": 3}},
    }
    reply = {"active_queues": {A: [{"name": "a"}], B: [{"name": "b1"}]}, "stats": stats, "error": None}
    errors = check_errors([{**ENTRY, "visibility_timeout": None}], reply)
    assert "host 'h1', worker 'a' (node worker-a@h1): declared pool prefork, running pool gevent" in errors
    assert "host 'h1', worker 'b' (node worker-b@h1): declared concurrency 1, running concurrency 3" in errors
    assert "host 'h1', worker 'b' (node worker-b@h1): declared queues b1,b2, consuming b1" in errors


def test_check_errors_lead_with_why_the_check_could_not_ask():
    reply = live_check_reply("", "redis.exceptions.AuthenticationError: invalid username-password pair", 1)
    errors = check_errors([ENTRY], reply)
    assert errors[0] == (
        "host 'h1': the live check could not ask every worker through Celery: the live check printed no "
        "result (exit status 1): redis.exceptions.AuthenticationError: invalid username-password pair"
    )
    assert errors[1:] == [
        "host 'h1', worker 'a' (node worker-a@h1): did not answer the control API (is its service running?)",
        "host 'h1', worker 'b' (node worker-b@h1): did not answer the control API (is its service running?)",
    ]
    # An error that did not matter (every worker answered as declared) is not reported.
    assert check_errors([], {"active_queues": {}, "stats": {}, "error": "OSError: x"}) == []
