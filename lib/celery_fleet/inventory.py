"""Every role's input rules for one inventory host, as playbooks/validate.yml runs them.

The validate play (site.yml's first) gathers no facts and contacts no host: for each host it loads
the argument specs of the roles its groups run, gives the role defaults of those specs to the
variables the host leaves unset (as the role would), and runs the role's rules. The argument specs
themselves are checked by ``ansible.builtin.validate_argument_spec`` in the play; their errors come
back here (:func:`argspec_problems`) so that one message lists every problem of the inventory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from celery_fleet.app_rules import app_problems
from celery_fleet.beat_rules import beat_problems
from celery_fleet.flower_rules import flower_problems
from celery_fleet.inputs import process_manager_problems, role_inputs
from celery_fleet.monitoring_rules import prometheus_problems, redis_exporter_problems
from celery_fleet.redis_rules import redis_problems

# Role -> its rules over one host's variables (the role's own tasks/validate.yml calls the same).
RULES: dict[str, Callable[[Mapping[str, Any], str | None], list[str]]] = {
    "redis": redis_problems,
    "celery_app": app_problems,
    "celery_worker": process_manager_problems,
    "celery_beat": beat_problems,
    "flower": flower_problems,
    "prometheus": prometheus_problems,
    "redis_exporter": redis_exporter_problems,
}


def roles_of_host(role_groups: Mapping[str, Iterable[str]], group_names: Iterable[str]) -> list[str]:
    """The roles whose plays run on a host of ``group_names`` (role -> the groups its plays target)."""
    groups = set(group_names)
    return [role for role, targets in role_groups.items() if groups & set(targets)]


def argument_specs(roles: Iterable[str], roles_dir: str) -> dict[str, dict[str, Any]]:
    """Role -> ``argument_specs.main.options`` of ``<roles_dir>/<role>/meta/argument_specs.yml``."""
    specs = {}
    for role in roles:
        data = yaml.safe_load((Path(roles_dir) / role / "meta" / "argument_specs.yml").read_text())
        specs[role] = data["argument_specs"]["main"]["options"]
    return specs


def input_problems(
    specs: Mapping[str, Mapping[str, Any]], provided: Mapping[str, Any], host: str
) -> list[str]:
    """The rules of every role in ``specs`` over the host's variables (``provided``: those it sets).

    A problem two roles report (the process manager, checked by workers, beat and Flower) is
    listed once.
    """
    problems: list[str] = []
    for role, options in specs.items():
        for problem in RULES.get(role, _no_rules)(role_inputs(options, provided), host):
            if problem not in problems:
                problems.append(problem)
    return problems


def argspec_problems(results: Any, host: str) -> list[str]:
    """The errors of a registered loop of ``validate_argument_spec`` (one item per role), named."""
    problems = []
    for result in (results or {}).get("results", []) if isinstance(results, Mapping) else []:
        for error in result.get("argument_errors", []) or []:
            problems.append(f"host '{host}': role {result.get('item')} (meta/argument_specs.yml): {error}")
    return problems


def _no_rules(inputs: Mapping[str, Any], host: str | None) -> list[str]:
    return []
