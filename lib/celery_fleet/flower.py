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


def written_files(result: Mapping[str, Any], specs: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """What roles/flower's tasks/https_on.yml undoes when nginx refuses the files it just wrote, from
    the registered result of its celery_fleet_files task (``backup: true``) and the file specs it
    gave it: ``written`` (the paths whose content changed), ``restore`` (celery_fleet_files specs
    putting each previous version back from its backup: path, src, mode, secret), ``remove`` (the
    files the run created: nginx never served them) and ``backups`` (to remove in every case).
    Paths and modes only: never a file's content (the key's PEM)."""
    if not isinstance(result, Mapping):
        return {"written": [], "restore": [], "remove": [], "backups": []}
    by_path = {str(spec.get("path")): spec for spec in specs if isinstance(spec, Mapping)}
    backups = result.get("backup_files") or {}
    written, restore, remove = [], [], []
    for path in result.get("content_changed") or []:
        path = str(path)
        spec = by_path.get(path, {})
        written.append(path)
        if path in backups:
            restore.append(
                {
                    "path": path,
                    "src": str(backups[path]),
                    "mode": str(spec.get("mode", "0644")),
                    "secret": bool(spec.get("secret", False)),
                }
            )
        else:
            remove.append(path)
    return {
        "written": written,
        "restore": restore,
        "remove": remove,
        "backups": [str(b) for b in backups.values()],
    }
