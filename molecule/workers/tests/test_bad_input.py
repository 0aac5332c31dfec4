"""Bad input fails before anything on the host changes, with a message naming what is wrong.

Every validation rule is tested on the controller, one bad input each (tests/playbooks/test_validate.py
runs playbooks/validate.yml; tests/unit/test_validation.py and test_workers.py the functions). Here, a
few cases through the real converge: a worker field, two fleet-wide rules (queue coverage, time limit
against the visibility timeout), a refused flag and the process manager. Each runs the scenario's
converge with the bad variables; the host's worker services, unit/program files, environment file and
code are fingerprinted before and after.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import APP, QUEUES, WORKERS, ansible_playbook


def _workers(change: dict[str, dict[str, Any]] | None = None, add: list[dict[str, Any]] | None = None):
    workers = copy.deepcopy(WORKERS)
    for worker in workers:
        worker.update((change or {}).get(worker["name"], {}))
    return workers + (add or [])


LONG_TASKS = {"time_limit": 900}

# id -> (extra vars, fragments the error message must contain)
CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown_pool": (
        {"celery_workers": _workers({"training": {"pool": "forky"}})},
        ["worker 'training'", "field 'pool'", "prefork, gevent, eventlet, threads, solo"],
    ),
    "queue_without_consumer": (
        {"celery_queues": [*QUEUES, "orphans"]},
        ["field 'celery_queues'", "'orphans'", "consumed by no present worker"],
    ),
    "visibility_timeout_not_above_time_limit": (
        {
            "celery_broker_visibility_timeout": 600,
            "celery_workers": _workers({"training": LONG_TASKS}),
        },
        ["worker 'training'", "field 'time_limit'", "celery_broker_visibility_timeout 600"],
    ),
    "purge_in_extra_args": (
        {"celery_workers": _workers({"datasets": {"extra_args": ["--purge"]}})},
        ["worker 'datasets'", "field 'extra_args'", "'--purge' is not allowed", "celery purge -Q <queue>"],
    ),
    "unknown_process_manager": (
        {"celery_process_manager": "upstart"},
        ["celery_process_manager", "'upstart'", "systemd, supervisord"],
    ),
}

FINGERPRINT = (
    f"(systemctl list-units --all --plain --no-legend '{APP}-*';"
    # Program and state only: the uptime column changes by itself.
    " supervisorctl status 2>/dev/null | awk '{print $1, $2}';"
    f" find /etc/systemd/system /etc/supervisor/conf.d /etc/{APP} /opt/{APP}/app /opt/{APP}/bin"
    f" -path '*{APP}*' -type f -exec sha256sum {{}} + 2>/dev/null) | sort"
)


def _drop_nones(value: Any) -> Any:
    """A None in a case means "remove the field" (e.g. concurrency when switching to autoscale)."""
    if isinstance(value, dict):
        return {k: _drop_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nones(v) for v in value]
    return value


@pytest.fixture(scope="module")
def outcomes(node, tmp_path_factory) -> dict[str, Any]:
    before = node.run(FINGERPRINT).stdout
    assert f"{APP}-worker-" in before, "nothing deployed to compare with"

    # tmp_path_factory is not thread-safe: make the directories before the threads start.
    tmp = {case: tmp_path_factory.mktemp(case) for case in CASES}

    def run(case: str) -> tuple[int, str]:
        return ansible_playbook(extra_vars=_drop_nones(CASES[case][0]), tmp_path=tmp[case])

    # The cases are independent and read-only: run them side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(CASES, pool.map(run, CASES), strict=True))
    return {"before": before, "after": node.run(FINGERPRINT).stdout, "results": results}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_naming_the_problem(outcomes, case):
    rc, output = outcomes["results"][case]
    assert rc != 0, output[-2000:]
    for fragment in CASES[case][1]:
        assert fragment in output, f"{fragment!r} not in: {output[-2000:]}"


def test_bad_input_leaves_the_host_untouched(outcomes):
    assert outcomes["after"] == outcomes["before"]
