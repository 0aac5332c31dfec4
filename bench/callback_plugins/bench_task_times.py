"""bench_task_times: per-task record of one ansible-playbook run, for benchmarks 1 and 2.

Enabled only by the benchmark (ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins,
ANSIBLE_CALLBACKS_ENABLED=...,bench_task_times); writes JSON to $BENCH_TASK_TIMES_OUT at the end
of the run. One record per task header (handlers included): name, role, play, action, wall time
from its start to the next task's or play's start (or the end of the run, as profile_tasks counts
it), and per host whether it ran (not skipped), its loop items that ran, changed and failed.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_task_times
type: aggregate
short_description: per-task wall time, hosts, loop items and changes as JSON (celery-fleet bench)
description:
  - Writes one record per task to the file named by the environment variable BENCH_TASK_TIMES_OUT.
requirements:
  - enable in callbacks_enabled (ANSIBLE_CALLBACKS_ENABLED)
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._tasks: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self._play = ""
        self._started = time.monotonic()

    # --- task boundaries ----------------------------------------------------------------------

    def _close(self) -> None:
        if self._current is not None:
            self._current["wall"] = round(time.monotonic() - self._current.pop("_t0"), 4)
            self._tasks.append(self._current)
            self._current = None

    def _open(self, task: Any, handler: bool) -> None:
        self._close()
        role = task._role.get_name() if getattr(task, "_role", None) else ""
        self._current = {
            "name": task.get_name().strip(),
            "role": role,
            "play": self._play,
            "action": task.action,
            "handler": handler,
            "hosts": {},
            "_t0": time.monotonic(),
        }

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._close()
        self._play = play.get_name().strip()

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._open(task, handler=False)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._open(task, handler=True)

    # --- per-host results ---------------------------------------------------------------------

    def _record(self, result: Any, status: str) -> None:
        if self._current is None:
            return
        res = result.result
        ran = status != "skipped"
        items = 1 if ran else 0
        if isinstance(res.get("results"), list):  # a loop: count the items that ran
            items = sum(1 for r in res["results"] if isinstance(r, dict) and not r.get("skipped"))
            ran = ran and items > 0
        self._current["hosts"][result.host.get_name()] = {
            "status": status,
            "ran": ran,
            "items": items,
            "changed": bool(res.get("changed")) and ran,
            "failed": status in ("failed", "unreachable"),
        }

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._close()
        path = os.environ.get("BENCH_TASK_TIMES_OUT")
        if not path:
            return
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"wall": round(time.monotonic() - self._started, 4), "tasks": self._tasks}, out)
