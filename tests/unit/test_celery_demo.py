"""The example app (examples/celery_demo) without a broker: routes, configuration, tasks, workload.

Needs celery, which the controller venv does not carry (it is a target package): the module is
skipped there. Run it with celery importable, e.g. from a scratch venv built from the wheelhouse.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("celery")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "celery_demo"))

from celery_demo import app as demo_app
from celery_demo import tasks as demo_tasks  # registers the tasks, as the worker's include= does

DEMO_DIR = Path(__file__).resolve().parents[2] / "examples" / "celery_demo"
SEED_002 = ["high_priority", "datasets", "processing", "training", "extraction", "low_priority"]
SEED_000 = ["designer", "composer", "voice", "director"]


def test_queues_are_seed_002_plus_seed_000_chord_queues():
    assert list(demo_app.QUEUES) == SEED_002 + SEED_000


@pytest.mark.parametrize("queue", SEED_002 + SEED_000)
def test_every_queue_has_a_routed_ping_task(queue):
    # Arrange
    name = demo_app.ping_task_name(queue)

    # Act
    route = demo_app.app.amqp.router.route({}, name)

    # Assert
    assert name in demo_app.app.tasks
    assert route["queue"].name == queue


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("celery_demo.tasks.designer_task", "designer"),
        ("celery_demo.tasks.composer_task", "composer"),
        ("celery_demo.tasks.voice_task", "voice"),
        ("celery_demo.tasks.director_task", "director"),
        ("celery_demo.tasks.sleep_task", "low_priority"),
        ("celery_demo.tasks.noop", "high_priority"),
    ],
)
def test_chord_and_utility_tasks_are_routed(task, queue):
    assert task in demo_app.app.tasks
    assert demo_app.app.amqp.router.route({}, task)["queue"].name == queue


def test_every_route_targets_a_declared_queue():
    routed = {route["queue"] for route in demo_app.task_routes().values()}

    assert routed <= set(demo_app.QUEUES)
    assert set(demo_app.QUEUES) <= routed


def test_unrouted_tasks_go_to_a_consumed_queue():
    assert demo_app.app.conf.task_default_queue in demo_app.QUEUES


def test_seed_003_reliability_settings():
    conf = demo_app.app.conf

    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.result_expires == 3600


def test_the_app_reads_nothing_of_celery_fleet():
    # The fleet sets transport options through its entry module; the app has none of its own.
    config = demo_app.make_config()
    source = (DEMO_DIR / "celery_demo" / "app.py").read_text()

    assert "broker_transport_options" not in config
    assert "CELERY_FLEET" not in source.split('"""', 2)[2]


def test_broker_and_backend_come_from_celery_environment_variables(monkeypatch):
    # Arrange
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://demo-broker:6379/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://demo-broker:6379/1")

    # Act / Assert
    assert demo_app.app.conf.broker_url == "redis://demo-broker:6379/0"
    assert demo_app.app.conf.result_backend == "redis://demo-broker:6379/1"


def test_app_source_hard_codes_no_url():
    source = Path(demo_app.__file__).read_text()

    assert "redis://" not in source.split('"""', 2)[2]


def test_chord_part_reports_its_timing():
    result = demo_tasks.designer_task.apply(args=("run1",), kwargs={"seconds": 0.01}).get()

    assert result["run_id"] == "run1"
    assert result["finished"] >= result["started"]
    assert result["task"] == "celery_demo.tasks.designer_task"


def test_workload_cli_parses_commands():
    from celery_demo.workload import parse_args

    args = parse_args(["--json", "--timeout", "5", "chord", "--seconds", "1.5"])

    assert (args.json, args.timeout, args.command, args.seconds) == (True, 5.0, "chord", 1.5)


IN_PROCESS_RUN = """
import json
from celery.contrib.testing.worker import start_worker
from celery_demo.app import QUEUES, app
from celery_demo import workload
with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, queues=list(QUEUES)):
    print(json.dumps([workload.ping_queues(QUEUES, 20), workload.run_chord(0.5, 20)]))
"""


@pytest.fixture(scope="module")
def workload_reports():
    """Ping and chord reports from a thread-pool worker on Celery's in-memory transport (no Redis).

    A fresh interpreter, as on a host: Celery caches the result backend of the first use.
    """
    env = {
        **os.environ,
        "CELERY_BROKER_URL": "memory://",
        "CELERY_RESULT_BACKEND": "cache+memory://",
        "PYTHONPATH": os.pathsep.join([str(DEMO_DIR), *sys.path]),
    }
    done = subprocess.run(
        [sys.executable, "-c", IN_PROCESS_RUN],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_workload_queues_reports_the_consuming_worker(workload_reports):
    # Act
    report = workload_reports[0]

    # Assert
    assert report["ok"] is True
    assert {q: r["queue"] for q, r in report["results"].items()} == {q: q for q in demo_app.QUEUES}


def test_workload_chord_runs_parts_in_parallel(workload_reports):
    # Act
    report = workload_reports[1]

    # Assert
    print(report)
    assert report["ok"] is True
    assert report["parts_span_seconds"] < 0.8 * report["sum_of_parts_seconds"]
