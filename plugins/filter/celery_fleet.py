"""Filters of celery-fleet: thin wrappers around the tested package lib/celery_fleet."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The logic is a plain package next to the plugins (unit-tested without Ansible): make it importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

from ansible.errors import AnsibleFilterError
from celery_fleet import (
    alerts,
    app_rules,
    beat_rules,
    broker,
    diagnose,
    files,
    flower,
    flower_rules,
    inputs,
    layout,
    live,
    monitoring_rules,
    redis_acl,
    redis_data,
    redis_rules,
    retire,
    sentinel,
    service,
    supervise,
    validation,
    workers,
)
from celery_fleet.errors import FleetError


def _ansible_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FleetError as exc:
            raise AnsibleFilterError(str(exc)) from exc

    return wrapper


class FilterModule:
    """celery_fleet_* filters; see lib/celery_fleet/__init__.py for the interface."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "celery_fleet_app_layout": _ansible_errors(layout.app_layout),
            "celery_fleet_inspect_reply": _ansible_errors(layout.inspect_reply),
            "celery_fleet_worker": _ansible_errors(workers.normalize_worker),
            "celery_fleet_worker_argv": _ansible_errors(workers.worker_argv),
            "celery_fleet_worker_environment": _ansible_errors(workers.worker_environment),
            "celery_fleet_systemd_cmdline": _ansible_errors(workers.systemd_cmdline),
            "celery_fleet_supervisor_cmdline": _ansible_errors(workers.supervisor_cmdline),
            "celery_fleet_systemd_environment": _ansible_errors(workers.systemd_environment),
            "celery_fleet_supervisor_environment": _ansible_errors(workers.supervisor_environment),
            "celery_fleet_stop_timeout": _ansible_errors(workers.stop_timeout),
            "celery_fleet_pool_packages": _ansible_errors(workers.pool_packages),
            "celery_fleet_validation_errors": _ansible_errors(validation.validate_fleet),
            "celery_fleet_fleet_entries_errors": _ansible_errors(validation.validate_entries),
            "celery_fleet_node_name": _ansible_errors(workers.node_name),
            "celery_fleet_live_errors": _ansible_errors(live.live_errors),
            "celery_fleet_verify_nodes": _ansible_errors(live.verify_nodes),
            "celery_fleet_verify_errors": _ansible_errors(live.verify_errors),
            "celery_fleet_silent_services": _ansible_errors(live.silent_services),
            "celery_fleet_live_check_request": _ansible_errors(live.live_check_request),
            "celery_fleet_live_check_reply": _ansible_errors(live.live_check_reply),
            "celery_fleet_check_errors": _ansible_errors(live.check_errors),
            "celery_fleet_environment_split": _ansible_errors(service.split_environment),
            "celery_fleet_env_file": _ansible_errors(service.env_file),
            "celery_fleet_retire_marker": _ansible_errors(retire.marker_regex),
            "celery_fleet_stale_services": _ansible_errors(retire.stale_services),
            "celery_fleet_retire_kinds": _ansible_errors(retire.retire_kinds),
            "celery_fleet_transport_options": _ansible_errors(broker.transport_options),
            "celery_fleet_broker_connection": _ansible_errors(broker.connection),
            "celery_fleet_redis_acl_rulesets": _ansible_errors(broker.acl_rulesets),
            "celery_fleet_scoping_errors": _ansible_errors(broker.scoping_errors),
            "celery_fleet_tls_fleet_errors": _ansible_errors(broker.tls_fleet_errors),
            "celery_fleet_tls_servers": _ansible_errors(broker.tls_servers),
            "celery_fleet_tls_enabled": _ansible_errors(broker.tls_enabled),
            "celery_fleet_log_reports": _ansible_errors(diagnose.report),
            "celery_fleet_log_command": _ansible_errors(diagnose.log_command),
            "celery_fleet_service_up_for": _ansible_errors(diagnose.up_for),
            "celery_fleet_redis_problems": _ansible_errors(redis_rules.redis_problems),
            "celery_fleet_redis_acl_live_commands": _ansible_errors(redis_acl.live_commands),
            "celery_fleet_redis_cli_line": _ansible_errors(redis_acl.cli_line),
            "celery_fleet_redis_configured_dir": redis_data.configured_dir,
            "celery_fleet_redis_keyspace_keys": redis_data.keyspace_keys,
            "celery_fleet_redis_data_dir_problems": redis_data.data_dir_problems,
            "celery_fleet_sentinel_topology_problems": _ansible_errors(
                redis_rules.sentinel_topology_problems
            ),
            "celery_fleet_sentinel_quorum": _ansible_errors(sentinel.quorum),
            "celery_fleet_sentinel_master": _ansible_errors(sentinel.current_master),
            "celery_fleet_peer_addresses": _ansible_errors(sentinel.peer_addresses),
            "celery_fleet_replication_info": _ansible_errors(sentinel.replication_info),
            "celery_fleet_flower_problems": _ansible_errors(flower_rules.flower_problems),
            "celery_fleet_flower_environment": _ansible_errors(flower.flower_environment),
            "celery_fleet_flower_written_files": _ansible_errors(flower.written_files),
            "celery_fleet_file_specs": _ansible_errors(files.file_specs),
            "celery_fleet_file_result": _ansible_errors(files.file_result),
            "celery_fleet_beat_problems": _ansible_errors(beat_rules.beat_problems),
            "celery_fleet_app_problems": _ansible_errors(app_rules.app_problems),
            "celery_fleet_process_manager_problems": _ansible_errors(inputs.process_manager_problems),
            "celery_fleet_worker_services": _ansible_errors(supervise.worker_services),
            "celery_fleet_worker_env_files": _ansible_errors(supervise.worker_env_files),
            "celery_fleet_systemd_services": _ansible_errors(supervise.systemd_services),
            "celery_fleet_restart_waves": _ansible_errors(workers.restart_waves),
            "celery_fleet_service_restart_waves": _ansible_errors(supervise.service_restart_waves),
            "celery_fleet_prometheus_problems": _ansible_errors(monitoring_rules.prometheus_problems),
            "celery_fleet_redis_exporter_problems": _ansible_errors(monitoring_rules.redis_exporter_problems),
            "celery_fleet_monitoring_problems": _ansible_errors(
                monitoring_rules.monitoring_inventory_problems
            ),
            "celery_fleet_host_port": _ansible_errors(monitoring_rules.host_port),
            "celery_fleet_local_address": _ansible_errors(monitoring_rules.local_address),
            "celery_fleet_queue_keys": _ansible_errors(monitoring_rules.queue_keys),
            "celery_fleet_scrape_targets": _ansible_errors(monitoring_rules.scrape_targets),
            "celery_fleet_flower_scrape": _ansible_errors(monitoring_rules.flower_scrape),
            "celery_fleet_flower_scrape_job": _ansible_errors(monitoring_rules.flower_scrape_job),
            "celery_fleet_sentinel_scrape_targets": _ansible_errors(monitoring_rules.sentinel_scrape_targets),
            "celery_fleet_exporter_password_map": _ansible_errors(monitoring_rules.exporter_password_map),
            "celery_fleet_sentinel_static_configs": _ansible_errors(monitoring_rules.sentinel_static_configs),
            "celery_fleet_sentinel_address": _ansible_errors(monitoring_rules.sentinel_address),
            "celery_fleet_exporter_address": _ansible_errors(monitoring_rules.exporter_address),
            "celery_fleet_exporter_targets": _ansible_errors(monitoring_rules.exporter_targets),
            "celery_fleet_monitoring_queue_nodes": _ansible_errors(monitoring_rules.queue_nodes),
            "celery_fleet_alert_rules": _ansible_errors(alerts.alert_rules),
            "celery_fleet_monitored_queues": _ansible_errors(alerts.monitored_queues),
            "celery_fleet_recorded_restarts": _ansible_errors(supervise.recorded_restarts),
            "celery_fleet_pending_restarts": _ansible_errors(supervise.pending_restarts),
        }
