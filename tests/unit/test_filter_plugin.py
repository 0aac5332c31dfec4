"""The filter entry file loads through Ansible's plugin loader; FleetError becomes AnsibleFilterError."""

import importlib.util
from pathlib import Path

import pytest

ansible_errors = pytest.importorskip("ansible.errors")
loader = pytest.importorskip("ansible.plugins.loader")

FILTER_DIR = Path(__file__).resolve().parents[2] / "plugins" / "filter"
FILTERS = {
    "celery_fleet_redis_acl_live_commands",
    "celery_fleet_redis_cli_line",
    "celery_fleet_redis_configured_dir",
    "celery_fleet_redis_keyspace_keys",
    "celery_fleet_redis_data_dir_problems",
    "celery_fleet_app_layout",
    "celery_fleet_inspect_reply",
    "celery_fleet_worker",
    "celery_fleet_worker_argv",
    "celery_fleet_worker_environment",
    "celery_fleet_systemd_cmdline",
    "celery_fleet_supervisor_cmdline",
    "celery_fleet_systemd_environment",
    "celery_fleet_supervisor_environment",
    "celery_fleet_stop_timeout",
    "celery_fleet_pool_packages",
    "celery_fleet_validation_errors",
    "celery_fleet_node_name",
    "celery_fleet_live_errors",
    "celery_fleet_verify_nodes",
    "celery_fleet_verify_errors",
    "celery_fleet_silent_services",
    "celery_fleet_live_check_request",
    "celery_fleet_live_check_reply",
    "celery_fleet_check_errors",
    "celery_fleet_environment_split",
    "celery_fleet_env_file",
    "celery_fleet_retire_marker",
    "celery_fleet_stale_services",
    "celery_fleet_retire_kinds",
    "celery_fleet_transport_options",
    "celery_fleet_broker_connection",
    "celery_fleet_redis_acl_rulesets",
    "celery_fleet_scoping_errors",
    "celery_fleet_log_reports",
    "celery_fleet_log_command",
    "celery_fleet_service_up_for",
    "celery_fleet_fleet_entries_errors",
    "celery_fleet_redis_problems",
    "celery_fleet_sentinel_topology_problems",
    "celery_fleet_sentinel_quorum",
    "celery_fleet_sentinel_master",
    "celery_fleet_peer_addresses",
    "celery_fleet_replication_info",
    "celery_fleet_flower_problems",
    "celery_fleet_flower_environment",
    "celery_fleet_beat_problems",
    "celery_fleet_app_problems",
    "celery_fleet_tls_fleet_errors",
    "celery_fleet_tls_servers",
    "celery_fleet_tls_enabled",
    "celery_fleet_process_manager_problems",
    "celery_fleet_worker_services",
    "celery_fleet_worker_env_files",
    "celery_fleet_systemd_services",
    "celery_fleet_restart_waves",
    "celery_fleet_service_restart_waves",
    "celery_fleet_prometheus_problems",
    "celery_fleet_redis_exporter_problems",
    "celery_fleet_monitoring_problems",
    "celery_fleet_host_port",
    "celery_fleet_local_address",
    "celery_fleet_queue_keys",
    "celery_fleet_scrape_targets",
    "celery_fleet_flower_scrape",
    "celery_fleet_flower_written_files",
    "celery_fleet_file_specs",
    "celery_fleet_file_result",
    "celery_fleet_flower_scrape_job",
    "celery_fleet_sentinel_scrape_targets",
    "celery_fleet_exporter_password_map",
    "celery_fleet_sentinel_static_configs",
    "celery_fleet_sentinel_address",
    "celery_fleet_exporter_address",
    "celery_fleet_exporter_targets",
    "celery_fleet_monitoring_queue_nodes",
    "celery_fleet_alert_rules",
    "celery_fleet_monitored_queues",
    "celery_fleet_recorded_restarts",
    "celery_fleet_pending_restarts",
}


@pytest.fixture(scope="module")
def filter_loader():
    loader.init_plugin_loader()
    loader.filter_loader.add_directory(str(FILTER_DIR))
    return loader.filter_loader


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_ansible_loader_finds_filter(filter_loader, name):
    # Act
    plugin = filter_loader.get(name)

    # Assert
    assert plugin is not None
    assert callable(plugin.j2_function)


def test_filter_module_registers_exactly_the_documented_filters():
    # Arrange
    spec = importlib.util.spec_from_file_location("celery_fleet_filter_entry", FILTER_DIR / "celery_fleet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    # Act
    names = set(module.FilterModule().filters())

    # Assert
    assert names == FILTERS


def test_filter_turns_fleet_error_into_ansible_filter_error(filter_loader):
    # Arrange
    normalize = filter_loader.get("celery_fleet_worker").j2_function

    # Act
    with pytest.raises(ansible_errors.AnsibleFilterError) as caught:
        normalize({"name": "io", "queues": ["a"], "pool": "fork"})

    # Assert
    assert "worker 'io': field 'pool': 'fork' is not one of prefork, gevent" in str(caught.value)


def test_filter_argv_through_loader(filter_loader):
    argv = filter_loader.get("celery_fleet_worker_argv").j2_function(
        {"name": "io", "queues": ["a"]}, "celery_demo.app", "/v/bin/celery"
    )

    assert argv[:4] == ["/v/bin/celery", "-A", "celery_demo.app", "worker"]


def test_validation_errors_filter_returns_a_list(filter_loader):
    errors = filter_loader.get("celery_fleet_validation_errors").j2_function(
        {"w1": [{"name": "io", "queues": ["a"]}]}, ["a", "b"], 3600, []
    )

    assert errors == [
        "field 'celery_queues': queue 'b' is consumed by no present worker on any host; "
        "tasks routed to it would wait forever: add it to some worker's queues"
    ]
