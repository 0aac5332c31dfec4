"""The Celery app. It knows nothing of celery-fleet, as an app brought to the fleet would not.

- ``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND``: read by Celery itself (they win over any
  config); never written here, since they carry the Redis password.
- Transport options (visibility timeout, key prefix, a green pool's connection limit): none here.
  The fleet's services run the app through celery-fleet's entry module, which merges the fleet's
  options into the app's (roles/celery_app/files/celery_fleet_app.py).
- TLS to the broker: none here either. With the fleet's switch on, the URLs are ``rediss://`` and
  the entry module sets ``broker_use_ssl`` / ``redis_backend_use_ssl`` (the CA, certificate
  verification required); through Sentinel the URLs stay ``sentinel://`` and the transport options'
  ``sentinel_kwargs`` carry the same TLS keys for the Sentinels. A producer outside the fleet sets
  them itself (README "TLS to the broker").
"""

from __future__ import annotations

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


def make_config() -> dict[str, Any]:
    return {
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
app.conf.update(make_config())
