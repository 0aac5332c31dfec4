"""The deployed fleet is the declared one, asked through Celery itself, and it does the work."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import QUEUES, WORKERS, service

DEFAULT_CONCURRENCY = {"prefork": 2, "threads": 4, "gevent": 10, "eventlet": 10, "solo": 1}


@pytest.fixture(scope="module")
def stats(fleet) -> dict[str, Any]:
    return fleet.node.inspect("stats", fleet.nodes())


@pytest.fixture(scope="module")
def active_queues(fleet) -> dict[str, Any]:
    return fleet.node.inspect("active_queues", fleet.nodes())


@pytest.fixture(scope="module")
def pings(fleet) -> dict[str, Any]:
    report = fleet.workload("--timeout 60 queues")
    for queue, result in sorted(report["results"].items()):
        print(f"ping {queue:<14} -> {result.get('hostname') or result.get('error')}")
    return report["results"]


@pytest.mark.parametrize("worker", WORKERS, ids=[w["name"] for w in WORKERS])
def test_worker_node_runs_declared_pool_and_concurrency(fleet, stats, worker):
    node = fleet.node_name(worker)
    assert node in stats, f"{node} did not answer inspect stats; nodes: {sorted(stats)}"
    pool = stats[node]["pool"]
    implementation = pool["implementation"].split(":")[0].rsplit(".", 1)[-1]
    declared_pool = worker.get("pool", "prefork")
    declared_concurrency = worker.get("concurrency", DEFAULT_CONCURRENCY[declared_pool])
    print(f"{node}: pool {implementation}, max-concurrency {pool['max-concurrency']}")
    assert implementation == {"threads": "thread"}.get(declared_pool, declared_pool)
    assert pool["max-concurrency"] == declared_concurrency


def running_argv(node, worker) -> list[str]:
    """The command line of the worker's running main process."""
    pid = node.main_pid(service(worker["name"]))
    assert pid > 0, f"{service(worker['name'])} is not running"
    return node.read(f"/proc/{pid}/cmdline").split("\x00")


@pytest.mark.parametrize(
    "worker", [w for w in WORKERS if "max_memory_per_child" in w], ids=lambda w: w["name"]
)
def test_worker_recycles_children_above_declared_memory(node, worker):
    assert f"--max-memory-per-child={worker['max_memory_per_child']}" in running_argv(node, worker)


@pytest.mark.parametrize("worker", WORKERS, ids=[w["name"] for w in WORKERS])
def test_worker_runs_without_gossip(node, worker):
    """No worker of the scenario sets gossip: true, so none takes in the others' events (n^2 deliveries)."""
    argv = running_argv(node, worker)
    assert "--without-gossip" in argv, argv


@pytest.mark.parametrize("worker", WORKERS, ids=[w["name"] for w in WORKERS])
def test_worker_node_consumes_exactly_its_queues(fleet, active_queues, worker):
    node = fleet.node_name(worker)
    assert node in active_queues, f"{node} did not answer inspect active_queues"
    consumed = sorted(q["name"] for q in active_queues[node])
    assert consumed == sorted(worker["queues"])


def test_every_app_queue_has_a_consumer(active_queues):
    consumed = {q["name"] for replies in active_queues.values() for q in replies}
    assert set(QUEUES) - consumed == set()


@pytest.mark.parametrize("queue", QUEUES)
def test_task_sent_to_queue_runs_on_its_worker(fleet, pings, queue):
    expected = fleet.nodes([w for w in WORKERS if queue in w["queues"]])
    assert pings[queue].get("hostname") in expected, pings[queue]


CHORD_WORKER = next(w for w in WORKERS if w.get("pool") == "gevent")


def test_chord_completes_with_its_parts_running_together_on_the_gevent_worker(fleet):
    # How fast is bench/b_chord.py's business (a wall/sum ratio is flaky on a busy 2-core machine);
    # here: the chord completes, and its parts overlapped in time on the one gevent worker.
    report = fleet.workload("--timeout 60 chord --seconds 2")
    print(
        f"chord: wall {report['wall_seconds']} s, sum of parts {report['sum_of_parts_seconds']} s, "
        f"ratio {report['ratio']}, parts span {report['parts_span_seconds']} s"
    )
    assert report["ok"], report
    assert {part["hostname"] for part in report["parts"]} == {fleet.node_name(CHORD_WORKER)}, report
    # Run one after the other, the parts would span at least their sum.
    assert report["parts_span_seconds"] < report["sum_of_parts_seconds"], report


GREEN = [w for w in WORKERS if w.get("pool") in ("gevent", "eventlet")]


@pytest.mark.parametrize("worker", GREEN, ids=[w["name"] for w in GREEN])
def test_green_pool_worker_runs_prefetch_2_and_a_connection_pool_above_its_greenlets(fleet, stats, worker):
    # kombu's default of 10 connections per channel fails acks once more than 10 greenlets finish
    # together; a prefetch multiplier of 1 stalls the green-pool loop (bench/README.md).
    node = fleet.node_name(worker)
    conf = fleet.node.inspect("conf", {node})[node]
    concurrency = worker.get("concurrency", DEFAULT_CONCURRENCY[worker["pool"]])
    options = conf["broker_transport_options"]
    print(f"{node}: broker_transport_options {options}, prefetch_count {stats[node]['prefetch_count']}")
    assert options["max_connections"] == concurrency + 10
    # Merged by the fleet's entry module with the fleet's other options: the ACL key prefix is
    # still there. `inspect conf` masks settings whose name contains "key"; the burst below runs
    # under the ACL's ~cf:*.
    assert options["global_keyprefix"]
    assert options["visibility_timeout"] == 3600
    assert stats[node]["prefetch_count"] == 2 * concurrency


@pytest.mark.parametrize("worker", GREEN, ids=[w["name"] for w in GREEN])
def test_green_pool_worker_acks_a_burst_without_connection_errors(fleet, worker):
    since = fleet.node.now() if fleet.manager == "systemd" else None
    report = fleet.workload(f"--timeout 60 noop --count 300 --queue {worker['queues'][0]}")
    print(f"{worker['name']}: {report['done']} of {report['count']} no-ops, {report['tasks_per_second']}/s")
    assert report["ok"], report
    logs = fleet.node.logs(service(worker["name"]), since=since)
    assert "MaxConnectionsError" not in logs
    assert "Couldn't ack" not in logs
