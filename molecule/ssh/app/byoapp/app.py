"""The app as a user brings it: Celery takes the broker and the result backend from
CELERY_BROKER_URL and CELERY_RESULT_BACKEND on its own; nothing here knows about celery-fleet.

It sets transport options of its own, which the fleet must keep when it adds its settings.
"""

from __future__ import annotations

from celery import Celery

app = Celery("byoapp", include=["byoapp.tasks"])
app.conf.update(
    broker_transport_options={"socket_keepalive": True, "queue_order_strategy": "priority"},
    task_routes={"byoapp.tasks.sleep": {"queue": "slow"}},
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    result_expires=600,
    timezone="UTC",
)
