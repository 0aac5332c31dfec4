"""The deployed fleet, asked through Celery's control API from the ops host."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import (
    LAYOUT,
    QUEUES,
    REDIS,
    WORKERS,
    all_nodes,
    declared,
    inspect,
    node,
    node_name,
    redis_admin,
    workload,
)


@pytest.fixture(scope="module")
def live() -> dict[str, dict[str, Any]]:
    nodes = all_nodes()
    return {"queues": inspect("active_queues", nodes), "stats": inspect("stats", nodes)}


@pytest.mark.parametrize(("host", "worker"), declared(), ids=lambda v: v if isinstance(v, str) else v["name"])
def test_every_declared_worker_runs_with_its_pool_concurrency_and_queues(
    live, host: str, worker: dict[str, Any]
) -> None:
    node = node_name(worker, host)
    stats = live["stats"].get(node)
    assert stats is not None, f"{node} did not answer; answering: {sorted(live['stats'])}"
    pool = stats["pool"]["implementation"].split(":")[0].rsplit(".", 1)[-1]
    concurrency = stats["pool"]["max-concurrency"]
    queues = sorted(q["name"] for q in live["queues"][node])
    print(f"{node}: pool {pool}, concurrency {concurrency}, queues {','.join(queues)}")
    assert (pool, concurrency, queues) == (
        worker.get("pool", "prefork"),
        worker["concurrency"],
        sorted(worker["queues"]),
    )


def test_no_worker_runs_that_the_inventory_does_not_declare(live) -> None:
    assert set(live["stats"]) == all_nodes()


def test_every_queue_has_a_consumer(live) -> None:
    consumed = {q["name"] for replies in live["queues"].values() for q in replies}
    assert set(QUEUES) <= consumed, f"unconsumed: {sorted(set(QUEUES) - consumed)}"


def test_a_task_sent_to_every_queue_runs_on_the_host_that_declares_it() -> None:
    report = workload("--timeout 60 queues")
    expected = {q: node_name(w, h) for h, w in declared() for q in w["queues"]}
    ran = {queue: result.get("hostname", result.get("error")) for queue, result in report["results"].items()}
    for queue, ran_on in sorted(ran.items()):
        print(f"{queue:<15} {ran_on}")
    assert ran == {q: expected[q] for q in QUEUES}


CHORD_QUEUES = ("designer", "composer", "voice")


def test_chord_completes_with_its_parts_on_their_workers_at_the_same_time() -> None:
    # Its speed (wall time against the parts' sum) is bench/b_chord.py's business: a ratio is flaky on
    # a busy 2-core machine. Here: it completes, each part ran on a worker that consumes the part's
    # queue, and the parts overlapped in time (one after the other they would span their sum).
    report = workload("--timeout 60 chord --seconds 2")
    hosts = [part["hostname"] for part in report.get("parts", [])]
    print(
        f"chord wall {report.get('wall_seconds')} s, sum of parts {report.get('sum_of_parts_seconds')} s, "
        f"span {report.get('parts_span_seconds')} s, parts on {hosts}"
    )
    assert report["ok"], report
    consumers = {node_name(w, h) for h, w in declared() if set(CHORD_QUEUES) & set(w["queues"])}
    assert len(report["parts"]) == len(CHORD_QUEUES)
    assert {part["hostname"] for part in report["parts"]} <= consumers, report
    assert report["parts_span_seconds"] < report["sum_of_parts_seconds"], report


def test_services_connect_to_redis_as_their_own_acl_users() -> None:
    users: dict[str, int] = {}
    for line in redis_admin("CLIENT LIST").splitlines():
        fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
        users[fields.get("user", "?")] = users.get(fields.get("user", "?"), 0) + 1
    print(f"Redis connections by ACL user: {users}")
    # Every worker node holds several connections (consumer, pidbox, events); Flower its own.
    assert users.get("worker", 0) >= sum(len(w) for w in WORKERS.values())
    assert users.get("flower", 0) >= 1
    assert users.get("default", 0) == 0


def test_redis_refuses_unauthenticated_clients_on_the_private_address() -> None:
    # From a worker host, over the network, as nobody: the default user is not open.
    result = node("fleet-worker-gpu").run(
        f"{LAYOUT['venv']}/bin/python -c \"import redis; print(redis.Redis(host='{REDIS}').ping())\""
    )
    # redis-py 8 opens with HELLO, which an unauthenticated client may not send.
    assert result.returncode != 0 and "AuthenticationError" in result.stderr, result.stderr[-300:]


@pytest.mark.parametrize(("host", "worker"), declared(), ids=lambda v: v if isinstance(v, str) else v["name"])
def test_every_worker_connection_carries_the_fleets_transport_options(
    live, host: str, worker: dict[str, Any]
) -> None:
    # The example app sets no transport options: what the connection uses came through the fleet's
    # entry module (the scenario's host_vars set a visibility timeout of 20 s on both worker hosts).
    options = live["stats"][node_name(worker, host)]["broker"]["transport_options"]
    print(f"{node_name(worker, host)}: {options}")
    assert options["visibility_timeout"] == 20
    assert "global_keyprefix" not in options  # key scoping is off in the sandbox (the default)
    if worker.get("pool") in ("gevent", "eventlet"):
        assert options["max_connections"] == worker["concurrency"] + 10
