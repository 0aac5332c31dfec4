"""The broker password stays in the app's environment file (root's, 0640): not in argv, units, D-Bus, logs."""

from __future__ import annotations

import pytest
from conftest import APP, ENV_FILE, WORKERS, service


def test_environment_file_is_roots_and_only_group_readable(host):
    # The services read it (the app's group); none can write it (it would be read by every service of
    # the app, and by systemd as root). Nor replace it: its directory is root's too.
    env = host.file(ENV_FILE)
    assert (env.user, env.group, env.mode) == ("root", APP, 0o640)
    directory = host.file(f"/etc/{APP}")
    assert (directory.user, directory.mode & 0o022) == ("root", 0)


def test_environment_file_holds_the_broker_url(host, fleet):
    # Read as root: the file is the one place the (percent-encoded) password lives.
    content = host.file(ENV_FILE).content_string
    assert any(secret in content for secret in fleet.secrets)
    assert "CELERY_BROKER_URL=" in content


def test_password_not_in_any_process_argv(host, fleet):
    argv = host.run("ps -eo args").stdout
    assert f"{APP}-worker" in argv or "celery" in argv, "no worker process found"
    for secret in fleet.secrets:
        assert secret not in argv


@pytest.mark.parametrize("worker", WORKERS, ids=[w["name"] for w in WORKERS])
def test_password_not_in_service_definition(host, fleet, worker):
    definition = host.file(fleet.service_file(worker["name"])).content_string
    assert "celery" in definition
    for secret in fleet.secrets:
        assert secret not in definition


@pytest.mark.parametrize("worker", WORKERS, ids=[w["name"] for w in WORKERS])
def test_password_not_in_unit_environment_over_dbus(host, fleet, worker):
    if fleet.manager != "systemd":
        pytest.skip("systemd only: supervisord has no D-Bus view of the environment")
    shown = host.run(f"systemctl show -p Environment -p EnvironmentFiles {service(worker['name'])}").stdout
    assert "EnvironmentFiles=" in shown
    for secret in fleet.secrets:
        assert secret not in shown


def test_password_not_in_worker_logs(fleet):
    logs = fleet.logs()
    assert "celery@" in logs or "ready." in logs, "worker logs are empty: the test would prove nothing"
    for secret in fleet.secrets:
        assert secret not in logs
