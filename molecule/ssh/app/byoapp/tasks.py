"""Tasks for a chord, a group, a countdown and beat."""

from __future__ import annotations

import time

from byoapp.app import app


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def total(values: list[int]) -> int:
    """A chord's callback: the sum of its header's results."""
    return sum(values)


@app.task
def sleep(seconds: float) -> float:
    """Routed to the `slow` queue (the gevent worker)."""
    time.sleep(seconds)
    return seconds


@app.task
def tick() -> str:
    """Beat's periodic task."""
    return "tick"
