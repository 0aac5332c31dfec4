"""Unit tests of celery_fleet.validation.validate_fleet: one case per fleet rule, message checked."""

import pytest
from celery_fleet.validation import DEFAULT_VISIBILITY_TIMEOUT, validate_fleet

SEED_002_QUEUES = ["high_priority", "datasets", "processing", "training", "extraction", "low_priority"]


def seed_002_fleet():
    """The six specialized workers of seed 002 plus the gevent worker of seed 000's chord queues."""
    return {
        "cpu1": [
            {"name": "high-priority", "queues": ["high_priority"], "concurrency": 8},
            {"name": "datasets", "queues": ["datasets"], "concurrency": 4},
            {"name": "processing", "queues": ["processing"], "concurrency": 4},
            {"name": "low-priority", "queues": ["low_priority"], "concurrency": 2},
            {"name": "io", "queues": ["designer", "composer", "voice", "director"], "pool": "gevent"},
        ],
        "gpu1": [
            {"name": "training", "queues": ["training"], "concurrency": 1, "max_memory_per_child": 4000000},
            {
                "name": "extraction",
                "queues": ["extraction"],
                "concurrency": 2,
                "max_memory_per_child": 2000000,
            },
        ],
    }


def validate(workers_by_host, queues=None, visibility_timeout=None, beat_hosts=(), broker_by_host=None):
    return validate_fleet(workers_by_host, queues, visibility_timeout, list(beat_hosts), broker_by_host)


def test_seed_fleet_is_valid():
    # Arrange
    fleet = seed_002_fleet()

    # Act
    errors = validate(fleet, SEED_002_QUEUES, 7200, ["cpu1"])

    # Assert
    assert errors == []


def test_per_worker_rule_is_reported_with_host():
    # Arrange
    fleet = {"w1": [{"name": "io", "queues": ["a"], "pool": "fork"}]}

    # Act
    errors = validate(fleet)

    # Assert
    assert errors == [
        "worker 'io' on host 'w1': field 'pool': "
        "'fork' is not one of prefork, gevent, eventlet, threads, solo"
    ]


def test_every_problem_of_every_host_is_returned():
    # Arrange
    fleet = {
        "w1": [{"name": "a", "queues": []}, {"name": "b", "queues": ["q"], "concurrency": 0}],
        "w2": [{"name": "c", "queues": ["q"], "pool": "solo"}],
    }

    # Act
    errors = validate(fleet, ["q", "missing"])

    # Assert
    assert len(errors) == 4
    assert errors[0].startswith("worker 'a' on host 'w1': field 'queues'")
    assert errors[1].startswith("worker 'b' on host 'w1': field 'concurrency'")
    assert errors[2].startswith("worker 'c' on host 'w2': field 'pool'")
    assert "queue 'missing'" in errors[3]


def test_unnamed_worker_is_named_by_position():
    errors = validate({"w1": [{"name": "a", "queues": ["q"]}, {"queues": ["q"]}]})

    assert errors == ["worker #2 on host 'w1': field 'name': is required"]


def test_worker_that_is_not_a_mapping():
    errors = validate({"w1": ["io"]})

    assert errors == ["worker #1 on host 'w1': field 'celery_workers': 'io' is not a mapping (a worker spec)"]


def test_host_worker_list_that_is_not_a_list():
    errors = validate({"w1": {"name": "io"}})

    assert errors == ["host 'w1': field 'celery_workers': is not a list of worker mappings"]


def test_duplicate_worker_names_on_one_host():
    # Arrange
    fleet = {"w1": [{"name": "io", "queues": ["a"]}, {"name": "io", "queues": ["b"], "state": "absent"}]}

    # Act
    errors = validate(fleet)

    # Assert
    assert errors == [
        "worker 'io' on host 'w1': field 'name': 'io' is declared 2 times; "
        "worker names must be unique per host (each names a service)"
    ]


def test_same_worker_name_on_two_hosts_is_fine():
    assert validate({"w1": [{"name": "io", "queues": ["a"]}], "w2": [{"name": "io", "queues": ["a"]}]}) == []


def test_duplicate_node_name_across_hosts():
    # Arrange: a fixed host part makes both workers 'io@gpu'
    fleet = {
        "w1": [{"name": "io", "queues": ["a"], "hostname": "io@gpu"}],
        "w2": [{"name": "io", "queues": ["a"], "hostname": "io@gpu"}],
    }

    # Act
    errors = validate(fleet)

    # Assert
    assert errors == [
        "worker 'io' on host 'w2': field 'hostname': 'io@gpu' expands to node name 'io@gpu', as does worker "
        "'io' on host 'w1'; node names must be unique in the fleet (use %h in hostname)"
    ]


def test_duplicate_node_name_on_one_host_from_explicit_hostnames():
    fleet = {
        "w1": [
            {"name": "a", "queues": ["q"], "hostname": "x@%h"},
            {"name": "b", "queues": ["q"], "hostname": "x@%h"},
        ]
    }

    errors = validate(fleet)

    assert len(errors) == 1
    assert "worker 'b' on host 'w1': field 'hostname'" in errors[0]
    assert "node name 'x@w1'" in errors[0]


def test_short_name_expansion_collides_across_domains():
    # Arrange: %n is the first label of the host name: both hosts are 'node1'
    fleet = {
        "node1.dc1.example": [{"name": "io", "queues": ["a"], "hostname": "io@%n"}],
        "node1.dc2.example": [{"name": "io", "queues": ["a"], "hostname": "io@%n"}],
    }

    # Act
    errors = validate(fleet)

    # Assert
    assert len(errors) == 1
    assert "node name 'io@node1'" in errors[0]


def test_absent_workers_take_part_in_no_fleet_rule():
    # Arrange: an absent worker with a colliding node name, a long time limit and -B
    fleet = {
        "w1": [{"name": "io", "queues": ["a"], "hostname": "io@x"}],
        "w2": [
            {
                "name": "io",
                "queues": ["a"],
                "hostname": "io@x",
                "time_limit": 99999,
                "extra_args": ["-B"],
                "state": "absent",
            }
        ],
    }

    # Act / Assert
    assert validate(fleet, ["a"], 3600, ["w1"]) == []


def test_queue_consumed_by_no_worker():
    # Arrange
    fleet = seed_002_fleet()
    fleet["gpu1"] = []

    # Act
    errors = validate(fleet, SEED_002_QUEUES)

    # Assert
    assert errors == [
        f"field 'celery_queues': queue '{q}' is consumed by no present worker on any host; "
        "tasks routed to it would wait forever: add it to some worker's queues"
        for q in ("training", "extraction")
    ]


def test_queue_consumed_only_by_an_absent_worker_is_not_covered():
    errors = validate({"w1": [{"name": "io", "queues": ["a"], "state": "absent"}]}, ["a"])

    assert errors == [
        "field 'celery_queues': queue 'a' is consumed by no present worker on any host; tasks routed to it "
        "would wait forever: add it to some worker's queues"
    ]


def test_invalid_queue_name_in_celery_queues():
    assert validate({}, ["a b"]) == ["field 'celery_queues': 'a b' is not a valid queue name"]


def test_queue_coverage_skipped_without_celery_queues():
    assert validate({"w1": [{"name": "io", "queues": ["a"]}]}, None) == []


@pytest.mark.parametrize(("time_limit", "timeout"), [(3600, 3600), (7200, 3600), (1000000, 3600)])
def test_visibility_timeout_not_above_time_limit(time_limit, timeout):
    # Arrange
    fleet = {"w1": [{"name": "training", "queues": ["t"], "time_limit": time_limit}]}

    # Act
    errors = validate(fleet, visibility_timeout=timeout)

    # Assert
    assert errors == [
        f"worker 'training' on host 'w1': field 'time_limit': {time_limit} s is not below "
        f"celery_broker_visibility_timeout {timeout} s (host 'w1', same broker): a task running longer is "
        f"delivered again and runs twice; raise the visibility timeout above {time_limit}"
    ]


def test_visibility_timeout_unset_means_kombu_default():
    # Arrange
    fleet = {"w1": [{"name": "training", "queues": ["t"], "time_limit": DEFAULT_VISIBILITY_TIMEOUT}]}

    # Act
    errors = validate(fleet, visibility_timeout=None)

    # Assert
    assert len(errors) == 1
    assert f"celery_broker_visibility_timeout {DEFAULT_VISIBILITY_TIMEOUT} s" in errors[0]


def test_visibility_timeout_above_time_limit_is_fine():
    assert (
        validate({"w1": [{"name": "t", "queues": ["t"], "time_limit": 3599}]}, visibility_timeout=3600) == []
    )


def test_visibility_timeout_shortest_client_of_a_broker_counts():
    # Arrange: w2 sets a short timeout on the same broker; its restore re-delivers w1's long task
    fleet = {
        "w1": [{"name": "t", "queues": ["t"], "time_limit": 1000}],
        "w2": [{"name": "q", "queues": ["q"]}],
    }

    # Act
    errors = validate(fleet, visibility_timeout={"w1": 7200, "w2": 600})

    # Assert
    assert len(errors) == 1
    assert errors[0].startswith("worker 't' on host 'w1': field 'time_limit': 1000 s is not below")
    assert "celery_broker_visibility_timeout 600 s (host 'w2', same broker)" in errors[0]


def test_visibility_timeout_only_compared_within_one_broker():
    # Arrange: the short timeout belongs to another broker
    fleet = {
        "w1": [{"name": "t", "queues": ["t"], "time_limit": 1000}],
        "w2": [{"name": "q", "queues": ["q"]}],
    }
    brokers = {"w1": "redis-a:6379", "w2": "redis-b:6379"}

    # Act
    errors = validate(fleet, visibility_timeout={"w1": 7200, "w2": 600}, broker_by_host=brokers)

    # Assert
    assert errors == []


@pytest.mark.parametrize("timeout", [0, "3600", True])
def test_visibility_timeout_type(timeout):
    errors = validate({"w1": [{"name": "t", "queues": ["t"]}]}, visibility_timeout=timeout)

    assert errors == [
        f"host 'w1': field 'celery_broker_visibility_timeout': {timeout!r} is not an integer >= 1 (seconds)"
    ]


def test_more_than_one_beat_host():
    # Act
    errors = validate({}, beat_hosts=["b1", "b2"])

    # Assert
    assert errors == [
        "field 'celery_beat': 2 hosts ('b1', 'b2') run beat; at most 1 is allowed: "
        "every beat sends each periodic task, so they would run once per beat"
    ]


def test_embedded_beat_while_a_beat_host_exists():
    # Arrange
    fleet = {"w1": [{"name": "io", "queues": ["a"], "extra_args": ["-B"]}]}

    # Act
    errors = validate(fleet, beat_hosts=["b1"])

    # Assert
    assert errors == [
        "worker 'io' on host 'w1': field 'extra_args': "
        "'-B' embeds a beat while group celery_beat has 'b1'; remove it"
    ]


def test_embedded_beat_on_two_workers():
    # Arrange
    fleet = {
        "w1": [{"name": "io", "queues": ["a"], "extra_args": ["--beat"]}],
        "w2": [{"name": "cpu", "queues": ["a"], "extra_args": ["-B"]}],
    }

    # Act
    errors = validate(fleet)

    # Assert
    assert errors == [
        "worker 'io' on host 'w1': field 'extra_args': "
        "'-B' is also set on 'cpu' on 'w2'; at most 1 worker in the fleet may embed beat",
        "worker 'cpu' on host 'w2': field 'extra_args': "
        "'-B' is also set on 'io' on 'w1'; at most 1 worker in the fleet may embed beat",
    ]


def test_one_embedded_beat_without_beat_hosts_is_fine():
    assert validate({"w1": [{"name": "io", "queues": ["a"], "extra_args": ["-B"]}]}) == []


def test_beat_after_config_separator_is_not_a_flag():
    fleet = {"w1": [{"name": "io", "queues": ["a"], "extra_args": ["--", "beat_max_loop_interval=5"]}]}

    assert validate(fleet, beat_hosts=["b1"]) == []


def test_beat_hosts_not_a_list():
    assert validate_fleet({}, None, None, "b1") == [
        "field 'celery_beat': 'b1' is not a list of inventory hosts"
    ]


def test_workers_by_host_not_a_mapping():
    assert validate_fleet([], None, None, []) == [
        "field 'celery_workers': expected a mapping of inventory host to worker list"
    ]


def test_celery_queues_not_a_list():
    assert validate({}, "a,b") == ["field 'celery_queues': 'a,b' is not a list of queue names"]


def test_broker_urls_compare_without_credentials():
    # Arrange: two users of one Redis share its visibility timeout; the password shows nowhere
    fleet = {
        "w1": [{"name": "t", "queues": ["t"], "time_limit": 1000}],
        "w2": [{"name": "q", "queues": ["q"]}],
    }
    brokers = {"w1": "redis://worker:s3cret@redis1:6379/0", "w2": "redis://other:pw2@redis1:6379/0"}

    # Act
    errors = validate(fleet, visibility_timeout={"w1": 7200, "w2": 600}, broker_by_host=brokers)

    # Assert
    assert len(errors) == 1
    assert "(host 'w2', same broker)" in errors[0]
    assert "s3cret" not in errors[0]
    assert "pw2" not in errors[0]
