"""The container harness works: systemd is PID 1, apt installs, the wheelhouse installs offline."""


def test_systemd_is_pid_1_and_booted(host):
    comm = host.run("ps -o comm= -p 1").stdout.strip()
    state = host.run("systemctl is-system-running").stdout.strip()
    assert comm == "systemd"
    assert state in {"running", "degraded"}, state


def test_apt_installed_python3_venv(host):
    assert host.package("python3-venv").is_installed


def test_celery_installed_offline_imports(host):
    result = host.run("/opt/harness-venv/bin/python -c 'import celery, redis; print(celery.__version__)'")
    print(f"{host.backend.get_hostname()}: celery {result.stdout.strip()}")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "5.7.0"


def test_no_failed_units_at_boot(host):
    failed = host.run("systemctl list-units --state=failed --no-legend --plain").stdout.strip()
    assert failed == "", failed
