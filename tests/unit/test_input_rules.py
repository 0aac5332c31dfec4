"""Unit tests of the per-role input rules (lib/celery_fleet/*_rules.py, inputs.py, inventory.py):
one case per rule, the message checked for host, field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_fleet import inventory
from celery_fleet.app_rules import app_problems
from celery_fleet.beat_rules import beat_problems, entry_problems
from celery_fleet.flower_rules import auth_matcher, auth_rule_problems, flower_problems
from celery_fleet.inputs import process_manager_problems, role_inputs
from celery_fleet.redis_rules import redis_problems

ROLES = Path(__file__).resolve().parents[2] / "roles"
PASSWORD = "test-only-password-0123456789"
REDIS = {
    "redis_password": PASSWORD,
    "redis_acl_users": [
        {"name": "worker", "password": PASSWORD, "ruleset": "celery_worker"},
        {"name": "admin", "password": PASSWORD, "ruleset": "admin"},
    ],
}
FLOWER = {"flower_users": [{"name": "admin", "password": PASSWORD}]}
OAUTH = {
    "flower_auth": ".*@example.com",
    "flower_auth_provider": "flower.views.auth.GithubLoginHandler",
    "flower_oauth2_key": "id",
    "flower_oauth2_secret": "test-only-secret",
    "flower_oauth2_redirect_uri": "https://flower.example.com/login",
}
APP = {"celery_app_name": "app", "celery_broker_host": "10.0.0.1", "celery_broker_password": PASSWORD}
SENTINEL = {
    "celery_broker_sentinels": ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"],
    "celery_broker_master_name": "celery-fleet",
    "celery_broker_sentinel_password": "test-only-sentinel-password",
}


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# --- process manager ---------------------------------------------------------------------------


@pytest.mark.parametrize("manager", [None, "systemd", "supervisord"])
def test_known_process_manager_passes(manager):
    inputs = {} if manager is None else {"celery_process_manager": manager}

    assert process_manager_problems(inputs, "h") == []


def test_unknown_process_manager_is_named_with_the_choices():
    problem = only(process_manager_problems({"celery_process_manager": "upstart"}, "h"))

    assert problem == "host 'h': field 'celery_process_manager': 'upstart' is not one of systemd, supervisord"


# --- redis -------------------------------------------------------------------------------------


def test_valid_redis_passes():
    assert redis_problems(REDIS, "r1") == []


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"redis_password": None}, ["field 'redis_password'", "missing, empty or shorter than 16"]),
        ({"redis_password": "fifteen-chars-x"}, ["field 'redis_password'", "16 characters"]),
        ({"redis_port": 70000}, ["field 'redis_port'", "70000", "1-65535"]),
        ({"redis_port": 0}, ["field 'redis_port'", "only with redis_tls_enabled"]),
        ({"redis_tls_enabled": True}, ["redis_tls_cert_file, redis_tls_key_file, redis_tls_ca_file"]),
        (
            {
                "redis_tls_enabled": True,
                "redis_tls_port": 6379,
                **dict.fromkeys(("redis_tls_cert_file", "redis_tls_key_file", "redis_tls_ca_file"), "/p"),
            },
            ["field 'redis_tls_port'", "must differ"],
        ),
        (
            {"redis_maxmemory_policy": "allkeys-lru"},
            [
                "field 'redis_maxmemory_policy'",
                "'allkeys-lru'",
                "silently drops queued",
                "noeviction",
                "override",
            ],
        ),
        ({"redis_acl_key_prefix": "cf:*"}, ["field 'redis_acl_key_prefix'", "'cf:*' is not allowed"]),
        ({"redis_acl_celery_db": -1}, ["field 'redis_acl_celery_db'", ">= 0"]),
        (
            {"redis_acl_users": [{"name": "w", "password": PASSWORD, "ruleset": "celery_wroker"}]},
            [
                "field 'redis_acl_users'",
                "w ('celery_wroker')",
                "celery_worker, celery_producer, celery_flower, redis_exporter, admin",
            ],
        ),
        (
            {"redis_acl_users": [{"name": "w", "password": "short", "ruleset": "admin"}]},
            ["field 'redis_acl_users'", "too short: w"],
        ),
        (
            {"redis_acl_users": [{"name": "w", "password": PASSWORD, "ruleset": "admin"}] * 2},
            ["field 'redis_acl_users'", "duplicated: w"],
        ),
        (
            {"redis_acl_users": [{"name": "default", "password": PASSWORD, "ruleset": "admin"}]},
            ["field 'redis_acl_users'", "not 'default'"],
        ),
        (
            {"redis_acl_users": [{"name": "raw", "password": PASSWORD, "rules": "on >pw ~* +@all"}]},
            ["field 'redis_acl_users'", "offending users: raw"],
        ),
        (
            {"redis_acl_users": [{"name": "both", "password": PASSWORD, "ruleset": "admin", "rules": "~*"}]},
            ["field 'redis_acl_users'", "users both: set exactly one of ruleset or rules"],
        ),
        (
            {"redis_default_user_enabled": False, "redis_acl_users": REDIS["redis_acl_users"][:1]},
            ["field 'redis_acl_users'", "no user has ruleset admin"],
        ),
        ({"redis_acl_users": "worker"}, ["field 'redis_acl_users'", "is not a list of mappings"]),
    ],
)
def test_each_redis_rule_names_host_and_field(change, fragments):
    problem = only(redis_problems({**REDIS, **change}, "r1"))

    assert problem.startswith("host 'r1': ")
    assert all(f in problem for f in fragments), problem


def test_redis_messages_never_show_a_password():
    users = [{"name": "w", "password": "short-secret", "ruleset": "nope"}]

    problems = redis_problems({"redis_password": "short-secret", "redis_acl_users": users}, "r1")

    assert problems
    assert not any("short-secret" in p for p in problems)


def test_redis_server_must_be_packaged_by_the_system():
    problem = only(
        redis_problems({**REDIS, "redis_server": "valkey"}, "r1", {"redis": "redis-server"}, "Debian 12")
    )

    assert (
        problem
        == "host 'r1': field 'redis_server': 'valkey' is not packaged by Debian 12; allowed here: redis"
    )


OLD = "test-only-old-password-0123"


def test_previous_passwords_of_a_rotation_pass():
    users = [
        {**REDIS["redis_acl_users"][0], "previous_passwords": [OLD, OLD + "-2"]},
        REDIS["redis_acl_users"][1],
    ]

    assert redis_problems({**REDIS, "redis_acl_users": users, "redis_previous_passwords": [OLD]}, "r1") == []


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            {"previous_passwords": ["short-old"]},
            ["previous passwords of user worker", "number 1", "16 characters"],
        ),
        ({"previous_passwords": [OLD, "x" * 10]}, ["user worker", "number 2 of the list"]),
        ({"previous_passwords": [PASSWORD]}, ["user worker", "repeat the current password"]),
        ({"previous_passwords": [OLD, OLD]}, ["user worker", "repeat the current password or each other"]),
        ({"previous_passwords": OLD}, ["user worker", "must be a list of strings"]),
        ({"previous_passwords": [OLD, 7]}, ["user worker", "must be a list of strings"]),
    ],
)
def test_each_previous_password_rule_of_an_acl_user_is_named(change, fragments):
    users = [{**REDIS["redis_acl_users"][0], **change}, REDIS["redis_acl_users"][1]]

    problem = only(redis_problems({**REDIS, "redis_acl_users": users}, "r1"))

    assert problem.startswith("host 'r1': field 'redis_acl_users': ")
    assert all(f in problem for f in fragments), problem
    assert PASSWORD not in problem and OLD not in problem


@pytest.mark.parametrize(
    ("previous", "fragment"),
    [([PASSWORD], "repeat the current password"), (["short-old"], "number 1"), ("x", "list of strings")],
)
def test_previous_passwords_of_the_default_user_are_checked(previous, fragment):
    problem = only(redis_problems({**REDIS, "redis_previous_passwords": previous}, "r1"))

    assert problem.startswith(
        "host 'r1': field 'redis_previous_passwords': previous passwords of the default user"
    )
    assert fragment in problem
    assert PASSWORD not in problem


def test_previous_passwords_of_a_disabled_default_user_are_ignored():
    inputs = {"redis_default_user_enabled": False, "redis_acl_users": REDIS["redis_acl_users"]}

    assert redis_problems({**inputs, "redis_previous_passwords": ["short"]}, "r1") == []


def test_redis_default_user_off_with_an_admin_needs_no_password():
    inputs = {"redis_default_user_enabled": False, "redis_acl_users": REDIS["redis_acl_users"]}

    assert redis_problems(inputs, "r1") == []


# --- flower ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inputs",
    [
        FLOWER,
        {**OAUTH},
        {**OAUTH, "flower_auth": "a@example.com|b@example.org"},
        {"flower_allow_unauthenticated": True},
    ],
    ids=["basic", "oauth-wildcard", "oauth-list", "unauthenticated-allowed"],
)
def test_valid_flower_passes(inputs):
    assert flower_problems(inputs, "f1") == []


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"flower_users": []}, ["field 'flower_users'", "flower_auth", "flower_allow_unauthenticated: true"]),
        ({"flower_port": 0}, ["field 'flower_port'", "1-65535"]),
        ({"flower_port": "http"}, ["field 'flower_port'", "'http'"]),
        (
            {"flower_users": [{"name": "a", "password": ""}]},
            ["field 'flower_users'", "non-empty", "offending users: a"],
        ),
        (
            {"flower_users": [{"name": "a", "password": " x"}]},
            ["field 'flower_users'", "non-blank", "offending users: a"],
        ),
        (
            {"flower_users": [{"name": "a", "password": "x,y"}]},
            ["field 'flower_users'", "','", "offending users: a"],
        ),
        (
            {"flower_users": [{"name": "a b", "password": "x"}]},
            ["field 'flower_users'", "offending names: a b"],
        ),
        (
            {"flower_users": [{"name": "a", "password": "x"}] * 2},
            ["field 'flower_users'", "unique", "offending names: a"],
        ),
        (OAUTH, ["field 'flower_auth'", "not both"]),
        (
            {"flower_users": [], **OAUTH, "flower_oauth2_secret": ""},
            ["field 'flower_oauth2_secret'", "vault"],
        ),
        ({"flower_users": [], **OAUTH, "flower_oauth2_key": ""}, ["field 'flower_oauth2_key'", "client id"]),
        (
            {"flower_users": [], **OAUTH, "flower_auth_provider": "Github"},
            ["field 'flower_auth_provider'", "class"],
        ),
        (
            {"flower_users": [], **OAUTH, "flower_oauth2_redirect_uri": "flower/login"},
            ["field 'flower_oauth2_redirect_uri'", "http(s)"],
        ),
        ({"flower_url_prefix": "a b"}, ["field 'flower_url_prefix'", "URL path"]),
        ({"flower_max_tasks": 0}, ["field 'flower_max_tasks'", ">= 1"]),
        ({"flower_state_save_interval": -1}, ["field 'flower_state_save_interval'", ">= 0"]),
        ({"flower_extra_options": {"Bad": 1}}, ["field 'flower_extra_options'", "keys Bad"]),
        ({"flower_extra_options": {"port": 1}}, ["field 'flower_extra_options'", "keys port", "role's own"]),
        ({"celery_process_manager": "runit"}, ["field 'celery_process_manager'", "systemd, supervisord"]),
    ],
)
def test_each_flower_rule_names_host_and_field(change, fragments):
    problem = only(flower_problems({**FLOWER, **change}, "f1"))

    assert problem.startswith("host 'f1': ")
    assert all(f in problem for f in fragments), problem


OLD = "test-only-password-old-0123"


def test_flower_previous_passwords_of_a_rotation_pass():
    users = [
        {"name": "admin", "password": PASSWORD, "previous_passwords": [OLD, OLD + "-2"]},
        {"name": "viewer", "password": PASSWORD, "previous_passwords": []},
    ]

    assert flower_problems({"flower_users": users}, "f1") == []


@pytest.mark.parametrize(
    ("previous", "fragments"),
    [
        ([PASSWORD], ["repeat the current password"]),
        ([OLD, OLD], ["repeat the current password or each other"]),
        ([""], ["number 1 of the list", "empty"]),
        ([OLD, " x"], ["number 2 of the list", "blank"]),
        ([OLD, "a,b"], ["number 2 of the list", "','"]),
        (OLD, ["must be a list of strings"]),
        ([OLD, 7], ["must be a list of strings"]),
    ],
    ids=["current", "twice", "empty", "blank", "comma", "not-a-list", "not-a-string"],
)
def test_each_flower_previous_password_rule_names_host_field_and_user(previous, fragments):
    users = [{"name": "admin", "password": PASSWORD, "previous_passwords": previous}]

    problem = only(flower_problems({"flower_users": users}, "f1"))

    assert problem.startswith("host 'f1': field 'flower_users': previous_passwords of user 'admin'")
    assert all(f in problem for f in fragments), problem
    assert PASSWORD not in problem and OLD not in problem


def test_flower_through_sentinel_needs_valid_sentinels_and_their_password():
    assert flower_problems({**FLOWER, **SENTINEL}, "f1") == []
    problems = flower_problems(
        {
            **FLOWER,
            **SENTINEL,
            "celery_broker_sentinels": ["s1:26379", "s1:26379"],
            "celery_broker_sentinel_password": "",
        },
        "f1",
    )

    assert problems == [
        "host 'f1': field 'celery_broker_sentinels': names a Sentinel more than once",
        "host 'f1': field 'celery_broker_sentinel_password': is required with celery_broker_sentinels "
        "(the Sentinels' requirepass; keep it in a vault file)",
    ]


def test_a_sentinel_problem_of_a_flower_host_is_listed_once():
    specs = inventory.argument_specs(["celery_app", "flower"], str(ROLES))
    bad = {**APP, **FLOWER, **SENTINEL, "celery_broker_sentinel_password": ""}

    problems = inventory.input_problems(specs, bad, "f1")

    assert [p for p in problems if "celery_broker_sentinel_password" in p] == [
        "host 'f1': field 'celery_broker_sentinel_password': is required with celery_broker_sentinels "
        "(the Sentinels' requirepass; keep it in a vault file)"
    ]
    assert not any("test-only-sentinel-password" in p for p in problems)


# Flower over HTTPS (issue 18): PEM content as the vault gives it (only its header is checked).
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY_HEADER = "EC PRIVATE" + " KEY"  # split: scripts/scan-secrets.py refuses a key in the tree
KEY = f"-----BEGIN {KEY_HEADER}-----\ntest-only-key-material\n-----END {KEY_HEADER}-----\n"
HTTPS = {"flower_tls_enabled": True, "flower_tls_cert": CERT, "flower_tls_key": KEY}


@pytest.mark.parametrize(
    "change",
    [
        {},
        HTTPS,
        {**HTTPS, "flower_tls_ca": CERT, "flower_tls_port": 8443, "flower_tls_bind": "::"},
        {**HTTPS, "flower_tls_server_name": "flower.example.com", "flower_tls_hsts_max_age": 0},
        {"flower_bind": "::1"},
        {"flower_bind": "localhost"},
        {"flower_bind": "0.0.0.0", "flower_allow_plain_http": True},
        {**HTTPS, "flower_bind": "10.0.0.5", "flower_allow_plain_http": True},
        # TLS off: its variables are not read.
        {"flower_tls_enabled": False, "flower_tls_cert": "not pem", "flower_tls_port": 0},
    ],
    ids=[
        "loopback",
        "https",
        "https-ca-port-v6",
        "https-name",
        "v6-loopback",
        "localhost",
        "plain-allowed",
        "https-and-plain-allowed",
        "tls-off",
    ],
)
def test_valid_flower_network_passes(change):
    assert flower_problems({**FLOWER, **change}, "f1") == []


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            {"flower_bind": "0.0.0.0"},
            [
                "field 'flower_bind'",
                "'0.0.0.0' is not a loopback address",
                "plain HTTP",
                "127.0.0.1 or ::1",
                "flower_tls_enabled: true",
                "flower_allow_plain_http: true",
            ],
        ),
        ({"flower_bind": "10.0.0.5"}, ["field 'flower_bind'", "'10.0.0.5'", "flower_allow_plain_http: true"]),
        ({"flower_bind": "flower.internal"}, ["field 'flower_bind'", "'flower.internal'"]),
        # A string "true" from an -e is not the explicit boolean.
        ({"flower_bind": "0.0.0.0", "flower_allow_plain_http": "true"}, ["field 'flower_bind'"]),
        (
            {**HTTPS, "flower_bind": "0.0.0.0"},
            [
                "field 'flower_bind'",
                "nginx serves it over HTTPS on flower_tls_port",
                "flower_allow_plain_http",
            ],
        ),
        ({"flower_tls_enabled": "yes"}, ["field 'flower_tls_enabled'", "true or false"]),
        ({**HTTPS, "flower_tls_cert": ""}, ["field 'flower_tls_cert'", "required with flower_tls_enabled"]),
        ({**HTTPS, "flower_tls_key": None}, ["field 'flower_tls_key'", "required with flower_tls_enabled"]),
        ({**HTTPS, "flower_tls_cert": KEY}, ["field 'flower_tls_cert'", "not PEM certificate", "not shown"]),
        ({**HTTPS, "flower_tls_key": CERT}, ["field 'flower_tls_key'", "not PEM key", "not shown"]),
        ({**HTTPS, "flower_tls_ca": "ca.crt"}, ["field 'flower_tls_ca'", "not PEM certificate"]),
        ({**HTTPS, "flower_tls_port": 70000}, ["field 'flower_tls_port'", "1-65535"]),
        ({**HTTPS, "flower_tls_port": 5555}, ["field 'flower_tls_port'", "flower_port too", "a port each"]),
        (
            {**HTTPS, "flower_tls_bind": "flower.example.com"},
            ["field 'flower_tls_bind'", "not an IP address"],
        ),
        (
            {**HTTPS, "flower_tls_server_name": "a.example.com; include /etc/shadow"},
            ["field 'flower_tls_server_name'", "not a host name"],
        ),
        ({**HTTPS, "flower_tls_hsts_max_age": -1}, ["field 'flower_tls_hsts_max_age'", ">= 0"]),
        ({"flower_extra_options": {"certfile": "/c"}}, ["field 'flower_extra_options'", "keys certfile"]),
    ],
)
def test_each_flower_network_rule_names_host_and_field(change, fragments):
    problem = only(flower_problems({**FLOWER, **change}, "f1"))

    assert problem.startswith("host 'f1': ")
    assert all(f in problem for f in fragments), problem


def test_flower_tls_messages_never_show_the_key():
    problems = flower_problems({**FLOWER, **HTTPS, "flower_tls_cert": KEY, "flower_tls_ca": KEY}, "f1")

    assert len(problems) == 2
    assert not any("test-only-key-material" in p for p in problems)


def test_input_problems_with_spec_defaults_refuse_flower_off_loopback_without_tls():
    specs = inventory.argument_specs(["flower"], str(ROLES))

    assert inventory.input_problems(specs, {**FLOWER}, "ops") == []
    problems = inventory.input_problems(specs, {**FLOWER, "flower_bind": "0.0.0.0"}, "ops")
    assert len(problems) == 1
    assert "field 'flower_bind'" in problems[0]
    assert inventory.input_problems(specs, {**FLOWER, **HTTPS}, "ops") == []


def test_flower_messages_never_show_a_password_or_secret():
    problems = flower_problems({"flower_users": [{"name": "a", "password": "p,w"}], **OAUTH}, "f1")

    assert problems
    assert not any("p,w" in p or "test-only-secret" in p for p in problems)


@pytest.mark.parametrize(
    "rule",
    [
        "a@example\\.com$",
        ".*@example.com.*",
        "a@.*",
        ".*a.*@example.com",
        "a@example.com|.*@b.org",
    ],
)
def test_auth_rule_outside_flowers_syntax_is_refused(rule):
    problem = only(auth_rule_problems(rule))

    assert "Flower 2.2's syntax" in problem


def test_regex_rule_message_shows_the_lookalike_address_to_refuse():
    assert "a@example.com.evil.org" in only(auth_rule_problems("a@example\\.com$"))


def test_auth_matcher_is_flowers_whole_address_match():
    matcher = auth_matcher(".*@example.com")

    assert matcher.match("ops@example.com")
    assert not matcher.match("a@example.com.evil.org")
    assert not matcher.match("a@example.org")


# --- beat --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"task": "app.tasks.ping", "schedule": 30},
        {
            "task": "app.tasks.ping",
            "schedule": 0.5,
            "args": [1],
            "kwargs": {"a": 1},
            "options": {"queue": "q"},
        },
        {"task": "app.tasks.ping", "crontab": {"minute": "*/5", "hour": "3"}},
    ],
)
def test_valid_beat_entry_passes(entry):
    assert beat_problems({"celery_beat_schedule": {"e": entry}}, "b1") == []


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("app.tasks.ping", "is not a mapping"),
        ({"task": "app.tasks.ping"}, "exactly one of `schedule`"),
        ({"task": "app.tasks.ping", "schedule": 1, "crontab": {"hour": "1"}}, "exactly one of `schedule`"),
        ({"task": "app tasks", "schedule": 1}, "`task` 'app tasks' is not a task name"),
        ({"schedule": 1}, "`task` None"),
        ({"task": "t", "schedule": 0}, "`schedule` 0 is not a number of seconds > 0"),
        ({"task": "t", "schedule": True}, "`schedule` True"),
        ({"task": "t", "crontab": {"second": "1"}}, "minute, hour, day_of_week, day_of_month, month_of_year"),
        ({"task": "t", "schedule": 1, "args": "x"}, "`args` 'x' is not a list"),
        ({"task": "t", "schedule": 1, "kwargs": []}, "`kwargs` [] is not a mapping"),
        ({"task": "t", "schedule": 1, "options": 1}, "`options` 1 is not a mapping"),
        ({"task": "t", "schedule": 1, "every": 1}, "unknown fields every; allowed: task, schedule, crontab"),
    ],
)
def test_each_beat_entry_rule_is_named(entry, fragment):
    problem = only(beat_problems({"celery_beat_schedule": {"tick": entry}}, "b1"))

    assert problem.startswith("host 'b1': field 'celery_beat_schedule.tick': ")
    assert fragment in problem


def test_every_problem_of_an_entry_is_reported_at_once():
    assert len(entry_problems({"task": "a b", "args": 1})) == 3


def test_beat_checks_the_process_manager_and_the_schedule_type():
    problems = beat_problems({"celery_process_manager": "x", "celery_beat_schedule": []}, "b1")

    assert [p.split(": ")[1] for p in problems] == [
        "field 'celery_process_manager'",
        "field 'celery_beat_schedule'",
    ]


# --- app ---------------------------------------------------------------------------------------


def test_valid_app_passes():
    assert app_problems(APP, "w1") == []
    # Through Sentinel: no celery_broker_host needed.
    assert app_problems({**APP, **SENTINEL, "celery_broker_host": None}, "w1") == []
    assert app_problems({"celery_app_name": "app", "celery_broker_url": "redis://h:6379/0"}, "w1") == []


def test_app_tls_follows_the_fleet_switch_and_needs_the_ca():
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert app_problems({**APP, "redis_tls_enabled": True, "celery_broker_tls_ca": ca}, "w1") == []
    [missing] = app_problems({**APP, "redis_tls_enabled": True}, "w1")
    assert "celery_broker_tls_ca" in missing and "w1" in missing
    # The client's own switch wins over the fleet's.
    assert app_problems({**APP, "redis_tls_enabled": True, "celery_broker_tls_enabled": False}, "w1") == []
    # TLS through Sentinel (both hops): accepted, with the same need of the CA.
    sentinel = {**APP, **SENTINEL, "celery_broker_tls_enabled": True, "celery_broker_tls_ca": ca}
    assert app_problems(sentinel, "w1") == []
    [no_ca] = app_problems({**sentinel, "celery_broker_tls_ca": ""}, "w1")
    assert "celery_broker_tls_ca" in no_ca and "required with TLS on" in no_ca


def test_app_name_and_home_follow_the_layout_rules():
    # The spec's default home is a template until Ansible renders it: accepted as it stands.
    assert app_problems({**APP, "celery_app_home": "/opt/{{ celery_app_name }}"}, "w1") == []
    assert app_problems({**APP, "celery_app_name": "My App"}, "w1") == [
        "host 'w1': field 'celery_app_name': 'My App' is not a user name: lowercase letters, digits, "
        "'_' or '-', starting with a letter or '_', at most 31 characters"
    ]
    assert app_problems({**APP, "celery_app_home": "opt/app"}, "w1") == [
        "host 'w1': field 'celery_app_home': 'opt/app' is not an absolute path"
    ]


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            {"celery_broker_password": ""},
            ["field 'celery_broker_password'", "Redis ACL user 'worker'", "celery_broker_url"],
        ),
        (
            {"celery_broker_host": None, "celery_broker_user": "producer"},
            ["field 'celery_broker_host'", "Redis ACL user 'producer'"],
        ),
        (
            {"celery_app_src": "/src", "celery_app_git_repo": "https://g/r.git"},
            ["celery_app_src, celery_app_git_repo", "not both"],
        ),
        (
            {"celery_app_environment": {"OK": "1", "NOT-OK": "2", "1X": "3"}},
            ["field 'celery_app_environment'", "NOT-OK, 1X"],
        ),
        ({"celery_app_environment": ["A=1"]}, ["field 'celery_app_environment'", "is not a mapping"]),
        (
            {**SENTINEL, "celery_broker_sentinels": ["10.0.0.1"]},
            ["field 'celery_broker_sentinels'", "'10.0.0.1' is not an \"address:port\" string"],
        ),
        ({**SENTINEL, "celery_broker_master_name": ""}, ["field 'celery_broker_master_name'", "non-empty"]),
        (
            {**SENTINEL, "celery_broker_sentinel_password": ""},
            ["field 'celery_broker_sentinel_password'", "required with celery_broker_sentinels"],
        ),
        (
            {**SENTINEL, "celery_broker_password": ""},
            ["field 'celery_broker_password'", "Redis ACL user 'worker'"],
        ),
    ],
)
def test_each_app_rule_names_host_and_field(change, fragments):
    problem = only(app_problems({**APP, **change}, "w1"))

    assert problem.startswith("host 'w1': ")
    assert all(f in problem for f in fragments), problem


# --- the validate play's helpers --------------------------------------------------------------


def test_role_inputs_are_the_spec_defaults_overridden_by_what_is_set():
    options = {"a": {"type": "int", "default": 1}, "b": {"type": "str", "default": "x"}, "c": {"type": "str"}}

    inputs = role_inputs(options, {"b": "y", "other": 1})

    assert inputs == {"a": 1, "b": "y"}


def test_roles_of_host_follow_the_groups_of_the_plays():
    role_groups = {"redis": ["redis"], "celery_app": ["celery_workers", "flower"], "flower": ["flower"]}

    assert inventory.roles_of_host(role_groups, ["flower"]) == ["celery_app", "flower"]
    assert inventory.roles_of_host(role_groups, ["ungrouped"]) == []


def test_argument_specs_load_every_rules_role():
    specs = inventory.argument_specs(list(inventory.RULES), str(ROLES))

    assert set(specs) == set(inventory.RULES)
    assert specs["redis"]["redis_maxmemory_policy"]["default"] == "noeviction"


def test_input_problems_apply_the_role_defaults_and_list_a_shared_problem_once():
    specs = inventory.argument_specs(["celery_worker", "celery_beat", "flower"], str(ROLES))

    problems = inventory.input_problems(specs, {"celery_process_manager": "upstart", **FLOWER}, "ops")

    assert problems == [
        "host 'ops': field 'celery_process_manager': 'upstart' is not one of systemd, supervisord"
    ]


def test_input_problems_with_spec_defaults_refuse_a_flower_without_users():
    specs = inventory.argument_specs(["flower"], str(ROLES))

    problems = inventory.input_problems(specs, {}, "ops")

    assert len(problems) == 1
    assert "field 'flower_users'" in problems[0]


class _Vars(dict):
    """A host's variables as the lookup hands them over: one may fail to template."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if isinstance(value, Exception):
            raise value
        return value


def test_fleet_input_problems_check_each_host_against_its_roles_specs_and_rules():
    role_groups = {"redis": ["redis"], "celery_app": ["celery_workers"], "celery_worker": ["celery_workers"]}
    hostvars = {
        "r1": _Vars(group_names=["redis"], redis_appendfsync="sometimes", celery_workers="not a list"),
        "w1": _Vars(
            group_names=["celery_workers"],
            celery_app_name="app",
            celery_app_module="app.celery",
            celery_process_manager="upstart",
            celery_broker_host=ValueError("'hostvars' is undefined"),
        ),
        "w2": _Vars(
            group_names=["celery_workers"],
            celery_app_name="app",
            celery_app_module="app.celery",
            celery_broker_url="redis://worker:secret@10.0.0.1:6379/0",  # TEST ONLY
        ),
    }

    problems = inventory.fleet_input_problems(hostvars, ["r1", "w1", "w2"], role_groups, str(ROLES))

    # Types and choices as validate_argument_spec words them, named; only the roles of the host's
    # groups (r1's celery_workers is no variable of redis).
    assert problems[0].startswith(
        "host 'r1': role redis (meta/argument_specs.yml): value of redis_appendfsync must be one of:"
    )
    assert not [p for p in problems if "celery_workers" in p and "r1" in p]
    # A variable that cannot be templated is named; the rules still run on the rest.
    assert "host 'w1': celery_broker_host cannot be templated: 'hostvars' is undefined" in problems
    assert any(
        p.startswith("host 'w1'") and "celery_process_manager" in p and "upstart" in p for p in problems
    )
    assert not [p for p in problems if "'w2'" in p]


def test_fleet_input_problems_refuse_a_variable_only_a_playbook_sets():
    """celery_app_unchanged in an inventory would skip the app's converge on every run, beat and
    Flower hosts included: refused, named, whatever its value."""
    role_groups = {"celery_app": ["celery_workers", "flower"]}
    hostvars = {
        host: _Vars(
            group_names=[group],
            celery_app_name="app",
            celery_app_module="app.celery",
            celery_broker_url="redis://worker:secret@10.0.0.1:6379/0",  # TEST ONLY
            celery_app_unchanged=value,
        )
        for host, group, value in (("w1", "celery_workers", True), ("f1", "flower", False))
    }

    problems = inventory.fleet_input_problems(hostvars, ["w1", "f1"], role_groups, str(ROLES))

    assert problems == [
        f"host '{host}': celery_app_unchanged is set by playbooks/deploy-workers.yml, from the host's "
        "record of its last converge, not in an inventory or with -e: remove it"
        for host in ("w1", "f1")
    ]
    # Every such variable is one of the role's documented ones (argument specs, README).
    for name in inventory.CALLER_SET:
        assert name in inventory.argument_specs(["celery_app"], str(ROLES))["celery_app"]
