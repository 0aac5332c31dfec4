"""Callback plugin of the test harness: what every forked task process would build for itself, built
once in the run's first process before it forks them.

Ansible forks a process for every task and host (skipped ones too), and each inherits the memory of
the run's first process as it was at the fork. Two things every task process needs are not in it:

- the Jinja filter and test plugins' wrappers (``filter_loader`` and ``test_loader``): the first
  filter or test a process templates loads every one of them (ansible-core's own, the
  collections' and the project's plugins/filter); the first process clears them again whenever a
  role adds a plugin directory;
- the Jinja lexer of Ansible's template environment (its regular expressions compiled, ~9 ms);
  ansible-core caches it per process and notes that it should be built before forking
  (``AnsibleEnvironment.lexer``).

Every task process of a run built both for itself, ~25 ms of the ~50 ms a ``debug`` task costs the
controller per host. This plugin wraps ``WorkerProcess.start`` (in the first process, before its
first fork) so that the first process builds them before each fork when they are missing; the
forks find them. What each task templates and how is unchanged: the same plugins, found the same
way, only loaded earlier. Enabled in ``.config/molecule/config.yml`` and for the plays of the unit
stage (``tests/conftest.py``) only: the project's ``ansible.cfg`` stays stock.
"""

from __future__ import annotations

from typing import Any

from ansible.executor.process import worker
from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader
from ansible.template import Templar, trust_as_template

DOCUMENTATION = r"""
name: celery_fleet_warm_forks
type: aggregate
short_description: Build the Jinja plugin wrappers and lexer before Ansible forks its task processes
description:
  - Before each task process is forked, loads the Jinja filter and test plugins' wrappers when a
    plugin directory added since cleared them, and once per run the template environment's lexer,
    so that the forked processes inherit them instead of building them each.
requirements:
  - enabled in callbacks_enabled
"""

# A template with a filter and a test: compiling it builds the lexer of Ansible's default template
# environment, the one the task processes use.
PRIMER = "{{ 0 | int is number }}"


def warm_before_fork() -> None:
    """Wrap ``WorkerProcess.start`` (once per process)."""
    start = worker.WorkerProcess.start
    if getattr(start, "celery_fleet_warm", False):
        return
    primed: list[bool] = []

    def warm_start(self: Any) -> None:
        for loader in (filter_loader, test_loader):
            # A no-op once loaded; after a role's plugin directory cleared them, loads them again.
            loader._ensure_non_collection_wrappers()
        if not primed:
            Templar(loader=self._loader).template(trust_as_template(PRIMER))
            primed.append(True)
        return start(self)

    warm_start.celery_fleet_warm = True  # type: ignore[attr-defined]
    worker.WorkerProcess.start = warm_start


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "celery_fleet_warm_forks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        warm_before_fork()
