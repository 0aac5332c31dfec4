"""playbooks/validate.yml (site.yml's first play) refuses every bad input the READMEs list, on the
controller alone: every host of the test inventories is an address nobody answers (TEST-NET-1 over
SSH, 1 s timeout), so a task that tried to reach one would end UNREACHABLE.

One ansible-playbook run checks every bad input at once: each case is a host of its own (its
problems name it), added to a valid fleet; the fleet-wide cases are recognised by their message.
"""

from __future__ import annotations

import copy
import datetime
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery_fleet.recap import play_recap
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TOP = Path(__file__).resolve().parents[2]
# Anything that connected would fail loudly: nothing listens there and the timeout is short.
UNREACHABLE = {
    "ansible_host": "192.0.2.1",
    "ansible_connection": "ssh",
    "ansible_user": "nobody",
    "ansible_timeout": 1,
}
# TEST-ONLY credentials, never used anywhere.
PASSWORD = "test-only-password-0123456789"
WORKER = {"name": "default", "queues": ["q1"], "concurrency": 1}


def valid_inventory() -> dict[str, Any]:
    """The sandbox's shape: a broker, two worker hosts, an ops host with Flower and beat."""
    return {
        "all": {
            "vars": {
                **UNREACHABLE,
                "celery_app_name": "cfapp",
                "celery_app_module": "cfapp.app",
                "celery_broker_host": "10.0.0.1",
                "celery_broker_password": PASSWORD,
            },
            "children": {
                "redis": {
                    "hosts": {"r1": {}},
                    "vars": {
                        "redis_password": PASSWORD,
                        "redis_acl_users": [
                            {"name": "worker", "password": PASSWORD, "ruleset": "celery_worker"},
                            {"name": "admin", "password": PASSWORD, "ruleset": "admin"},
                        ],
                    },
                },
                "celery_workers": {
                    "hosts": {
                        "w1": {"celery_workers": [WORKER]},
                        "w2": {
                            "celery_workers": [{**WORKER, "name": "io", "pool": "gevent", "concurrency": 10}]
                        },
                    },
                    "vars": {"celery_queues": ["q1"], "celery_process_manager": "systemd"},
                },
                "flower": {
                    "hosts": {"ops": {}},
                    "vars": {"flower_users": [{"name": "admin", "password": PASSWORD}]},
                },
                "celery_beat": {
                    "hosts": {"ops": {}},
                    "vars": {"celery_beat_schedule": {"tick": {"task": "cfapp.tasks.tick", "schedule": 30}}},
                },
            },
        }
    }


def _users(**user: Any) -> list[dict[str, Any]]:
    return [{"name": "admin", "password": PASSWORD, **user}]


def _worker(**fields: Any) -> list[dict[str, Any]]:
    return [{**WORKER, **fields}]


OAUTH = {
    "flower_users": [],
    "flower_auth": ".*@example.com",
    "flower_auth_provider": "flower.views.auth.GithubLoginHandler",
    "flower_oauth2_key": "test-only-client-id",
    "flower_oauth2_secret": "test-only-client-secret",
    "flower_oauth2_redirect_uri": "https://flower.example.com/login",
}

# case -> (group, host variables, fragments of the one message line that names the case's host).
# A group's valid variables stay unless the case overrides them. Worker hosts' names consume
# their own queue so that a bad worker does not also leave q1 unconsumed.
CASES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    # Redis (roles/redis, lib/celery_fleet/redis_rules.py)
    "redis-no-password": ("redis", {"redis_password": ""}, ["field 'redis_password'", "16 characters"]),
    "redis-short-password": (
        "redis",
        {"redis_password": "fifteen-chars-x"},
        ["field 'redis_password'", "16"],
    ),
    "redis-eviction": (
        "redis",
        {"redis_maxmemory_policy": "allkeys-lru"},
        [
            "field 'redis_maxmemory_policy'",
            "silently drops queued",
            "noeviction",
            "redis_maxmemory_policy_override",
        ],
    ),
    "redis-unknown-ruleset": (
        "redis",
        {"redis_acl_users": _users(ruleset="celery_wroker")},
        [
            "redis_acl_users",
            "celery_wroker",
            "celery_worker, celery_producer, celery_flower, redis_exporter, admin",
        ],
    ),
    "redis-short-acl-password": (
        "redis",
        {"redis_acl_users": [{"name": "admin", "password": "short", "ruleset": "admin"}]},
        ["field 'redis_acl_users'", "too short: admin"],
    ),
    "redis-duplicate-user": (
        "redis",
        {"redis_acl_users": _users(ruleset="admin") * 2},
        ["field 'redis_acl_users'", "unique", "duplicated: admin"],
    ),
    "redis-default-user-name": (
        "redis",
        {"redis_acl_users": [{"name": "default", "password": PASSWORD, "ruleset": "admin"}]},
        ["field 'redis_acl_users'", "not 'default'"],
    ),
    "redis-password-in-rules": (
        "redis",
        {
            "redis_acl_users": [
                *_users(ruleset="admin"),
                {"name": "raw", "password": PASSWORD, "rules": ">pw ~* +@all"},
            ]
        },
        ["field 'redis_acl_users'", "offending users: raw"],
    ),
    "redis-previous-password-repeats": (
        "redis",
        {
            "redis_acl_users": [
                {"name": "admin", "password": PASSWORD, "previous_passwords": [PASSWORD], "ruleset": "admin"}
            ]
        },
        ["field 'redis_acl_users'", "previous passwords of user admin", "repeat the current password"],
    ),
    "redis-no-admin": (
        "redis",
        {"redis_default_user_enabled": False, "redis_acl_users": _users(ruleset="celery_worker")},
        ["field 'redis_acl_users'", "no user has ruleset admin"],
    ),
    "redis-port": ("redis", {"redis_port": 70000}, ["field 'redis_port'", "1-65535"]),
    "redis-tls-files": (
        "redis",
        {"redis_tls_enabled": True},
        ["redis_tls_cert_file, redis_tls_key_file, redis_tls_ca_file", "required"],
    ),
    "redis-key-prefix": (
        "redis",
        {"redis_acl_key_prefix": "cf:*"},
        ["field 'redis_acl_key_prefix'", "'cf:*' is not allowed", '"" turns key scoping off'],
    ),
    "redis-wrong-type": ("redis", {"redis_port": "six"}, ["role redis", "redis_port", "int"]),
    "redis-unknown-choice": (
        "redis",
        {"redis_appendfsync": "sometimes"},
        ["role redis", "redis_appendfsync", "always, everysec, no"],
    ),
    # Flower (roles/flower, lib/celery_fleet/flower_rules.py)
    "flower-no-auth": (
        "flower",
        {"flower_users": []},
        ["field 'flower_users'", "flower_auth", "flower_allow_unauthenticated"],
    ),
    "flower-empty-password": (
        "flower",
        {"flower_users": _users(password="")},
        ["flower_users", "non-empty", "admin"],
    ),
    "flower-comma-password": (
        "flower",
        {"flower_users": _users(password="a,b")},
        ["flower_users", "','", "admin"],
    ),
    "flower-previous-password-is-current": (
        "flower",
        {"flower_users": _users(previous_passwords=[PASSWORD])},
        ["field 'flower_users'", "previous_passwords of user 'admin'", "repeat the current password"],
    ),
    "flower-previous-password-empty": (
        "flower",
        {"flower_users": _users(previous_passwords=["test-only-previous-0123", ""])},
        ["field 'flower_users'", "previous_passwords of user 'admin'", "number 2 of the list"],
    ),
    "flower-bad-user-name": (
        "flower",
        {"flower_users": [{"name": "a:b", "password": PASSWORD}]},
        ["flower_users", "offending names: a:b"],
    ),
    "flower-regex-rule": (
        "flower",
        {**OAUTH, "flower_auth": "a@example\\.com$"},
        ["field 'flower_auth'", "Flower 2.2's syntax", "a@example.com.evil.org"],
    ),
    "flower-wildcard-domain": (
        "flower",
        {**OAUTH, "flower_auth": "a@.*"},
        ["field 'flower_auth'", "Flower 2.2"],
    ),
    "flower-oauth-secret": (
        "flower",
        {**OAUTH, "flower_oauth2_secret": ""},
        ["field 'flower_oauth2_secret'", "OAuth also needs"],
    ),
    "flower-basic-and-oauth": (
        "flower",
        {**OAUTH, "flower_users": _users()},
        ["field 'flower_auth'", "not both"],
    ),
    "flower-port": ("flower", {"flower_port": 70000}, ["field 'flower_port'", "1-65535"]),
    "flower-port-type": ("flower", {"flower_port": "http"}, ["role flower", "flower_port", "int"]),
    "flower-url-prefix": ("flower", {"flower_url_prefix": "a b"}, ["field 'flower_url_prefix'", "URL path"]),
    "flower-plain-http-off-loopback": (
        "flower",
        {"flower_bind": "0.0.0.0"},
        ["field 'flower_bind'", "plain HTTP", "flower_tls_enabled", "flower_allow_plain_http"],
    ),
    "flower-https-without-key": (
        "flower",
        {"flower_tls_enabled": True, "flower_tls_cert": "-----BEGIN CERTIFICATE-----\nx\n"},
        ["field 'flower_tls_key'", "required with flower_tls_enabled"],
    ),
    "flower-https-port-type": (
        "flower",
        {"flower_tls_port": "https"},
        ["role flower", "flower_tls_port", "int"],
    ),
    "flower-extra-option": (
        "flower",
        {"flower_extra_options": {"basic_auth": "x"}},
        ["field 'flower_extra_options'", "basic_auth", "role's own"],
    ),
    "flower-process-manager": (
        "flower",
        {"celery_process_manager": "upstart"},
        ["field 'celery_process_manager'", "'upstart'", "systemd, supervisord"],
    ),
    # Beat (roles/celery_beat, lib/celery_fleet/beat_rules.py); the host is a second beat host too.
    "beat-entry": (
        "celery_beat",
        {
            "celery_beat_schedule": {
                "tick": {"task": "cfapp.tasks.tick"},
                "tock": {"task": "t", "schedule": 1, "x": 1},
            }
        },
        ["field 'celery_beat_schedule.tick'", "exactly one of `schedule`"],
    ),
    # The app (roles/celery_app, lib/celery_fleet/app_rules.py), on worker hosts
    "app-no-broker": (
        "celery_workers",
        {"celery_broker_password": "", "celery_workers": _worker(queues=["q-app-no-broker"])},
        ["celery_broker_password", "has no broker", "celery_broker_url"],
    ),
    "app-two-sources": (
        "celery_workers",
        {"celery_app_src": "/src", "celery_app_git_repo": "https://git.example/app.git"},
        ["celery_app_src, celery_app_git_repo", "not both"],
    ),
    "app-env-name": (
        "celery_workers",
        {"celery_app_environment": {"BAD-NAME": "1"}},
        ["field 'celery_app_environment'", "BAD-NAME", "not variable names"],
    ),
    # Set by playbooks/deploy-workers.yml from the host's record: in an inventory it would skip the
    # app's converge on every run (lib/celery_fleet/inventory.py CALLER_SET).
    "app-caller-set": (
        "flower",
        {"celery_app_unchanged": True},
        ["celery_app_unchanged is set by playbooks/deploy-workers.yml", "not in an inventory"],
    ),
    # Workers (lib/celery_fleet/validation.py, workers.py)
    "worker-process-manager": (
        "celery_workers",
        {"celery_process_manager": "upstart"},
        ["field 'celery_process_manager'", "'upstart'", "systemd, supervisord"],
    ),
    "worker-unknown-pool": (
        "celery_workers",
        {"celery_workers": _worker(pool="fork")},
        ["field 'pool'", "prefork, gevent"],
    ),
    "worker-unknown-field": ("celery_workers", {"celery_workers": _worker(colour="red")}, ["colour"]),
    "worker-concurrency": (
        "celery_workers",
        {"celery_workers": _worker(concurrency=0)},
        ["field 'concurrency'", ">= 1"],
    ),
    "worker-no-queues": (
        "celery_workers",
        {"celery_workers": _worker(queues=[])},
        ["field 'queues'", "non-empty"],
    ),
    "worker-duplicate-name": (
        "celery_workers",
        {"celery_workers": [WORKER, WORKER]},
        ["field 'name'", "declared 2 times"],
    ),
    "worker-prefork-only": (
        "celery_workers",
        {"celery_workers": _worker(pool="threads", max_tasks_per_child=10)},
        ["field 'max_tasks_per_child'", "prefork only"],
    ),
    "worker-autoscale": (
        "celery_workers",
        {"celery_workers": [{"name": "a", "queues": ["q1"], "pool": "threads", "autoscale": [4, 1]}]},
        ["field 'autoscale'", "prefork, gevent"],
    ),
    "worker-solo": (
        "celery_workers",
        {"celery_workers": _worker(pool="solo")},
        ["field 'pool'", "allow_solo: true"],
    ),
    "worker-time-limit": (
        "celery_workers",
        {"celery_workers": _worker(time_limit=4000)},
        ["field 'time_limit'", "not below celery_broker_visibility_timeout 3600"],
    ),
    "worker-green-prefetch": (
        "celery_workers",
        {"celery_workers": _worker(pool="gevent", concurrency=10, prefetch_multiplier=1)},
        ["field 'prefetch_multiplier'"],
    ),
    "worker-bad-name": (
        "celery_workers",
        {"celery_workers": [{"name": "Bad Name", "queues": ["q1"]}]},
        ["worker 'Bad Name'", "field 'name'", "not a valid worker name"],
    ),
    "worker-bad-queue-name": (
        "celery_workers",
        {"celery_workers": _worker(queues=["data sets"])},
        ["field 'queues'", "not a valid queue name"],
    ),
    "worker-max-memory": (
        "celery_workers",
        {"celery_workers": _worker(pool="gevent", concurrency=10, max_memory_per_child=100000)},
        ["field 'max_memory_per_child'", "prefork only"],
    ),
    "worker-purge": (
        "celery_workers",
        {"celery_workers": _worker(extra_args=["--purge"])},
        ["'--purge' is not allowed"],
    ),
    "worker-device": (
        "celery_workers",
        {"celery_workers": _worker(devices=["/etc/shadow"])},
        ["field 'devices'", "/dev"],
    ),
    "worker-broker-env": (
        "celery_workers",
        {"celery_workers": _worker(environment={"CELERY_BROKER_URL": "redis://x"})},
        ["field 'environment'", "celery_broker_url"],
    ),
    "worker-env-newline": (
        "celery_workers",
        {"celery_workers": _worker(environment={"A": "x\ny"})},
        ["field 'environment'"],
    ),
    "worker-embedded-beat": (
        "celery_workers",
        {"celery_workers": _worker(extra_args=["-B"])},
        ["field 'extra_args'", "'-B' embeds a beat while group celery_beat has"],
    ),
    "worker-key-prefix": (
        "celery_workers",
        {"celery_broker_key_prefix": "cf:"},
        ["field 'celery_broker_key_prefix'", "differs from the broker's redis_acl_key_prefix"],
    ),
    "worker-wrong-type": (
        "celery_workers",
        {"celery_broker_port": "redis"},
        ["role celery_app", "celery_broker_port", "int"],
    ),
}

# Fleet-wide problems, which no single case host names (fragments of one line).
FLEET_CASES: dict[str, list[str]] = {
    "two-beat-hosts": [
        "field 'celery_beat'",
        "2 hosts (",
        "'ops'",
        "'beat-entry'",
        "run beat; at most 1 is allowed",
    ],
    "duplicate-node-name": ["field 'hostname'", "node names must be unique in the fleet"],
    "queue-without-consumer": ["field 'celery_queues'", "queue 'orphan' is consumed by no present worker"],
}


def bad_inventory() -> dict[str, Any]:
    inventory = valid_inventory()
    groups = inventory["all"]["children"]
    for case, (group, variables, _) in CASES.items():
        host = copy.deepcopy(variables)
        if group == "celery_workers":
            # Each worker case host consumes a queue of its own and names its node after itself.
            host.setdefault("celery_workers", [{**WORKER, "queues": [case]}])
            for worker in host["celery_workers"]:
                worker.setdefault("hostname", f"{worker['name']}@{case}")
        groups[group]["hosts"][case] = host
    # Fleet-wide: a node name taken twice, a queue nobody consumes.
    groups["celery_workers"]["hosts"]["node-twin"] = {
        "celery_workers": [{**WORKER, "hostname": "default@w1"}]
    }
    groups["celery_workers"]["vars"]["celery_queues"] = ["q1", "orphan"]
    return inventory


@pytest.fixture(scope="session")
def run_validate(ansible_playbook):
    """Runs playbooks/validate.yml on an inventory source (a path), with the given arguments."""

    def run(inventory: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
        return ansible_playbook("playbooks/validate.yml", *args, inventory=inventory)

    return run


def write_inventory(directory: Path, inventory: dict[str, Any]) -> Path:
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


@pytest.fixture
def validate(tmp_path, run_validate):
    """Runs playbooks/validate.yml on an inventory given as data, with the given arguments."""

    def run(inventory: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
        return run_validate(write_inventory(tmp_path, inventory), *args)

    return run


def assert_no_host_contacted(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert "UNREACHABLE" not in output, output[-3000:]
    recap = play_recap(result.stdout)
    assert recap, output[-3000:]
    assert all(counts["changed"] == counts["unreachable"] == 0 for counts in recap.values()), recap


def validated_hosts(result: subprocess.CompletedProcess[str]) -> int:
    """How many hosts the play checked, from its success message (its one task runs once)."""
    found = re.search(r"Inventory valid: (\d+) hosts", result.stdout)
    assert found, result.stdout[-3000:]
    return int(found[1])


def inventory_hosts(inventory: dict[str, Any]) -> set[str]:
    """Every host named anywhere in an inventory (as YAML data)."""
    hosts: set[str] = set()
    for group in [inventory["all"], *inventory["all"].get("children", {}).values()]:
        hosts |= set(group.get("hosts") or {})
    return hosts


@pytest.fixture
def assert_accepted(validate):
    """`assert_accepted(inventory)`: validate.yml passes on ``inventory`` without contacting a host;
    returns the run for the test's own checks (assert_refused's counterpart)."""

    def check(inventory: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        result = validate(inventory)

        assert result.returncode == 0, result.stdout[-3000:]
        assert_no_host_contacted(result)
        return result

    return check


@pytest.fixture
def assert_refused(validate):
    """`assert_refused(inventory, fragments)`: validate.yml fails on ``inventory`` with one line
    holding every fragment, no host contacted and no password printed."""

    def check(inventory: dict[str, Any], fragments: list[str]) -> None:
        result = validate(inventory)

        assert result.returncode != 0
        assert_no_host_contacted(result)
        assert PASSWORD not in result.stdout + result.stderr
        lines = [line.strip() for line in result.stdout.splitlines()]
        assert any(all(f in line for f in fragments) for line in lines), (fragments, result.stdout[-3000:])

    return check


def test_valid_inventory_passes_without_contacting_a_host(assert_accepted):
    assert_accepted(valid_inventory())


SANDBOX = TOP / "inventories" / "sandbox"


def write_throwaway_pem(directory: Path) -> None:
    """A self-signed certificate as ca.crt and client.crt, its key as client.key: what the sandbox reads."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-only")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(pem)
    (directory / "client.crt").write_bytes(pem)
    (directory / "client.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@pytest.fixture
def validate_sandbox(run_validate, tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`validate_sandbox(sentinel=False, tls=False)`: the validation play on the demo's inventory as
    committed plus this checkout's vaults (made by `make sandbox-vault`, which `make unit` runs);
    `sentinel`: with sentinel.cfg as a second source (`SENTINEL=1 make demo`); `tls`: with
    sandbox_tls on and a stand-in throwaway CA (`TLS=1 make demo`)."""
    password = SANDBOX / "vault-password.txt"
    if not password.is_file():
        pytest.fail(f"{password} is missing: run `make sandbox-vault` first (make unit does)")

    def run(*, sentinel: bool = False, tls: bool = False) -> subprocess.CompletedProcess[str]:
        args = ["-i", str(SANDBOX / "sentinel.cfg")] if sentinel else []
        if tls:
            write_throwaway_pem(tmp_path / "ca")
            args += ["-e", "sandbox_tls=true", "-e", f"celery_fleet_throwaway_ca_dir={tmp_path / 'ca'}"]
        return run_validate(str(SANDBOX), *args, "--vault-password-file", str(password))

    return run


def test_sandbox_inventory_passes_without_contacting_its_containers(validate_sandbox):
    # Its hosts are Docker containers reached with the docker connection, which would fail if
    # tried: none runs.
    result = validate_sandbox()

    assert result.returncode == 0, result.stdout[-3000:]
    assert_no_host_contacted(result)


def test_sandbox_sentinel_inventory_passes_without_contacting_its_containers(validate_sandbox):
    # `SENTINEL=1 make demo`: two more data nodes, three Sentinels, every client through sentinel://.
    result = validate_sandbox(sentinel=True)

    assert result.returncode == 0, result.stdout[-3000:]
    assert_no_host_contacted(result)
    # The sandbox's four hosts and the two more data nodes of sentinel.cfg.
    assert validated_hosts(result) == 6


def test_sandbox_tls_inventory_passes_without_contacting_its_containers(validate_sandbox):
    # `TLS=1 make demo`: sandbox_tls turns the broker TLS-only and every client to rediss://, the CA
    # and client certificate read from the throwaway CA's directory (here a stand-in).
    result = validate_sandbox(tls=True)

    assert result.returncode == 0, result.stdout[-3000:]
    assert_no_host_contacted(result)


def test_sandbox_tls_with_sentinel_passes_without_contacting_its_containers(validate_sandbox):
    # `TLS=1 SENTINEL=1 make demo`: every data node and Sentinel TLS-only, every client through
    # sentinel:// with TLS to the Sentinels and to the master.
    result = validate_sandbox(sentinel=True, tls=True)

    assert result.returncode == 0, result.stdout[-3000:]
    assert_no_host_contacted(result)
    # The sandbox's four hosts and the two more data nodes of sentinel.cfg.
    assert validated_hosts(result) == 6


@pytest.fixture(scope="module")
def refused(tmp_path_factory, run_validate) -> dict[str, Any]:
    result = run_validate(write_inventory(tmp_path_factory.mktemp("validate"), bad_inventory()))
    lines = [line.strip() for line in result.stdout.splitlines()]
    return {"result": result, "lines": lines}


def test_bad_inventory_fails_in_one_run_without_contacting_a_host(refused):
    result = refused["result"]

    assert result.returncode != 0
    assert "Invalid inventory, " in result.stdout
    assert_no_host_contacted(result)
    # Nothing else of the inventory leaks: the test passwords are never printed.
    assert PASSWORD not in result.stdout + result.stderr
    assert "test-only-client-secret" not in result.stdout + result.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_input_is_refused_naming_its_host_and_field(refused, case):
    _, _, fragments = CASES[case]

    lines = [line for line in refused["lines"] if f"host '{case}'" in line]

    assert any(all(f in line for f in fragments) for line in lines), (fragments, lines)


@pytest.mark.parametrize("case", list(FLEET_CASES))
def test_each_fleet_wide_bad_input_is_refused(refused, case):
    fragments = FLEET_CASES[case]

    assert any(all(f in line for f in fragments) for line in refused["lines"]), fragments


def test_valid_hosts_are_not_blamed(refused):
    blamed = {host for host in ("r1", "w2") if any(f"host '{host}'" in line for line in refused["lines"])}

    assert blamed == set()


# --- Sentinel (issue 16): a topology of its own, since it is fleet-wide ----------------------------

SENTINEL_VARS = {
    "redis_sentinel_enabled": True,
    "redis_sentinel_password": PASSWORD,
    "redis_replication_password": PASSWORD,
    "redis_sentinel_auth_password": PASSWORD,
}


def sentinel_inventory() -> dict[str, Any]:
    """Three data nodes, each with a Sentinel; the workers ask the Sentinels for the master."""
    inventory = valid_inventory()
    inventory["all"]["vars"].update(SENTINEL_VARS)
    groups = inventory["all"]["children"]
    redis = groups["redis"]
    redis["hosts"] = {"r1": {}, "r2": {}, "r3": {}}
    groups["redis_sentinel"] = {"hosts": {"r1": {}, "r2": {}, "r3": {}}}
    groups["celery_workers"]["vars"]["celery_broker_sentinels"] = ["10.0.0.1:26379", "10.0.0.2:26379"]
    groups["celery_workers"]["vars"]["celery_broker_sentinel_password"] = PASSWORD
    return inventory


def test_valid_sentinel_inventory_passes_without_contacting_a_host(assert_accepted):
    assert_accepted(sentinel_inventory())


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            lambda inv: inv["all"]["children"]["redis_sentinel"]["hosts"].pop("r3"),
            ["field 'redis_sentinel'", "has 2 host(s)", "at least 3"],
        ),
        (
            lambda inv: inv["all"]["children"].pop("redis_sentinel"),
            ["field 'redis_sentinel_enabled'", "group redis_sentinel is empty or missing"],
        ),
        (
            lambda inv: inv["all"]["vars"].update(redis_sentinel_quorum=2),
            ["field 'redis_sentinel_quorum'", "must be odd"],
        ),
        (
            lambda inv: inv["all"]["vars"].update(redis_sentinel_initial_master="w1"),
            ["field 'redis_sentinel_initial_master'", "'w1' is not a host of group redis"],
        ),
        (
            lambda inv: inv["all"]["children"]["redis"].update(hosts={"r1": {}}),
            ["field 'redis_sentinel_enabled'", "group redis has 1 host(s)"],
        ),
        (
            lambda inv: inv["all"]["children"]["redis"]["hosts"]["r2"].update(redis_sentinel_password=""),
            ["host 'r2'", "field 'redis_sentinel_password'", "16 characters"],
        ),
        (
            lambda inv: inv["all"]["children"]["celery_workers"]["vars"].update(
                celery_broker_master_name="other"
            ),
            ["host 'w1'", "field 'celery_broker_master_name'", "'other' differs"],
        ),
    ],
    ids=[
        "two-sentinels",
        "no-sentinel-group",
        "even-quorum",
        "initial-master",
        "one-data-node",
        "password",
        "name",
    ],
)
def test_each_bad_sentinel_topology_is_refused_naming_the_field(assert_refused, change, fragments):
    inventory = sentinel_inventory()
    change(inventory)

    assert_refused(inventory, fragments)


# --- Monitoring (issue 17): group monitoring, fleet-wide --------------------------------------------


def monitoring_inventory() -> dict[str, Any]:
    """The valid fleet with Prometheus on the ops host and the exporter's ACL user on the broker."""
    inventory = valid_inventory()
    groups = inventory["all"]["children"]
    groups["monitoring"] = {"hosts": {"ops": {}}, "vars": {"prometheus_alertmanager_enabled": True}}
    redis = groups["redis"]["vars"]
    redis["redis_acl_users"] = [
        *redis["redis_acl_users"],
        {"name": "exporter", "password": PASSWORD, "ruleset": "redis_exporter"},
    ]
    redis["redis_exporter_redis_password"] = PASSWORD
    groups["redis"]["hosts"]["r1"] = {"celery_fleet_private_address": "10.0.0.1"}
    groups["flower"]["vars"]["flower_bind"] = "10.0.0.5"
    groups["flower"]["vars"]["flower_allow_plain_http"] = True
    return inventory


def test_valid_monitoring_inventory_passes_without_contacting_a_host(assert_accepted):
    assert_accepted(monitoring_inventory())


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            lambda inv: inv["all"]["children"].pop("flower"),
            ["field 'groups.monitoring'", "monitoring needs Flower"],
        ),
        (
            lambda inv: inv["all"]["children"]["redis"].update(hosts={}),
            ["field 'groups.monitoring'", "needs the Redis hosts"],
        ),
        (
            lambda inv: inv["all"]["children"]["redis"]["hosts"]["r1"].update(
                celery_fleet_private_address="8.8.8.8"
            ),
            [
                "host 'r1'",
                "field 'redis_exporter_listen_address'",
                "public address",
                "without authentication",
            ],
        ),
        (
            lambda inv: (
                inv["all"]["children"]["monitoring"].update(hosts={"w1": {}}),
                inv["all"]["children"]["flower"]["vars"].update(flower_bind="127.0.0.1"),
            ),
            ["host 'ops'", "field 'flower_bind'", "Prometheus runs on w1"],
        ),
        (
            lambda inv: (
                inv["all"]["children"]["monitoring"].update(hosts={"w1": {}}),
                inv["all"]["children"]["flower"]["vars"].update(flower_metrics_public=True),
            ),
            ["host 'ops'", "field 'flower_metrics_public'", "without authentication"],
        ),
        (
            lambda inv: inv["all"]["children"]["monitoring"]["vars"].update(
                prometheus_alert_overrides={"CeleryWorkerOfline": {"for": "5m"}}
            ),
            [
                "host 'ops'",
                "field 'prometheus_alert_overrides.CeleryWorkerOfline'",
                "unknown rule 'CeleryWorkerOfline'",
                "CeleryWorkerOffline",
            ],
        ),
        (
            lambda inv: inv["all"]["children"]["redis"]["vars"].update(
                redis_acl_users=[{"name": "admin", "password": PASSWORD, "ruleset": "admin"}]
            ),
            ["host 'r1'", "field 'redis_acl_users'", "ruleset: redis_exporter"],
        ),
        (
            lambda inv: inv["all"]["children"]["redis"]["vars"].pop("redis_exporter_redis_password"),
            ["host 'r1'", "redis_exporter", "redis_exporter_redis_password"],
        ),
    ],
    ids=[
        "no-flower",
        "no-redis",
        "public-exporter",
        "loopback-flower",
        "public-metrics",
        "unknown-rule",
        "no-acl-user",
        "no-password",
    ],
)
def test_each_bad_monitoring_input_is_refused_naming_the_field(assert_refused, change, fragments):
    inventory = monitoring_inventory()
    change(inventory)

    assert_refused(inventory, fragments)


def test_inventory_without_monitoring_group_needs_no_exporter_settings(validate):
    # valid_inventory() has no monitoring group and no exporter user or password: nothing is asked.
    result = validate(valid_inventory())

    assert result.returncode == 0, result.stdout[-3000:]
    assert "redis_exporter" not in result.stdout


def test_a_sentinel_only_host_is_validated_as_a_sentinel_not_a_data_node(assert_accepted):
    # s1 runs a Sentinel only: group redis' variables (redis_password, the ACL users) are not its.
    inventory = sentinel_inventory()
    inventory["all"]["children"]["redis_sentinel"]["hosts"] = {"r1": {}, "r2": {}, "s1": {}}

    result = assert_accepted(inventory)
    assert "s1" in inventory_hosts(inventory)
    assert validated_hosts(result) == len(inventory_hosts(inventory))


def test_a_sentinel_only_host_still_needs_the_sentinels_password(validate):
    inventory = sentinel_inventory()
    inventory["all"]["children"]["redis_sentinel"]["hosts"] = {
        "r1": {},
        "r2": {},
        "s1": {"redis_sentinel_password": ""},
    }

    result = validate(inventory)

    assert result.returncode != 0
    assert PASSWORD not in result.stdout + result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    fragments = ["host 's1'", "field 'redis_sentinel_password'", "16 characters"]
    assert any(all(f in line for f in fragments) for line in lines), result.stdout[-3000:]
    # Only the Sentinel's rules: the data node's password is not asked of s1.
    assert not any("host 's1'" in line and "redis_password'" in line for line in lines), result.stdout[-3000:]


# --- TLS to the broker (issue 18): one switch for the broker and every client ---------------------

# Fake PEM content: validation checks the block's header, never shows the content.
TLS_CA = "-----BEGIN CERTIFICATE-----\nMIIB-test-only\n-----END CERTIFICATE-----\n"


def tls_inventory() -> dict[str, Any]:
    """The valid fleet with TLS on (redis_tls_enabled in group all) and the clients' CA."""
    inventory = valid_inventory()
    inventory["all"]["vars"].update(redis_tls_enabled=True, celery_broker_tls_ca=TLS_CA)
    inventory["all"]["children"]["redis"]["vars"].update(
        redis_tls_cert_file="/etc/ssl/t/server.crt",
        redis_tls_key_file="/etc/ssl/t/server.key",
        redis_tls_ca_file="/etc/ssl/t/ca.crt",
    )
    return inventory


def test_valid_tls_inventory_passes_without_contacting_a_host(assert_accepted):
    inventory = tls_inventory()
    inventory["all"]["children"]["redis"]["vars"]["redis_port"] = 0

    assert_accepted(inventory)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            lambda inv: inv["all"]["vars"].pop("celery_broker_tls_ca"),
            ["host 'w1'", "field 'celery_broker_tls_ca'", "required with TLS on"],
        ),
        (
            lambda inv: inv["all"]["vars"].update(celery_broker_tls_ca="/etc/ssl/ca.crt"),
            ["host 'ops'", "field 'celery_broker_tls_ca'", "is not PEM certificate content"],
        ),
        (
            lambda inv: inv["all"]["vars"].update(celery_broker_tls_cert=TLS_CA),
            ["host 'w2'", "field 'celery_broker_tls_key'", "needs both"],
        ),
        (
            lambda inv: (
                inv["all"]["children"]["redis"]["vars"].update(redis_port=0),
                inv["all"]["children"]["flower"]["hosts"]["ops"].update(celery_broker_tls_enabled=False),
            ),
            ["host 'ops'", "field 'celery_broker_tls_enabled'", "TLS-only (redis_port 0)"],
        ),
        (
            lambda inv: inv["all"]["children"]["redis"]["hosts"]["r1"].update(redis_tls_enabled=False),
            ["host 'w1'", "field 'celery_broker_tls_enabled'", "redis_tls_enabled is false"],
        ),
    ],
    ids=[
        "no-ca",
        "ca-not-pem",
        "cert-without-key",
        "plain-client-tls-only-broker",
        "tls-client-plain-broker",
    ],
)
def test_each_bad_tls_input_is_refused_naming_the_field(assert_refused, change, fragments):
    inventory = tls_inventory()
    change(inventory)

    assert_refused(inventory, fragments)


def tls_sentinel_inventory() -> dict[str, Any]:
    """The Sentinel topology with TLS on everywhere: data nodes, Sentinels and every client."""
    inventory = sentinel_inventory()
    tls = tls_inventory()
    inventory["all"]["vars"].update(redis_tls_enabled=True, celery_broker_tls_ca=TLS_CA)
    for name in ("redis_tls_cert_file", "redis_tls_key_file", "redis_tls_ca_file"):
        inventory["all"]["children"]["redis"]["vars"][name] = tls["all"]["children"]["redis"]["vars"][name]
    return inventory


def test_valid_tls_sentinel_inventory_passes_without_contacting_a_host(assert_accepted):
    # TLS through Sentinel (both hops): no longer refused by the client rules.
    assert_accepted(tls_sentinel_inventory())


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            lambda inv: inv["all"]["vars"].pop("celery_broker_tls_ca"),
            ["host 'w1'", "field 'celery_broker_tls_ca'", "required with TLS on"],
        ),
        (
            # A data node that is not the first one: every data node counts, not only r1.
            lambda inv: inv["all"]["children"]["redis"]["hosts"]["r3"].update(redis_tls_enabled=False),
            ["host 'w1'", "field 'celery_broker_tls_enabled'", "redis_tls_enabled is false on r3"],
        ),
        (
            # A client without TLS cannot ask a Sentinel that speaks only TLS (even with plain data ports).
            lambda inv: inv["all"]["children"]["flower"]["hosts"]["ops"].update(
                celery_broker_tls_enabled=False
            ),
            ["host 'ops'", "field 'celery_broker_tls_enabled'", "r1, r2, r3 speak only TLS"],
        ),
    ],
    ids=["no-ca", "one-data-node-plain", "plain-client-tls-sentinels"],
)
def test_each_bad_tls_sentinel_input_is_refused_naming_the_field(assert_refused, change, fragments):
    inventory = tls_sentinel_inventory()
    change(inventory)

    assert_refused(inventory, fragments)


# --- inventories/production as committed, its vaults filled in (issue 18) ---------------------------

PEM_CERT = "-----BEGIN CERTIFICATE-----\nTESTONLY\n-----END CERTIFICATE-----\n"
# Assembled at run time so that this file itself holds no key header (the secret scanner).
PEM_KEY = "-----BEGIN " + "PRIVATE KEY-----\nTESTONLY\n-----END " + "PRIVATE KEY-----\n"


def production_copy(tmp_path: Path) -> Path:
    """inventories/production with each encrypted vault file replaced by TEST-ONLY plain values of
    every vault_* variable the plain files reference (PEM-shaped where the name says tls)."""
    source = TOP / "inventories" / "production"
    target = tmp_path / "production"
    plain = {}
    for path in source.rglob("*.yml"):
        relative = path.relative_to(source)
        text = path.read_text()
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        if text.startswith("$ANSIBLE_VAULT;"):
            continue
        (target / relative).write_text(text)
        plain[relative] = text
    names = sorted({name for text in plain.values() for name in re.findall(r"\bvault_\w+", text)})
    values = {
        name: (PEM_KEY if name.endswith("_key") else PEM_CERT) if "_tls_" in name else PASSWORD
        for name in names
    }
    (target / "group_vars" / "all" / "vault.yml").write_text(yaml.safe_dump(values))
    return target


def test_production_inventory_passes_with_its_vaults_filled_in(tmp_path, run_validate):
    inventory = production_copy(tmp_path)

    result = run_validate(str(inventory))

    assert result.returncode == 0, result.stdout[-3000:]
    assert_no_host_contacted(result)
    assert PASSWORD not in result.stdout + result.stderr


def test_production_inventory_serves_flower_over_https():
    flower = yaml.safe_load((TOP / "inventories/production/group_vars/flower/flower.yml").read_text())

    assert flower["flower_tls_enabled"] is True
    assert flower["flower_bind"] == "127.0.0.1"
    assert {flower[f] for f in ("flower_tls_cert", "flower_tls_key", "flower_tls_ca")} == {
        "{{ vault_flower_tls_cert }}",
        "{{ vault_flower_tls_key }}",
        "{{ vault_fleet_tls_ca }}",
    }
