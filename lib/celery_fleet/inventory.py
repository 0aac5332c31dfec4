"""Every role's input rules for every inventory host, as playbooks/validate.yml runs them.

The validate play (site.yml's first) gathers no facts and contacts no host. For each host it loads
the argument specs of the roles its groups run, checks the host's variables against them (the types
and choices ``ansible.builtin.validate_argument_spec`` checks when a role starts, with the same
validator and messages), gives the role defaults of those specs to the variables the host leaves
unset (as the role would), and runs the role's rules. One task does it for the whole inventory
(:func:`fleet_input_problems`): two tasks per host cost a process fork each, and the play's time grew
with the host count (bench/README.md, benchmark 10).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

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

# Variables of a role's argument specs that a playbook passes to the role from what it read on the
# host, never an inventory: set in group_vars, host_vars or with -e, they would hold for every play
# of every run (celery_app_unchanged: true would skip the app's converge for good, on beat and Flower
# hosts too). Variable -> who sets it.
CALLER_SET: dict[str, str] = {
    "celery_app_unchanged": "playbooks/deploy-workers.yml, from the host's record of its last converge",
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


def _plain(value: Any) -> Any:
    """A templated value as plain containers (Ansible's lazy ones template on access)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def fleet_input_problems(
    hostvars: Mapping[str, Mapping[str, Any]],
    hosts: Iterable[str],
    role_groups: Mapping[str, Iterable[str]],
    roles_dir: str,
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """The problems of each host's own variables, host by host: first against the argument specs of
    the roles its groups run (``hostvars``: Ansible's, templated on access; only the variables the
    host sets), then through those roles' rules, where ``defaults`` stand for what the host leaves
    unset before the specs' defaults do. A variable that cannot be templated is a problem of its own.
    """
    loaded: dict[str, dict[str, Any]] = {}
    validators: dict[str, ArgumentSpecValidator] = {}
    problems: list[str] = []
    for host in hosts:
        host_vars = hostvars[host]
        roles = roles_of_host(role_groups, host_vars["group_names"])
        loaded.update(argument_specs([r for r in roles if r not in loaded], roles_dir))
        specs = {role: loaded[role] for role in roles}
        provided: dict[str, Any] = {}
        for name in sorted({name for options in specs.values() for name in options}):
            if name not in host_vars:
                continue
            if name in CALLER_SET:
                problems.append(
                    f"host '{host}': {name} is set by {CALLER_SET[name]}, not in an inventory "
                    "or with -e: remove it"
                )
                continue
            try:
                provided[name] = _plain(host_vars[name])
            except Exception as exc:  # an undefined variable inside, a failing lookup
                problems.append(f"host '{host}': {name} cannot be templated: {exc}")
        for role, options in specs.items():
            validator = validators.setdefault(role, ArgumentSpecValidator(options))
            given = {name: value for name, value in provided.items() if name in options}
            for error in validator.validate(given, validate_role_argument_spec=True).error_messages:
                problems.append(f"host '{host}': role {role} (meta/argument_specs.yml): {error}")
        problems += input_problems(specs, {**(defaults or {}), **provided}, host)
    return problems


def _no_rules(inputs: Mapping[str, Any], host: str | None) -> list[str]:
    return []
