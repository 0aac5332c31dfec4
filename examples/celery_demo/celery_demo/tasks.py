"""Tasks of the demo: a ping per queue, seed 000's chord, a long sleep and a no-op."""

from __future__ import annotations

import socket
import time
from typing import Any

from celery import Task

from celery_demo.app import CHORD_QUEUES, QUEUES, app, ping_task_name

# Seed 000's chord parts take ~9 s each; 2 s keeps the tests short and the ratio as telling.
DEFAULT_PART_SECONDS = 2.0


def _ran_by(task: Task) -> dict[str, Any]:
    info = task.request.delivery_info or {}
    return {
        "task": task.name,
        "hostname": task.request.hostname,  # the worker's node name, e.g. io@w1
        "host": socket.gethostname(),
        "queue": info.get("routing_key"),
    }


def _make_ping(queue: str) -> Task:
    def ping(self: Task) -> dict[str, Any]:
        return _ran_by(self)

    ping.__doc__ = f"Say which worker consumed queue {queue!r}."
    return app.task(bind=True, name=ping_task_name(queue))(ping)


PING_TASKS = {queue: _make_ping(queue) for queue in QUEUES}


def _make_part(queue: str) -> Task:
    def part(self: Task, run_id: str, seconds: float = DEFAULT_PART_SECONDS) -> dict[str, Any]:
        started = time.time()
        time.sleep(seconds)  # I/O-bound stand-in: gevent/eventlet patch it, prefork runs it in a child
        return {**_ran_by(self), "run_id": run_id, "started": started, "finished": time.time()}

    part.__doc__ = f"Seed 000's {queue} step: an I/O-bound wait of `seconds`."
    return app.task(bind=True, name=f"celery_demo.tasks.{queue}_task")(part)


designer_task, composer_task, voice_task = (_make_part(q) for q in CHORD_QUEUES[:3])


@app.task(bind=True, name="celery_demo.tasks.director_task")
def director_task(self: Task, parts: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """The chord's callback: composes the parts' results (seed 000's video composition)."""
    return {**_ran_by(self), "run_id": run_id, "parts": parts, "finished": time.time()}


@app.task(bind=True, name="celery_demo.tasks.sleep_task")
def sleep_task(self: Task, seconds: float = 20.0) -> dict[str, Any]:
    """A long task for the stop/restart tests: a warm shutdown must let it finish."""
    started = time.time()
    time.sleep(seconds)
    return {**_ran_by(self), "seconds": seconds, "started": started, "finished": time.time()}


@app.task(name="celery_demo.tasks.noop")
def noop() -> None:
    """Does nothing: measures the fleet's per-task overhead."""
