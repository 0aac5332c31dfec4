"""Flower's environment file: every option as a ``FLOWER_*`` variable (never argv).

roles/flower renders the mapping :func:`flower_environment` returns into ``/etc/<app>/flower.env``
(0640, root's), loaded after the app's own environment file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _text(value: Any) -> str:
    """What Jinja's ``string`` filter gives (True -> 'True'), for values the role passes through."""
    return str(value)


def _flag(value: Any) -> str:
    return str(value).lower()


def basic_auth_entries(users: list[Mapping[str, Any]]) -> list[str]:
    """``name:password`` for every user, then ``name:<previous>`` for each of its previous passwords.

    Flower 2.2 compares the request's whole ``name:password`` with each entry in turn
    (flower/views/__init__.py, ``hmac.compare_digest``), so two entries of one name let either
    password in: phase 1 of a rotation (README "Rotating Flower's users"). Emptying
    ``previous_passwords`` (phase 2) leaves the current one only.
    """
    current = [f"{u['name']}:{u['password']}" for u in users]
    previous = [f"{u['name']}:{p}" for u in users for p in (u.get("previous_passwords") or [])]
    return current + previous


def flower_environment(inputs: Mapping[str, Any], db: str, broker_env: Mapping[str, str]) -> dict[str, str]:
    """The variables of Flower's environment file, in the file's order.

    ``inputs``: the role's variables (defaults applied; validated by flower_rules); ``db``: the path
    of Flower's persistent state; ``broker_env``: Flower's own broker and backend URLs (empty when
    it uses the app's). ``flower_extra_options`` come last, as ``FLOWER_<NAME>``.
    """
    get = inputs.get
    env = {
        "FLOWER_ADDRESS": _text(get("flower_bind")),
        "FLOWER_PORT": _text(get("flower_port")),
        "FLOWER_MAX_TASKS": _text(get("flower_max_tasks")),
        "FLOWER_PERSISTENT": _flag(get("flower_persistent")),
        "FLOWER_DB": db,
        "FLOWER_STATE_SAVE_INTERVAL": _text(int(get("flower_state_save_interval")) * 1000),
        "CELERY_FLEET_FLOWER_METRICS_PUBLIC": _flag(get("flower_metrics_public")),
    }
    if get("flower_url_prefix"):
        env["FLOWER_URL_PREFIX"] = get("flower_url_prefix")
    if get("flower_cookie_secret") is not None:
        env["FLOWER_COOKIE_SECRET"] = get("flower_cookie_secret")
    users = get("flower_users") or []
    if users:
        env["FLOWER_BASIC_AUTH"] = ",".join(basic_auth_entries(users))
    if get("flower_auth"):
        env.update(
            {
                "FLOWER_AUTH": get("flower_auth"),
                "FLOWER_AUTH_PROVIDER": get("flower_auth_provider"),
                "FLOWER_OAUTH2_KEY": get("flower_oauth2_key"),
                "FLOWER_OAUTH2_SECRET": get("flower_oauth2_secret") or "",
                "FLOWER_OAUTH2_REDIRECT_URI": get("flower_oauth2_redirect_uri"),
            }
        )
    env.update(broker_env)
    env.update(
        {
            f"FLOWER_{name.upper()}": _text(value)
            for name, value in (get("flower_extra_options") or {}).items()
        }
    )
    return env


def written_files(results: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The files a run of roles/flower's tasks/https.yml changed, from the registered results of its
    copy and template tasks (``backup: true``): ``{dest, mode, backup_file}`` each, ``backup_file``
    only where a previous version was kept. Only these keys: a loop over the results themselves would
    carry each item's content (the key's PEM) into verbose output."""
    written = []
    for result in results:
        if not isinstance(result, Mapping) or result.get("changed") is not True or not result.get("dest"):
            continue
        entry = {"dest": str(result["dest"]), "mode": str(result.get("mode", "0644"))}
        if result.get("backup_file"):
            entry["backup_file"] = str(result["backup_file"])
        written.append(entry)
    return written
