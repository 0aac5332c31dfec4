"""Flower: authenticated, closed /metrics, no CORS, every worker listed, no password anywhere."""

from __future__ import annotations

import re

import pytest
from conftest import APP, BEAT_PROCESS, BEAT_SERVICE, FLOWER_PROCESS, FLOWER_SERVICE, Target

PROTECTED = ["/", "/workers", "/tasks", "/broker", "/api/workers", "/api/tasks", "/api/queues/length"]
PROTECTED += ["/metrics"]
WRONG = {"none": None, "wrong password": ("ops", "not-the-password"), "unknown user": ("mallory", "x")}


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("credentials", WRONG, ids=list(WRONG))
def test_ui_api_and_metrics_refuse_missing_or_wrong_credentials(
    target: Target, path: str, credentials: str
) -> None:
    status, headers, _ = target.http(path, auth=WRONG[credentials])
    print(f"{target.container} {path} with {credentials}: {status}")
    assert status == 401
    if not path.startswith("/api/"):  # Flower's API answers a bare 401, its pages ask for basic auth
        assert headers.get("www-authenticate", "").startswith("Basic")


@pytest.mark.parametrize("path", PROTECTED)
def test_every_basic_auth_user_gets_in(target: Target, path: str) -> None:
    for user in target.vars["flower_users"]:
        status, _, _ = target.http(path, auth=(user["name"], user["password"]))
        assert status == 200, f"{user['name']} on {path}: {status}"


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "authenticated"])
def test_no_cross_origin_header(target: Target, authenticated: bool) -> None:
    for path in ["/", "/api/workers", "/metrics", "/healthcheck"]:
        _, headers, _ = target.http(
            path, auth=target.user if authenticated else None, headers={"Origin": "http://evil.example"}
        )
        cors = {name: value for name, value in headers.items() if name.startswith("access-control-")}
        assert cors == {}, f"{path}: {cors}"


def test_api_workers_lists_every_worker_with_its_queues(target: Target) -> None:
    workers = target.api("/api/workers?refresh=1")
    listed = {
        name: sorted(q["name"] for q in info.get("active_queues", [])) for name, info in workers.items()
    }
    expected = {f"{w['name']}@{target.container}": sorted(w["queues"]) for w in target.vars["celery_workers"]}
    print(f"{target.container}: /api/workers -> {listed}")
    assert listed == expected


def test_metrics_serves_prometheus_text_to_authenticated_users(target: Target) -> None:
    status, headers, body = target.http("/metrics", auth=target.user)
    families = sorted({m.group(1) for m in re.finditer(r"^# TYPE (flower_\w+)", body, re.MULTILINE)})
    print(f"{target.container}: /metrics {status}, {len(body)} bytes, families {families}")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert "flower_events_total" in families
    for worker in target.vars["celery_workers"]:
        assert f'flower_worker_online{{worker="{worker["name"]}@{target.container}"}} 1.0' in body


def test_flower_listens_on_loopback_only(target: Target) -> None:
    # Local address column of each listening socket on the port.
    listening = [line.split()[3] for line in target.sh("ss -Hltn 'sport = :5555'").stdout.splitlines()]
    print(f"{target.container}: {listening}")
    assert "127.0.0.1:5555" in listening
    assert not any(address.startswith(("0.0.0.0:", "*:", "[::]:")) for address in listening)


def test_flower_and_beat_run_as_the_service_user(target: Target) -> None:
    for pattern in [FLOWER_PROCESS, BEAT_PROCESS]:
        users = set(target.sh(f"ps -o user= -p $(pgrep -d, -f '{pattern}')").stdout.split())
        assert users == {APP}, f"{pattern}: {users}"


def test_secret_files_are_roots_and_only_group_readable(target: Target) -> None:
    # The service reads them (the app's group) and cannot rewrite what root's systemd loads.
    for path in [f"/etc/{APP}/flower.env", f"/etc/{APP}/celery.env"]:
        mode, owner, group = target.sh(f"stat -c '%a %U %G' {path}").stdout.split()
        assert (mode, owner, group) == ("640", "root", APP), path


def test_options_come_from_the_environment_file_not_argv(target: Target) -> None:
    argv = target.sh(f"ps -o args= -p $(pgrep -d, -f '{FLOWER_PROCESS}')").stdout
    env = target.sh(f"cut -d= -f1 /etc/{APP}/flower.env | grep -v '^#'").stdout.split()
    print(f"{target.container}: argv {argv.strip()!r}; env names {env}")
    assert "FLOWER_BASIC_AUTH" in env
    assert "CELERY_BROKER_URL" in env
    assert "basic" not in argv and "broker" not in argv


def test_flower_uses_its_own_redis_user(target: Target) -> None:
    clients = target.sh(
        'REDISCLI_AUTH="$(cat)" redis-cli --user admin --no-auth-warning CLIENT LIST',
        stdin=target.secrets()["redis_acl_users[admin]"],
    ).stdout
    pid = target.sh(f"pgrep -f '{FLOWER_PROCESS}'").stdout.split()[0]
    users = set(re.findall(r"\buser=(\S+)", clients))
    print(f"{target.container}: redis client users {sorted(users)} (flower pid {pid})")
    assert "flower" in users


def test_no_password_in_process_list(target: Target) -> None:
    listing = target.sh("ps -efww").stdout
    leaked = [name for name, secret in target.secrets().items() if secret in listing]
    assert leaked == []


def test_no_password_in_world_readable_files(target: Target) -> None:
    secrets = target.secrets()
    patterns = "\n".join(secrets.values())
    # The patterns go to a 0600 file of root's (not world-readable, so not searched itself).
    found = target.sh(
        "umask 077; cat > /root/.flower-test-patterns; "
        "find / -xdev \\( -path /proc -o -path /sys -o -path /usr -o -path /dev \\) -prune -o "
        "-type f -perm -o=r -size -5M -print0 | xargs -0 grep -lF -f /root/.flower-test-patterns; "
        "rm -f /root/.flower-test-patterns",
        stdin=patterns + "\n",
        check=False,
    ).stdout.split()
    print(f"{target.container}: world-readable files holding a password: {found}")
    assert found == []


def test_no_password_in_unit_environment_or_journal(target: Target) -> None:
    if target.manager != "systemd":
        pytest.skip("systemd only")
    shown = target.sh(f"systemctl show -p Environment {FLOWER_SERVICE} {BEAT_SERVICE}").stdout
    journal = target.sh("journalctl --no-pager -o cat").stdout
    leaked = [name for name, secret in target.secrets().items() if secret in shown or secret in journal]
    assert leaked == []


def test_no_password_in_any_flower_page_or_api_response(target: Target) -> None:
    workers = sorted(target.api("/api/workers?refresh=1"))
    tasks = list(target.api("/api/tasks?limit=5"))
    pages = [*PROTECTED, "/api/workers?refresh=1", "/api/task/types", "/healthcheck"]
    pages += [f"/worker/{name}" for name in workers]
    pages += [f"/api/workers?workername={name}&refresh=1" for name in workers]
    pages += [f"/task/{task_id}" for task_id in tasks] + [f"/api/task/info/{task_id}" for task_id in tasks]
    secrets = target.secrets()
    bytes_read = 0
    for page in pages:
        status, headers, body = target.http(page, auth=target.user)
        assert status == 200, f"{page}: {status}"
        bytes_read += len(body)
        text = body + repr(headers)
        leaked = [name for name, secret in secrets.items() if secret in text]
        assert leaked == [], f"{page} shows {leaked}"
    print(f"{target.container}: {len(pages)} pages, {bytes_read} bytes, no password")
    # The pages do show the broker, masked: the test read what it claims to have read.
    status, _, body = target.http("/broker", auth=target.user)
    assert re.search(r"redis://flower:\*\*@127\.0\.0\.1:6379/0", body)


def test_flower_unit_is_hardened(target: Target) -> None:
    if target.manager != "systemd":
        pytest.skip("systemd only")
    for service in [FLOWER_SERVICE, BEAT_SERVICE]:
        output = target.sh(f"systemd-analyze security {service}.service --no-pager").stdout
        score = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output).group(1))
        print(f"{target.container}: systemd-analyze security {service}: {score}")
        assert score <= 2.0


def test_oauth_rule_syntax_refuses_a_lookalike_domain_in_flower_itself(target: Target) -> None:
    """The syntax the role accepts (.*@example.com) refuses a@example.com.evil.org in Flower 2.2's own
    matcher; the regex syntax it refuses (a@example\\.com$) would let nobody in."""
    script = (
        "from flower.utils.authentication import authenticate as a\n"
        "print(bool(a('.*@example.com', 'a@example.com')),\n"
        "      bool(a('.*@example.com', 'a@example.com.evil.org')),\n"
        "      bool(a('a@example.com|b@example.org', 'a@example.com.evil.org')),\n"
        "      bool(a(r'a@example\\.com$', 'a@example.com')))\n"
    )
    result = target.sh(f"/opt/{APP}/venv/bin/python -", stdin=script).stdout.split()
    print(f"{target.container}: allowed, lookalike, lookalike in list, regex syntax -> {result}")
    assert result == ["True", "False", "False", "False"]
