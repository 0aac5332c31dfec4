"""The output of an ansible-playbook run, as the tests and benchmarks read it back: the PLAY RECAP,
profile_tasks' slowest tasks, one play's or one task's section.

Not used by the roles: the Molecule tests, tests/playbooks and bench/ count what a run changed on
each host from its output (the default callback's recap, without colour).
"""

from __future__ import annotations

import re

# "fleet-redis                : ok=12   changed=0    unreachable=0    failed=0    skipped=5 ..."
_HOST_LINE = re.compile(r"^(\S+)\s*:\s*((?:[a-z_]+=\d+\s*)+)$")
_COUNT = re.compile(r"([a-z_]+)=(\d+)")
# profile_tasks' recap: "celery_worker : current | Compare the host ------------------------ 1.20s"
_TASK_TIME = re.compile(r"^(.+?) -{3,} (\d+\.\d+)s$", re.M)


def play_recap(output: str) -> dict[str, dict[str, int]]:
    """Host -> its counts (ok, changed, unreachable, failed, skipped, rescued, ignored) from the last
    PLAY RECAP in ``output``, in the recap's order; empty when the run printed none (it stopped
    before any play ended)."""
    _, found, recap = output.rpartition("PLAY RECAP")
    counts: dict[str, dict[str, int]] = {}
    if not found:
        return counts
    for line in recap.splitlines()[1:]:
        if not line.strip():
            if counts:
                break
            continue
        match = _HOST_LINE.match(line.rstrip())
        if not match:
            break
        counts[match.group(1)] = {key: int(value) for key, value in _COUNT.findall(match.group(2))}
    return counts


def changed_per_host(output: str) -> dict[str, int]:
    """Host -> how many tasks changed it, from the last PLAY RECAP in ``output``."""
    return {host: counts["changed"] for host, counts in play_recap(output).items()}


def slowest_tasks(output: str, count: int = 5) -> list[tuple[str, float]]:
    """The run's slowest tasks as ansible.posix.profile_tasks lists them after the last TASKS RECAP
    in ``output`` (slowest first): (task, seconds), at most ``count``; empty without the callback."""
    _, found, recap = output.rpartition("TASKS RECAP")
    if not found:
        return []
    return [(task.strip(), float(seconds)) for task, seconds in _TASK_TIME.findall(recap)[:count]]


def play_section(output: str, header: str) -> str:
    """The output of one play, from its header (``PLAY [name]``) to the next play or the recap."""
    start = output.index(header)
    end = output.find("\nPLAY ", start + 1)
    return output[start : end if end != -1 else len(output)]


def task_section(output: str, header: str) -> str:
    """The output of one task, from its header (``TASK [role : name]``) to the next task's; empty
    when it printed none."""
    if header not in output:
        return ""
    section = output[output.index(header) :]
    end = section.find("\nTASK [", 1)
    return section[: end if end != -1 else len(section)]
