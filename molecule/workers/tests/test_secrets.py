"""The broker password stays in the app's environment file (root's, 0640): not in argv, units, D-Bus, logs."""

from __future__ import annotations

import pytest
from conftest import APP, ENV_FILE, WORKERS, service


def test_environment_file_is_roots_and_only_group_readable(node):
    # The services read it (the app's group); none can write it (it would be read by every service of
    # the app, and by systemd as root). Nor replace it: its directory is root's too.
    assert node.stat(ENV_FILE) == ("root", APP, 0o640)
    user, _, mode = node.stat(f"/etc/{APP}")
    assert (user, mode & 0o022) == ("root", 0)


def test_environment_file_holds_the_broker_url(node, fleet):
    # Read as root: the file is the one place the (percent-encoded) password lives.
    content = node.read(ENV_FILE)
    assert any(secret in content for secret in fleet.secrets)
    assert "CELERY_BROKER_URL=" in content


def test_password_not_in_any_process_argv(node, fleet):
    argv = node.check("ps -eo args")
    assert f"{APP}-worker" in argv or "celery" in argv, "no worker process found"
    for secret in fleet.secrets:
        assert secret not in argv


@pytest.mark.parametrize("worker", WORKERS, ids=[w["name"] for w in WORKERS])
def test_password_not_in_service_definition(node, fleet, worker):
    definition = node.read(node.service_file(service(worker["name"])))
    assert "celery" in definition
    for secret in fleet.secrets:
        assert secret not in definition


@pytest.mark.parametrize("worker", WORKERS, ids=[w["name"] for w in WORKERS])
def test_password_not_in_unit_environment_over_dbus(node, fleet, worker):
    if node.manager != "systemd":
        pytest.skip("systemd only: supervisord has no D-Bus view of the environment")
    shown = node.check(f"systemctl show -p Environment -p EnvironmentFiles {service(worker['name'])}")
    assert "EnvironmentFiles=" in shown
    for secret in fleet.secrets:
        assert secret not in shown


def test_password_not_in_worker_logs(node, fleet):
    logs = node.logs(service("*"))
    assert "celery@" in logs or "ready." in logs, "worker logs are empty: the test would prove nothing"
    for secret in fleet.secrets:
        assert secret not in logs
