"""Where a Celery app of the fleet lives on a host, and how its replies are read.

roles/celery_app lays the app out; every other role, play, test and benchmark finds it from the
same two inputs (the app's name and, if the inventory moves it, its home) through ``app_layout``,
instead of rebuilding ``/opt/<name>/...`` and ``<name>-worker-<worker>`` themselves.

The app's command is ``<home>/bin/celery``: run as root it switches to the app's user, loads the
app's environment file (the broker password stays out of argv) and runs the virtualenv's celery
with ``-A celery_fleet_app`` preset, so an operator types what the plays run::

    sudo /opt/<name>/bin/celery inspect active
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from celery_fleet.errors import FleetError, Problem

__all__ = ["ENTRY_MODULE", "app_layout", "inspect_reply"]

# The module every service of the fleet loads with `celery -A` (roles/celery_app/files).
ENTRY_MODULE = "celery_fleet_app"

# A Linux user and group name, which the app's name becomes (useradd's portable set).
_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


def app_layout(
    name: str,
    home: str | None = None,
    state_dir: str | None = None,
    log_dir: str | None = None,
) -> dict[str, str]:
    """Paths, user and service names of the app ``name`` (defaults of roles/celery_app).

    >>> app_layout("shop")["celery"]
    '/opt/shop/bin/celery'
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise FleetError(
            [
                Problem(
                    "celery_app_name",
                    f"{name!r} is not a user name: lowercase letters, digits, '_' or '-', starting "
                    "with a letter or '_', at most 31 characters",
                )
            ]
        )
    home = (home or f"/opt/{name}").rstrip("/")
    if not home.startswith("/"):
        raise FleetError([Problem("celery_app_home", f"{home!r} is not an absolute path")])
    config_dir = f"/etc/{name}"
    return {
        "name": name,
        "user": name,
        "group": name,
        "home": home,
        "bin_dir": f"{home}/bin",
        # The app's celery as its user with its environment, `-A celery_fleet_app` preset.
        "celery": f"{home}/bin/celery",
        # Any command with the app's environment loaded, from its code directory (as the app's user).
        "env_wrapper": f"{home}/bin/celery-env",
        # The workers' live check (roles/celery_worker), run by the virtualenv's python as the
        # app's user through env_wrapper.
        "live_check": f"{home}/bin/celery_fleet_live.py",
        "venv": f"{home}/venv",
        "venv_celery": f"{home}/venv/bin/celery",
        "code_dir": f"{home}/app",
        "config_dir": config_dir,
        "env_file": f"{config_dir}/celery.env",
        "fleet_config": f"{config_dir}/fleet.json",
        # The broker's CA and the client certificate and key (roles/celery_app, TLS on).
        "tls_dir": f"{config_dir}/tls",
        "tls_ca_file": f"{config_dir}/tls/ca.crt",
        "tls_cert_file": f"{config_dir}/tls/client.crt",
        "tls_key_file": f"{config_dir}/tls/client.key",
        # Flower over HTTPS (roles/flower, flower_tls_enabled): nginx's certificate and key (root's,
        # read by nginx's master as root), the CA the deploy's probe verifies it with, nginx's site.
        "flower_tls_dir": f"{config_dir}/flower-tls",
        "flower_tls_cert_file": f"{config_dir}/flower-tls/flower.crt",
        "flower_tls_key_file": f"{config_dir}/flower-tls/flower.key",
        "flower_tls_ca_file": f"{config_dir}/flower-tls/ca.crt",
        "flower_nginx_site": f"/etc/nginx/conf.d/{name}-flower.conf",
        "state_dir": state_dir or f"/var/lib/{name}",
        "log_dir": log_dir or f"/var/log/{name}",
        # supervisord (root) writes program logs here: a directory of root's.
        "supervisor_log_dir": f"/var/log/supervisor/{name}",
        "entry_module": ENTRY_MODULE,
        "worker_service_prefix": f"{name}-worker-",
        "beat_service": f"{name}-beat",
        "flower_service": f"{name}-flower",
        # The workers' restarts a deploy deferred to its host batches (roles/celery_service): root's,
        # outside the app's state directory, which the service user may write.
        "worker_restart_file": f"/var/lib/celery-fleet/{name}-workers.json",
        # What the worker play's last successful converge left on the host (roles/celery_worker,
        # entry points current and record): root's, hashes and states only.
        "worker_state_file": f"/var/lib/celery-fleet/{name}-workers-state.json",
        # The same of the app alone on a host of beat or Flower without workers (roles/celery_worker,
        # entry points app_current and app_record).
        "app_state_file": f"/var/lib/celery-fleet/{name}-app-state.json",
    }


def inspect_reply(stdout: Any) -> dict[str, Any]:
    """What ``celery inspect --json <command>`` printed, as node name -> reply.

    Anything else (nothing answered: Celery prints "Error: No nodes replied within time
    constraint"; a broken app: a traceback) is an empty mapping, so a caller compares the nodes
    it expected with the ones that answered and names the missing ones.
    """
    if not isinstance(stdout, str):
        return {}
    text = stdout.strip()
    if not text.startswith("{"):
        return {}
    try:
        reply = json.loads(text)
    except ValueError:
        return {}
    return dict(reply) if isinstance(reply, Mapping) else {}
