"""Input rules of roles/celery_beat: the process manager and each entry of ``celery_beat_schedule``.

The one-beat-per-fleet rule spans hosts and lives in :mod:`celery_fleet.validation`. Called by
roles/celery_beat/tasks/validate.yml and by playbooks/validate.yml for every host of ``celery_beat``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from celery_fleet.errors import Problem
from celery_fleet.inputs import is_list, is_text, process_manager_problems

SCHEDULE_KEYS = ("task", "schedule", "crontab", "args", "kwargs", "options")
CRONTAB_KEYS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
TASK_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:]*$")


def entry_problems(entry: Any) -> list[str]:
    """What is wrong with one periodic task of celery_beat_schedule (empty: nothing)."""
    if not isinstance(entry, Mapping):
        return [f"{entry!r} is not a mapping (task, schedule or crontab, args, kwargs, options)"]
    problems = []
    unknown = [str(key) for key in entry if key not in SCHEDULE_KEYS]
    if unknown:
        problems.append(f"unknown fields {', '.join(unknown)}; allowed: {', '.join(SCHEDULE_KEYS)}")
    task = entry.get("task")
    if not (is_text(task) and TASK_NAME_RE.match(task)):
        problems.append(f"`task` {task!r} is not a task name (a dotted Python name such as app.tasks.ping)")
    if ("schedule" in entry) == ("crontab" in entry):
        problems.append("needs exactly one of `schedule` (seconds > 0) or `crontab`")
    schedule = entry.get("schedule")
    if "schedule" in entry and (
        isinstance(schedule, bool) or not isinstance(schedule, int | float) or schedule <= 0
    ):
        problems.append(f"`schedule` {schedule!r} is not a number of seconds > 0")
    crontab = entry.get("crontab")
    if "crontab" in entry and (
        not isinstance(crontab, Mapping) or any(key not in CRONTAB_KEYS for key in crontab)
    ):
        problems.append(f"`crontab` {crontab!r} is not a mapping of {', '.join(CRONTAB_KEYS)}")
    if "args" in entry and not is_list(entry["args"]):
        problems.append(f"`args` {entry['args']!r} is not a list")
    for field in ("kwargs", "options"):
        if field in entry and not isinstance(entry[field], Mapping):
            problems.append(f"`{field}` {entry[field]!r} is not a mapping")
    return problems


def beat_problems(inputs: Mapping[str, Any], host: str | None = None) -> list[str]:
    """Every problem of one beat host's variables (one problem per faulty schedule entry)."""
    problems = process_manager_problems(inputs, host)
    schedule = inputs.get("celery_beat_schedule", {})
    if not isinstance(schedule, Mapping):
        return [
            *problems,
            str(
                Problem("celery_beat_schedule", "is not a mapping of entry name to periodic task", host=host)
            ),
        ]
    for name, entry in schedule.items():
        details = entry_problems(entry)
        if details:
            problems.append(str(Problem(f"celery_beat_schedule.{name}", "; ".join(details), host=host)))
    return problems
