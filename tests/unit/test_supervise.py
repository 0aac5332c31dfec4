"""The service descriptions of workers that roles/celery_service writes (lib/celery_fleet/supervise.py)."""

from __future__ import annotations

import pytest
from celery_fleet.errors import FleetError
from celery_fleet.supervise import (
    pending_restarts,
    recorded_restarts,
    service_restart_waves,
    systemd_services,
    worker_env_files,
    worker_services,
)
from celery_fleet.workers import queue_waves, restart_names, restart_waves

LAYOUT = {
    "app": "demo",
    "manager": "systemd",
    "prefix": "demo-worker-",
    "marker": "celery-fleet worker of app demo",
    "user": "demo",
    "group": "demo",
    "code_dir": "/opt/demo/app",
    "celery_bin": "/opt/demo/venv/bin/celery",
    "entry_module": "celery_fleet_app",
    "env_file": "/etc/demo/celery.env",
    "env_wrapper": "/opt/demo/bin/celery-env",
    "config_dir": "/etc/demo",
    "log_dir": "/var/log/demo",
    "state_dir": "/var/lib/demo",
    "supervisor_log_dir": "/var/log/supervisor/demo",
    "restart_sec": 2,
    "start_limit_interval_sec": 60,
    "start_limit_burst": 5,
    "start_secs": 5,
    "start_retries": 3,
}


def test_a_worker_is_one_warm_stopping_service_named_after_the_app():
    # Act
    [service] = worker_services([{"name": "io", "queues": ["a", "b"]}], LAYOUT)

    # Assert
    assert service["name"] == "demo-worker-io"
    assert service["description"] == "Celery worker io of demo (queues a,b)"
    assert service["exec"][:3] == ["/opt/demo/venv/bin/celery", "-A", "celery_fleet_app"]
    assert service["command"][0] == "/opt/demo/bin/celery-env"
    assert service["command"][1:] == service["exec"]
    assert (service["kill_mode"], service["stop_as_group"], service["stop_timeout"]) == ("mixed", False, 600)
    assert service["environment_files"] == ["/etc/demo/celery.env"]
    assert service["read_write_paths"] == ["/var/log/demo", "/var/lib/demo"]
    assert service["restart"] is False


def test_secrets_go_to_the_worker_env_file_and_the_rest_stays_in_the_unit():
    # Arrange
    worker = {"name": "io", "queues": ["a"], "environment": {"API_TOKEN": "x", "MODE": "fast"}}

    # Act
    [systemd] = worker_services([worker], LAYOUT)
    [supervisord] = worker_services([worker], {**LAYOUT, "manager": "supervisord"})

    # Assert
    assert systemd["environment_files"] == ["/etc/demo/celery.env", "/etc/demo/worker-io.env"]
    assert systemd["environment"] == {"MODE": "fast"}
    assert supervisord["environment"] == {}
    assert supervisord["supervisor_environment"] == {
        "CELERY_FLEET_WORKER_ENV_FILE": "/etc/demo/worker-io.env"
    }


def test_absent_workers_are_left_out_and_restart_names_the_changed_ones():
    # Arrange
    workers = [
        {"name": "a", "queues": ["q"]},
        {"name": "b", "queues": ["q"]},
        {"name": "c", "queues": ["q"], "state": "absent"},
    ]

    # Act
    named = worker_services(workers, LAYOUT, ["b"])
    everyone = worker_services(workers, LAYOUT, True)

    # Assert
    assert [(s["name"], s["restart"]) for s in named] == [("demo-worker-a", False), ("demo-worker-b", True)]
    assert all(s["restart"] for s in everyone)


def test_a_layout_without_a_field_is_refused():
    # Act / Assert
    with pytest.raises(FleetError, match="supervisor_log_dir"):
        worker_services(
            [{"name": "a", "queues": ["q"]}], {k: v for k, v in LAYOUT.items() if k != "supervisor_log_dir"}
        )


def test_only_workers_with_variables_to_keep_out_get_an_env_file():
    workers = [
        {"name": "plain", "queues": ["a"], "environment": {"LOG": "1"}},
        {
            "name": "db",
            "queues": ["b"],
            "environment": {"DATABASE_URL": "postgres://app:pw@db/x", "LOG": "1"},
        },
        {"name": "gone", "queues": ["c"], "state": "absent", "environment": {"API_TOKEN": "x"}},
    ]
    assert worker_env_files(workers, "systemd") == [
        {"key": "db", "value": {"DATABASE_URL": "postgres://app:pw@db/x"}}
    ]
    # Under supervisord every variable goes to the file (program files are world-readable).
    assert [f["key"] for f in worker_env_files(workers, "supervisord")] == ["plain", "db"]


def test_systemd_services_known_and_running_enabled():
    show = "\n\n".join(
        [
            "Id=a.service\nLoadState=loaded\nSubState=running\nUnitFileState=enabled",
            "Id=b.service\nLoadState=loaded\nSubState=running\nUnitFileState=disabled",
            "Id=c.service\nLoadState=loaded\nSubState=dead\nUnitFileState=enabled",
            # A unit with no file (a worker this check-mode run would add): systemd does not know it.
            "Id=d.service\nLoadState=not-found\nSubState=dead\nUnitFileState=",
            # Crash-looping: known, not running, so its start limit is cleared.
            "Id=e.service\nLoadState=loaded\nSubState=auto-restart\nUnitFileState=enabled",
            "Id=f.service\nLoadState=masked\nSubState=dead\nUnitFileState=masked",
        ]
    )
    assert systemd_services(show + "\n") == {"known": ["a", "b", "c", "e", "f"], "running": ["a"]}
    assert systemd_services(None) == {"known": [], "running": []}
    assert systemd_services("") == {"known": [], "running": []}


def test_restart_names_present_workers_limited_to_the_request():
    workers = [
        {"name": "a", "queues": ["a"]},
        {"name": "b", "queues": ["b"], "state": "absent"},
        {"name": "c", "queues": ["c"]},
    ]
    assert restart_names(workers) == ["a", "c"]
    assert restart_names(workers, ["c", "b", "zz"]) == ["c"]
    assert restart_names(workers, []) == []


def test_queue_waves_keep_workers_that_share_a_queue_apart():
    # Arrange: c shares q1 with a, d shares q2 with b and q3 with c
    services = [("a", ["q1"]), ("b", ["q2"]), ("c", ["q1", "q3"]), ("d", ["q2", "q3"]), ("e", ["q4"])]

    # Act
    waves = queue_waves(services)

    # Assert: first fit in order; no wave holds two consumers of one queue
    assert waves == [["a", "b", "e"], ["c"], ["d"]]
    queues = dict(services)
    for wave in waves:
        consumed = [q for name in wave for q in queues[name]]
        assert len(consumed) == len(set(consumed)), wave


def test_queue_waves_restart_services_without_queues_together():
    assert queue_waves([("beat", []), ("flower", None)]) == [["beat", "flower"]]
    assert queue_waves([]) == []


def test_restart_waves_of_rolling_restart_follow_the_request_and_skip_absent_workers():
    workers = [
        {"name": "a", "queues": ["shared"]},
        {"name": "b", "queues": ["shared"]},
        {"name": "c", "queues": ["c"], "state": "absent"},
        {"name": "d", "queues": ["d"]},
    ]
    assert restart_waves(workers) == [["a", "d"], ["b"]]
    assert restart_waves(workers, ["b", "d", "c"]) == [["b", "d"]]
    assert restart_waves(workers, []) == []


def test_service_restart_waves_restart_only_the_named_services():
    services = worker_services(
        [{"name": "a", "queues": ["x"]}, {"name": "b", "queues": ["x", "y"]}, {"name": "c", "queues": ["z"]}],
        LAYOUT,
    )
    names = [s["name"] for s in services]
    assert [s["queues"] for s in services] == [["x"], ["x", "y"], ["z"]]
    assert service_restart_waves(services, names) == [[names[0], names[2]], [names[1]]]
    assert service_restart_waves(services, [names[1]]) == [[names[1]]]
    assert service_restart_waves(services, []) == []


SERVICES = [{"name": "a", "queues": ["q1"]}, {"name": "b", "queues": ["q2"]}, {"name": "c", "queues": ["q1"]}]


def test_no_record_means_nothing_recorded():
    # Act / Assert
    assert recorded_restarts(None) == {"restart": [], "changed": []}
    assert recorded_restarts("") == {"restart": [], "changed": []}


def test_a_record_reads_back_what_was_written():
    # Act
    record = recorded_restarts('{"restart": ["a", "b"], "changed": ["b"]}')

    # Assert
    assert record == {"restart": ["a", "b"], "changed": ["b"]}


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"restart": "a"}', '{"changed": [1]}'])
def test_a_record_that_is_not_one_fails_naming_the_file(content):
    # Act
    with pytest.raises(FleetError) as error:
        recorded_restarts(content, "/var/lib/celery-fleet/demo-workers.json")

    # Assert
    assert "/var/lib/celery-fleet/demo-workers.json" in str(error.value)


def test_changed_and_named_services_are_pending_in_the_services_order():
    # Act
    pending = pending_restarts(SERVICES, None, changed=["c"], named=["a"], started=[])

    # Assert
    assert pending == {"restart": ["a", "c"], "changed": ["c"]}


def test_a_service_just_started_is_not_restarted():
    # Act
    pending = pending_restarts(SERVICES, None, changed=["a", "b"], named=["c"], started=["b", "c"])

    # Assert
    assert pending == {"restart": ["a"], "changed": ["a"]}


def test_what_an_earlier_run_left_pending_is_restarted_although_nothing_changed_now():
    # Arrange: the earlier run changed b's program and named a, then stopped before restarting.
    recorded = {"restart": ["a", "b"], "changed": ["b"]}

    # Act
    pending = pending_restarts(SERVICES, recorded, changed=[], named=[], started=[])

    # Assert
    assert pending == {"restart": ["a", "b"], "changed": ["b"]}


def test_a_recorded_service_no_longer_declared_is_dropped():
    # Arrange
    recorded = {"restart": ["gone", "b"], "changed": []}

    # Act
    pending = pending_restarts(SERVICES, recorded, changed=[], named=[], started=[])

    # Assert
    assert pending == {"restart": ["b"], "changed": []}


def test_check_mode_leaves_out_services_the_manager_does_not_know_yet():
    # Act: c's unit is new (check mode did not write it): it would start, not restart.
    pending = pending_restarts(SERVICES, None, changed=["a", "c"], named=[], started=[], known=["a", "b"])

    # Assert
    assert pending == {"restart": ["a"], "changed": ["a"]}


def test_nothing_changed_nothing_pending():
    # Act
    pending = pending_restarts(SERVICES, None, changed=[], named=[], started=[])

    # Assert
    assert pending == {"restart": [], "changed": []}
