"""live_errors: the declared fleet compared with what Celery's control API reports."""

from __future__ import annotations

import pytest
from celery_fleet.live import (
    declared_concurrency,
    live_errors,
    pool_name,
    silent_services,
    verify_errors,
    verify_nodes,
)

WORKERS = {
    "w1": [
        {"name": "io", "queues": ["designer", "voice"], "pool": "gevent", "concurrency": 10},
        {"name": "train", "queues": ["training"], "concurrency": 1},
    ]
}
NODES = {"w1": "w1.dc1.example"}


def reply(pool: str, concurrency: int, *queues: str) -> tuple[list[dict], dict]:
    return [{"name": q} for q in queues], {"pool": {"implementation": pool, "max-concurrency": concurrency}}


def fleet(**overrides: tuple[list[dict], dict]) -> tuple[dict, dict]:
    nodes = {
        "io@w1.dc1.example": reply("celery.concurrency.gevent:TaskPool", 10, "voice", "designer"),
        "train@w1.dc1.example": reply("celery.concurrency.prefork:TaskPool", 1, "training"),
    }
    nodes.update(overrides)
    return {n: r[0] for n, r in nodes.items()}, {n: r[1] for n, r in nodes.items()}


@pytest.mark.parametrize(
    ("implementation", "expected"),
    [
        ("celery.concurrency.prefork:TaskPool", "prefork"),
        ("celery.concurrency.gevent:TaskPool", "gevent"),
        ("celery.concurrency.thread:TaskPool", "threads"),
        ("celery.concurrency.solo:TaskPool", "solo"),
        ("celery.concurrency.eventlet:TaskPool", "eventlet"),
    ],
)
def test_pool_name_from_stats_implementation(implementation, expected):
    assert pool_name(implementation) == expected


def test_declared_concurrency_is_autoscale_max_when_set():
    assert declared_concurrency({"autoscale": [8, 2], "concurrency": None}) == 8
    assert declared_concurrency({"autoscale": None, "concurrency": 4}) == 4


def test_fleet_as_declared_has_no_errors():
    active, stats = fleet()

    assert live_errors(WORKERS, NODES, active, stats, ["designer", "voice", "training"]) == []


def test_missing_node_is_named():
    active, stats = fleet()
    del active["train@w1.dc1.example"], stats["train@w1.dc1.example"]

    errors = live_errors(WORKERS, NODES, active, stats)

    assert len(errors) == 1
    assert errors[0].startswith("host 'w1', worker 'train' (node train@w1.dc1.example): did not answer")


def test_wrong_pool_is_named():
    active, stats = fleet(
        **{"io@w1.dc1.example": reply("celery.concurrency.solo:TaskPool", 10, "designer", "voice")}
    )

    errors = live_errors(WORKERS, NODES, active, stats)

    assert errors == [
        "host 'w1', worker 'io' (node io@w1.dc1.example): declared pool gevent, running pool solo"
    ]


def test_wrong_concurrency_is_named():
    active, stats = fleet(
        **{"train@w1.dc1.example": reply("celery.concurrency.prefork:TaskPool", 8, "training")}
    )

    errors = live_errors(WORKERS, NODES, active, stats)

    assert errors == [
        "host 'w1', worker 'train' (node train@w1.dc1.example): declared concurrency 1, running concurrency 8"
    ]


def test_other_queues_are_named():
    active, stats = fleet(
        **{"train@w1.dc1.example": reply("celery.concurrency.prefork:TaskPool", 1, "celery")}
    )

    errors = live_errors(WORKERS, NODES, active, stats)

    assert errors == [
        "host 'w1', worker 'train' (node train@w1.dc1.example): declared queues training, consuming celery"
    ]


def test_queue_without_consumer_is_named():
    active, stats = fleet()

    errors = live_errors(WORKERS, NODES, active, stats, ["training", "extraction", "low_priority"])

    assert errors == ["celery_queues: no running worker consumes extraction, low_priority"]


def test_absent_workers_are_not_expected():
    workers = {"w1": [*WORKERS["w1"], {"name": "old", "queues": ["x"], "state": "absent"}]}
    active, stats = fleet()

    assert live_errors(workers, NODES, active, stats) == []


def test_node_name_uses_the_hosts_nodename_and_custom_hostname():
    workers = {
        "w1": [{"name": "hp", "queues": ["high_priority"], "concurrency": 8, "hostname": "worker-hp@%n"}]
    }
    active, stats = fleet(
        **{"worker-hp@w1": reply("celery.concurrency.prefork:TaskPool", 8, "high_priority")}
    )

    assert live_errors(workers, NODES, active, stats) == []


def test_no_reply_at_all_names_every_worker():
    errors = live_errors(WORKERS, NODES, None, None)

    assert len(errors) == 2
    assert all("did not answer" in e for e in errors)


def test_transport_options_that_did_not_reach_a_worker_are_named():
    # Arrange: the gevent worker runs with the fleet's options and its pool size; the prefork
    # worker kept kombu's default visibility timeout (started without the fleet's entry module).
    queues, stats = fleet()
    stats["io@w1.dc1.example"]["broker"] = {
        "transport_options": {"visibility_timeout": 7200, "max_connections": 20, "socket_keepalive": True}
    }
    stats["train@w1.dc1.example"]["broker"] = {"transport_options": {}}

    # Act
    errors = live_errors(
        WORKERS, NODES, queues, stats, visibility_by_host={"w1": 7200}, prefix_by_host={"w1": ""}
    )

    # Assert
    assert errors == [
        "host 'w1', worker 'train' (node train@w1.dc1.example): broker transport option visibility_timeout "
        "is not set (the fleet sets 7200)"
    ]


def test_a_green_workers_pool_size_is_checked_too():
    # Arrange
    queues, stats = fleet()
    stats["io@w1.dc1.example"]["broker"] = {
        "transport_options": {"visibility_timeout": 60, "max_connections": 10}
    }
    stats["train@w1.dc1.example"]["broker"] = {"transport_options": {"visibility_timeout": 60}}

    # Act
    errors = live_errors(WORKERS, NODES, queues, stats, visibility_by_host={"w1": 60})

    # Assert
    assert errors == [
        "host 'w1', worker 'io' (node io@w1.dc1.example): broker transport option max_connections is 10, "
        "the inventory says 20"
    ]


# --- One verification over the hosts of a batch -----------------------------------------------------
ENTRIES = [
    {
        "host": "w1",
        "nodename": "w1.dc1.example",
        "workers": WORKERS["w1"],
        "nodes": ["io@w1.dc1.example", "train@w1.dc1.example"],
        "services": ["shop-worker-io", "shop-worker-train"],
        "manager": "supervisord",
        "visibility_timeout": None,
        "key_prefix": "",
    },
    {"host": "w2", "nodename": "w2", "workers": [], "nodes": [], "services": []},
]


def test_verify_nodes_in_host_order():
    assert verify_nodes(ENTRIES) == ["io@w1.dc1.example", "train@w1.dc1.example"]


def test_verify_errors_is_live_errors_per_host():
    active, stats = fleet()
    assert verify_errors(ENTRIES, active, stats, ["training"]) == live_errors(
        WORKERS,
        NODES,
        active,
        stats,
        ["training"],
        {"w1": None, "w2": None},
        {"w1": "", "w2": ""},
        {"w1": {"sentinels": None, "master_name": None}, "w2": {"sentinels": None, "master_name": None}},
    )
    del active["train@w1.dc1.example"]
    assert (
        "host 'w1', worker 'train' (node train@w1.dc1.example): did not answer the control API "
        "(is its service running?)"
    ) in verify_errors(ENTRIES, active, stats)


def test_a_sentinel_workers_options_are_checked_and_its_sentinel_password_never_shown():
    # Arrange: the io worker runs as the builder configures it; train lost its Sentinel settings.
    from celery_fleet.broker import connection

    built = connection("x", sentinels=["s1:26379"], sentinel_password="sent-pw")["transport_options"][
        "broker"
    ]
    entries = [{**ENTRIES[0], "sentinels": ["s1:26379"], "master_name": "celery-fleet"}]
    active, stats = fleet()
    stats["io@w1.dc1.example"]["broker"] = {"transport_options": {**built, "max_connections": 20}}
    stats["train@w1.dc1.example"]["broker"] = {
        "transport_options": {"visibility_timeout": 3600, "sentinel_kwargs": {"password": "old-pw"}}
    }

    # Act
    errors = verify_errors(entries, active, stats)

    # Assert: one error per missing option of train, none for io, no password anywhere.
    assert errors
    assert all("worker 'train'" in e for e in errors)
    assert any("master_name is not set (the fleet sets 'celery-fleet')" in e for e in errors)
    assert not any("pw" in e for e in errors)


def test_a_tls_sentinel_worker_must_reach_the_sentinels_with_tls_and_no_value_is_shown():
    # Arrange: io runs as the builder configures it with TLS (its sentinel_kwargs reduced to key names
    # by the live check, as it leaves the host); train has a Sentinel password but no TLS keys.
    from celery_fleet.broker import SECRET_SET, connection

    built = connection(
        "x", sentinels=["s1:26379"], sentinel_password="sent-pw", tls=True, tls_ca_file="/etc/shop/tls/ca.crt"
    )["transport_options"]["broker"]
    reported = {**built, "sentinel_kwargs": dict.fromkeys(built["sentinel_kwargs"], SECRET_SET)}
    entries = [{**ENTRIES[0], "sentinels": ["s1:26379"], "master_name": "celery-fleet", "tls": True}]
    active, stats = fleet()
    stats["io@w1.dc1.example"]["broker"] = {"transport_options": {**reported, "max_connections": 20}}
    stats["train@w1.dc1.example"]["broker"] = {
        "transport_options": {**built, "sentinel_kwargs": {"password": "old-pw", "retry": None}}
    }

    # Act
    errors = verify_errors(entries, active, stats)
    without_tls = verify_errors([{**entries[0], "tls": False}], active, stats)

    # Assert
    assert errors == [
        "host 'w1', worker 'train' (node train@w1.dc1.example): broker transport option sentinel_kwargs "
        "has no ssl, ssl_cert_reqs, ssl_ca_certs: the worker reaches the Sentinels without TLS (the fleet "
        "sets them with TLS on)"
    ]
    assert without_tls == []
    assert not any("pw" in e or "/etc/shop" in e for e in errors)


def test_silent_services_name_their_host_and_manager():
    active, _ = fleet()
    assert silent_services(ENTRIES, active) == []
    del active["io@w1.dc1.example"]
    assert silent_services(ENTRIES, active) == [
        {"host": "w1", "service": "shop-worker-io", "manager": "supervisord"}
    ]
    assert len(silent_services(ENTRIES, None)) == 2
