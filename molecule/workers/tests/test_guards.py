"""Guards: environment values reach the worker byte for byte, credentials never land in a unit or
program file, and root trusts no file the service user can write.

converge.yml gives `datasets` a value with `$`, `'`, `"`, `%`, backquotes, a backslash and spaces,
and a DATABASE_URL whose (demo-only) password makes it a secret by value.
"""

from __future__ import annotations

import base64

import pytest
from conftest import APP, WORKERS, service

WORKER = next(w for w in WORKERS if w.get("environment"))
ENVIRONMENT: dict[str, str] = WORKER["environment"]
CREDENTIAL = "demo-only-$ec'r\"et%"
WORKER_ENV_FILE = f"/etc/{APP}/worker-{WORKER['name']}.env"


def _environ(node, pid: int) -> dict[str, str]:
    raw = node.check(f"base64 -w0 /proc/{pid}/environ").strip()
    pairs = base64.b64decode(raw).split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if p)


def test_environment_reaches_the_worker_byte_for_byte(node):
    # Arrange
    pid = node.main_pid(service(WORKER["name"]))
    assert pid > 0

    # Act
    environ = _environ(node, pid)

    # Assert
    for name, value in ENVIRONMENT.items():
        print(f"{name}: declared {value!r}, running {environ.get(name)!r}")
        assert environ.get(name) == value
    # The supervisord wrapper's pointer to the file does not leak into the worker.
    assert "CELERY_FLEET_WORKER_ENV_FILE" not in environ


def test_credential_is_in_the_workers_private_file_only(node):
    user, group, mode = node.stat(WORKER_ENV_FILE)
    assert user == "root"
    if node.manager == "systemd":
        assert (group, mode) == ("root", 0o600)
    else:
        assert (group, mode) == (APP, 0o640)
    assert "DATABASE_URL=" in node.read(WORKER_ENV_FILE)
    definition = node.read(node.service_file(service(WORKER["name"])))
    assert WORKER_ENV_FILE in definition
    assert CREDENTIAL not in definition
    assert "demo-only-" not in definition


def test_credential_not_over_dbus(node):
    if node.manager != "systemd":
        pytest.skip("systemd only")
    shown = node.check(f"systemctl show -p Environment {service(WORKER['name'])}")
    assert "FLEET_TEST_VALUE=" in shown, "the plain variable stays visible in the unit"
    assert "demo-only-" not in shown


def test_workers_without_such_variables_get_no_private_file(node):
    files = node.check(f"ls /etc/{APP}").split()
    with_file = sorted(
        f.removeprefix("worker-").removesuffix(".env") for f in files if f.startswith("worker-")
    )
    print(f"worker environment files: {with_file}")
    if node.manager == "systemd":
        assert with_file == [WORKER["name"]]
    else:
        assert WORKER["name"] in with_file


def test_service_user_cannot_write_where_root_writes(node):
    # supervisord (root) writes the program logs: a directory of root's, not the app's log dir.
    if node.manager != "supervisord":
        pytest.skip("systemd services log to the journal")
    assert node.stat(f"/var/log/supervisor/{APP}") == ("root", APP, 0o750)
    assert node.exists(f"/var/log/supervisor/{APP}/{service(WORKER['name'])}.log")
    probe = node.run(node.as_app(f"touch /var/log/supervisor/{APP}/planted"))
    assert probe.returncode != 0
