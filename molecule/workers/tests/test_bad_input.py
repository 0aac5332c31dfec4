"""Bad input fails before anything on the host changes, with a message naming what is wrong.

One case per validation rule. Each runs the scenario's converge with the bad variables; the host's
worker services, unit/program files, environment file and code are fingerprinted before and after.
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


THREADS_AUTOSCALE = {"pool": "threads", "concurrency": None, "autoscale": [4, 1]}
LONG_TASKS = {"time_limit": 900}

# id -> (extra vars, fragments the error message must contain)
CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown_pool": (
        {"celery_workers": _workers({"training": {"pool": "forky"}})},
        ["worker 'training'", "field 'pool'", "prefork, gevent, eventlet, threads, solo"],
    ),
    "concurrency_below_one": (
        {"celery_workers": _workers({"datasets": {"concurrency": 0}})},
        ["worker 'datasets'", "field 'concurrency'", ">= 1"],
    ),
    "duplicate_worker_name": (
        {"celery_workers": _workers(add=[{"name": "datasets", "queues": ["datasets"], "concurrency": 1}])},
        ["worker 'datasets'", "field 'name'", "declared 2 times"],
    ),
    "empty_queue_list": (
        {"celery_workers": _workers({"processing": {"queues": []}})},
        ["worker 'processing'", "field 'queues'", "non-empty"],
    ),
    "max_memory_per_child_without_prefork": (
        {"celery_workers": _workers({"assets": {"max_memory_per_child": 100000}})},
        ["worker 'assets'", "field 'max_memory_per_child'", "prefork only"],
    ),
    "max_tasks_per_child_without_prefork": (
        {"celery_workers": _workers({"assets": {"max_tasks_per_child": 100}})},
        ["worker 'assets'", "field 'max_tasks_per_child'", "prefork only"],
    ),
    "autoscale_with_threads": (
        {"celery_workers": _workers({"low-priority": THREADS_AUTOSCALE})},
        ["worker 'low-priority'", "field 'autoscale'", "prefork, gevent"],
    ),
    "duplicate_node_name": (
        {"celery_workers": _workers({"datasets": {"hostname": "worker-processing@%h"}})},
        ["field 'hostname'", "node names must be unique"],
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
    "solo_without_allow_solo": (
        {"celery_workers": _workers({"training": {"pool": "solo", "max_memory_per_child": None}})},
        ["worker 'training'", "field 'pool'", "allow_solo: true"],
    ),
    "invalid_worker_name": (
        {"celery_workers": _workers(add=[{"name": "Bad Name", "queues": ["datasets"]}])},
        ["worker 'Bad Name'", "field 'name'", "not a valid worker name"],
    ),
    "invalid_queue_name": (
        {"celery_workers": _workers({"datasets": {"queues": ["data sets"]}})},
        ["worker 'datasets'", "field 'queues'", "not a valid queue name"],
    ),
    "purge_in_extra_args": (
        {"celery_workers": _workers({"datasets": {"extra_args": ["--purge"]}})},
        ["worker 'datasets'", "field 'extra_args'", "'--purge' is not allowed", "celery purge -Q <queue>"],
    ),
    "device_outside_dev": (
        {"celery_workers": _workers({"training": {"devices": ["/etc/shadow"]}})},
        ["worker 'training'", "field 'devices'", "not an absolute path under /dev"],
    ),
    "broker_url_in_environment": (
        {"celery_workers": _workers({"datasets": {"environment": {"CELERY_BROKER_URL": "redis://x"}}})},
        ["worker 'datasets'", "field 'environment'", "the fleet's (celery_broker_url"],
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
