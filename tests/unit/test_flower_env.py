"""Unit tests of celery_fleet.flower.flower_environment: Flower's environment file, in order."""

from __future__ import annotations

from celery_fleet.flower import flower_environment, written_files

DEFAULTS = {
    "flower_bind": "127.0.0.1",
    "flower_port": 5555,
    "flower_max_tasks": 10000,
    "flower_persistent": True,
    "flower_state_save_interval": 60,
    "flower_metrics_public": False,
    "flower_url_prefix": "",
    "flower_users": [],
    "flower_auth": "",
    "flower_extra_options": {},
}
BASE = [
    "FLOWER_ADDRESS",
    "FLOWER_PORT",
    "FLOWER_MAX_TASKS",
    "FLOWER_PERSISTENT",
    "FLOWER_DB",
    "FLOWER_STATE_SAVE_INTERVAL",
    "CELERY_FLEET_FLOWER_METRICS_PUBLIC",
]


def test_defaults_give_the_base_options_as_strings():
    env = flower_environment(DEFAULTS, "/var/lib/app/flower/flower", {})

    assert list(env) == BASE
    assert env["FLOWER_PORT"] == "5555"
    assert env["FLOWER_PERSISTENT"] == "true"
    assert env["FLOWER_STATE_SAVE_INTERVAL"] == "60000"
    assert env["CELERY_FLEET_FLOWER_METRICS_PUBLIC"] == "false"


def test_basic_auth_joins_users_and_broker_env_and_extra_options_come_last():
    inputs = {
        **DEFAULTS,
        "flower_users": [{"name": "a", "password": "p:1"}, {"name": "b", "password": "x y"}],
        "flower_extra_options": {"natural_time": True, "purge_offline_workers": 60},
    }

    env = flower_environment(inputs, "db", {"CELERY_BROKER_URL": "redis://u:p@h:6379/0"})

    assert list(env)[len(BASE) :] == [
        "FLOWER_BASIC_AUTH",
        "CELERY_BROKER_URL",
        "FLOWER_NATURAL_TIME",
        "FLOWER_PURGE_OFFLINE_WORKERS",
    ]
    assert env["FLOWER_BASIC_AUTH"] == "a:p:1,b:x y"
    assert env["FLOWER_NATURAL_TIME"] == "True"
    assert env["FLOWER_PURGE_OFFLINE_WORKERS"] == "60"


def test_previous_passwords_add_entries_of_the_same_user_after_every_current_one():
    # Flower compares the whole "name:password" with each entry: both entries of a let a in.
    inputs = {
        **DEFAULTS,
        "flower_users": [
            {"name": "a", "password": "new", "previous_passwords": ["old", "older"]},
            {"name": "b", "password": "x", "previous_passwords": []},
            {"name": "c", "password": "y"},
        ],
    }

    env = flower_environment(inputs, "db", {})

    assert env["FLOWER_BASIC_AUTH"] == "a:new,b:x,c:y,a:old,a:older"


def test_oauth_url_prefix_and_cookie_secret():
    inputs = {
        **DEFAULTS,
        "flower_url_prefix": "flower",
        "flower_cookie_secret": "c",
        "flower_auth": ".*@example.com",
        "flower_auth_provider": "flower.views.auth.GithubLoginHandler",
        "flower_oauth2_key": "k",
        "flower_oauth2_redirect_uri": "https://x/login",
    }

    env = flower_environment(inputs, "db", {})

    assert list(env)[len(BASE) :] == [
        "FLOWER_URL_PREFIX",
        "FLOWER_COOKIE_SECRET",
        "FLOWER_AUTH",
        "FLOWER_AUTH_PROVIDER",
        "FLOWER_OAUTH2_KEY",
        "FLOWER_OAUTH2_SECRET",
        "FLOWER_OAUTH2_REDIRECT_URI",
    ]
    assert env["FLOWER_OAUTH2_SECRET"] == ""


SPECS = [
    {"path": "/etc/a/flower-tls/flower.crt", "content_base64": "Q0VSVA==", "mode": "0644", "backup": True},
    {
        "path": "/etc/a/flower-tls/flower.key",
        "content_base64": "UEVNIEJPRFk=",
        "mode": "0600",
        "secret": True,
    },
    {"path": "/etc/a/flower-tls/ca.crt", "content_base64": "Q0E=", "mode": "0644"},
    {"path": "/etc/nginx/conf.d/a-flower.conf", "content_base64": "c2l0ZQ==", "mode": "0644"},
]


def test_written_files_restore_what_had_a_backup_and_remove_what_was_new():
    # Arrange: the registered result of tasks/https_on.yml's celery_fleet_files task.
    result = {
        "changed": True,
        "changed_paths": ["/etc/a/flower-tls", *[spec["path"] for spec in SPECS]],
        "content_changed": [
            "/etc/a/flower-tls/flower.crt",
            "/etc/a/flower-tls/flower.key",
            "/etc/nginx/conf.d/a-flower.conf",
        ],
        "backup_files": {"/etc/a/flower-tls/flower.key": "/k.1~", "/etc/nginx/conf.d/a-flower.conf": "/y~"},
    }

    # Act
    written = written_files(result, SPECS)

    # Assert
    assert written == {
        "written": [
            "/etc/a/flower-tls/flower.crt",
            "/etc/a/flower-tls/flower.key",
            "/etc/nginx/conf.d/a-flower.conf",
        ],
        "restore": [
            {"path": "/etc/a/flower-tls/flower.key", "src": "/k.1~", "mode": "0600", "secret": True},
            {"path": "/etc/nginx/conf.d/a-flower.conf", "src": "/y~", "mode": "0644", "secret": False},
        ],
        "remove": ["/etc/a/flower-tls/flower.crt"],
        "backups": ["/k.1~", "/y~"],
    }
    assert "UEVNIEJPRFk=" not in repr(written) and "PEM BODY" not in repr(written)


def test_written_files_of_a_run_that_changed_nothing_is_empty():
    empty = {"written": [], "restore": [], "remove": [], "backups": []}
    assert written_files({"changed": False, "content_changed": [], "backup_files": {}}, SPECS) == empty
    assert written_files({"skipped": True}, SPECS) == empty
