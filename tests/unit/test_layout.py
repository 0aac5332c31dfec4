"""The app's layout (one place for its paths and service names) and the inspect-reply reader."""

import pytest
from celery_fleet.errors import FleetError
from celery_fleet.layout import app_layout, inspect_reply


def test_defaults_follow_celery_app_role():
    layout = app_layout("shop")
    assert layout["home"] == "/opt/shop"
    assert layout["celery"] == "/opt/shop/bin/celery"
    assert layout["env_wrapper"] == "/opt/shop/bin/celery-env"
    assert layout["venv_celery"] == "/opt/shop/venv/bin/celery"
    assert layout["live_check"] == "/opt/shop/bin/celery_fleet_live.py"
    assert layout["env_file"] == "/etc/shop/celery.env"
    assert layout["state_dir"] == "/var/lib/shop"
    assert layout["worker_service_prefix"] == "shop-worker-"
    assert layout["beat_service"] == "shop-beat"
    assert layout["flower_service"] == "shop-flower"
    assert layout["worker_restart_file"] == "/var/lib/celery-fleet/shop-workers.json"
    assert layout["user"] == layout["group"] == "shop"


def test_moved_home_and_directories():
    layout = app_layout("shop", "/srv/shop/", "/data/shop", "/logs/shop")
    assert layout["celery"] == "/srv/shop/bin/celery"
    assert layout["code_dir"] == "/srv/shop/app"
    assert layout["state_dir"] == "/data/shop"
    assert layout["log_dir"] == "/logs/shop"
    # None (an unset inventory variable through default(none)) means the role's default.
    assert app_layout("shop", None)["home"] == "/opt/shop"


@pytest.mark.parametrize("name", ["Shop", "1shop", "", "a" * 32, "shop app", None])
def test_name_must_be_a_user_name(name):
    with pytest.raises(FleetError, match="celery_app_name"):
        app_layout(name)


def test_home_must_be_absolute():
    with pytest.raises(FleetError, match="field 'celery_app_home': 'opt/shop'"):
        app_layout("shop", "opt/shop")


def test_inspect_reply():
    assert inspect_reply('{"celery@a": {"ok": "pong"}}\n') == {"celery@a": {"ok": "pong"}}
    assert inspect_reply("  \n{}") == {}
    for nothing in ("Error: No nodes replied within time constraint", "", None, "[1]", "{broken"):
        assert inspect_reply(nothing) == {}
