"""Input rules of roles/celery_app: where the broker is, where the code comes from, the environment.

Called by roles/celery_app/tasks/validate.yml and by playbooks/validate.yml for every host that runs
a service of the app (groups celery_workers, celery_beat, flower).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery_fleet.broker import sentinel_problems, tls_enabled, tls_input_problems
from celery_fleet.errors import FleetError, Problem
from celery_fleet.inputs import is_text
from celery_fleet.layout import app_layout
from celery_fleet.workers import ENV_NAME_RE

DEFAULT_BROKER_USER = "worker"


def _set(value: Any) -> bool:
    return is_text(value) and len(value) > 0


def app_problems(inputs: Mapping[str, Any], host: str | None = None) -> list[str]:
    """Every problem of one app host's variables."""
    problems: list[Problem] = []
    get = inputs.get
    app = get("celery_app_name", "?")
    # The name becomes a user, group and directories (lib/celery_fleet/layout.py): the same check
    # the roles' layout makes, here before any host changes.
    try:
        app_layout(app, get("celery_app_home"))
    except FleetError as exc:
        problems.extend(problem.on_host(host) if host else problem for problem in exc.problems)
    sentinels = get("celery_broker_sentinels") or []
    # With Sentinels the broker is found through them: no celery_broker_host.
    problems.extend(
        p.on_host(host) if host else p
        for p in sentinel_problems(
            sentinels,
            get("celery_broker_master_name", "celery-fleet"),
            get("celery_broker_sentinel_password", ""),
        )
    )
    # TLS to the broker (PEM content from the vault; roles/celery_app installs it as files).
    tls = tls_enabled(inputs)
    tls_problems = tls_input_problems(
        tls, *(get(f"celery_broker_tls_{name}", "") for name in ("ca", "cert", "key"))
    )
    problems.extend(p.on_host(host) if host else p for p in tls_problems)
    if get("celery_broker_url") is None:
        needed = (
            ("celery_broker_password",) if sentinels else ("celery_broker_host", "celery_broker_password")
        )
        missing = [f for f in needed if not _set(get(f))]
        if missing:
            user = get("celery_broker_user") or DEFAULT_BROKER_USER
            problems.append(
                Problem(
                    ", ".join(missing),
                    f"app '{app}' has no broker: set celery_broker_url, or celery_broker_host and "
                    f"celery_broker_password (the password of the Redis ACL user '{user}'; "
                    "keep it in a vault file)",
                    host=host,
                )
            )
    if _set(get("celery_app_src", "")) and _set(get("celery_app_git_repo", "")):
        problems.append(
            Problem(
                "celery_app_src, celery_app_git_repo",
                f"app '{app}': set one source of code, celery_app_src or celery_app_git_repo, not both",
                host=host,
            )
        )
    environment = get("celery_app_environment", {})
    if not isinstance(environment, Mapping):
        problems.append(
            Problem("celery_app_environment", "is not a mapping of variable name to value", host=host)
        )
    else:
        bad = [str(name) for name in environment if not (is_text(name) and ENV_NAME_RE.match(name))]
        if bad:
            problems.append(
                Problem(
                    "celery_app_environment",
                    f"{', '.join(bad)} are not variable names (^[A-Za-z_][A-Za-z0-9_]*$)",
                    host=host,
                )
            )
    return [str(p) for p in problems]
