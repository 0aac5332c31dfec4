"""The Celery app. Every setting that differs per deployment comes from the environment.

- ``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND``: read by Celery itself (they win over any
  config); never written here, since they carry the Redis password.
- ``CELERY_FLEET_VISIBILITY_TIMEOUT``: the Redis transport's visibility_timeout in seconds; it must
  exceed the longest task (shorter: the task is delivered again and runs twice).
- ``CELERY_FLEET_KEY_PREFIX``: kombu's ``global_keyprefix`` for broker and result backend, so the
  Redis ACL can scope the fleet's users to ``~<prefix>*``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from celery import Celery

# Seed 002's workload queues, then seed 000's chord queues.
WORKLOAD_QUEUES = ("high_priority", "datasets", "processing", "training", "extraction", "low_priority")
CHORD_QUEUES = ("designer", "composer", "voice", "director")
QUEUES = WORKLOAD_QUEUES + CHORD_QUEUES
# Where a task nobody routed goes: a queue some worker consumes, not Celery's 'celery' (seed 002).
DEFAULT_QUEUE = "low_priority"


def ping_task_name(queue: str) -> str:
    return f"celery_demo.tasks.ping_{queue}"


def task_routes() -> dict[str, dict[str, str]]:
    """Task name -> queue: one ping task per queue, the chord's parts, and the utility tasks."""
    routes = {ping_task_name(queue): {"queue": queue} for queue in QUEUES}
    routes.update({f"celery_demo.tasks.{queue}_task": {"queue": queue} for queue in CHORD_QUEUES})
    routes["celery_demo.tasks.sleep_task"] = {"queue": "low_priority"}
    routes["celery_demo.tasks.noop"] = {"queue": "high_priority"}
    return routes


def transport_options(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(broker_transport_options, result_backend_transport_options) from the environment."""
    broker: dict[str, Any] = {}
    backend: dict[str, Any] = {}
    timeout = environ.get("CELERY_FLEET_VISIBILITY_TIMEOUT", "").strip()
    if timeout:
        seconds = int(timeout)
        if seconds < 1:
            raise ValueError(f"CELERY_FLEET_VISIBILITY_TIMEOUT={timeout!r} is not a number of seconds >= 1")
        broker["visibility_timeout"] = seconds
    prefix = environ.get("CELERY_FLEET_KEY_PREFIX", "")
    if prefix:
        broker["global_keyprefix"] = prefix
        backend["global_keyprefix"] = prefix
    return broker, backend


def make_config(environ: Mapping[str, str]) -> dict[str, Any]:
    broker_options, backend_options = transport_options(environ)
    return {
        "broker_transport_options": broker_options,
        "result_backend_transport_options": backend_options,
        "broker_connection_retry_on_startup": True,
        "task_routes": task_routes(),
        "task_default_queue": DEFAULT_QUEUE,
        "task_create_missing_queues": True,
        # Seed 003: a task is acknowledged after it ran, and re-queued if its pool process dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "result_expires": 3600,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        # Lets the workload and the tests see STARTED, so a stop test knows the task is running.
        "task_track_started": True,
    }


app = Celery("celery_demo", include=["celery_demo.tasks"])
app.conf.update(make_config(os.environ))
