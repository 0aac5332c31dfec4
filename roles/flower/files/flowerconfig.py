"""Flower configuration file of celery-fleet (``celery flower --conf=<this file>``).

Flower reads its options from FLOWER_* variables (the role's 0600 environment file); this file only
closes what Flower 2.2 leaves open. Tornado executes it before Flower builds its application, so
the changes below apply to every request:

- ``/metrics`` answers without credentials even when basic auth or OAuth is on: it now requires the
  same authentication as every page, unless CELERY_FLEET_FLOWER_METRICS_PUBLIC is true.
- ``Access-Control-Allow-Origin: *`` (and the other CORS headers) are never sent.
- Worker data Flower caches and serves (/api/workers, worker pages: ``stats``, ``conf``) are
  scrubbed: any ``password`` field is dropped and URLs lose their credentials, whatever the
  workers' Celery version sends (celery/celery#9563, mher/flower#1512).

Every name defined here that matches a Flower option would set it: keep module-level names private.
"""

from __future__ import annotations

import os
from typing import Any


def _harden() -> None:
    from flower import inspector
    from flower.views import BaseHandler, monitor
    from kombu.utils.url import maybe_sanitize_url
    from tornado import web

    if getattr(BaseHandler, "_celery_fleet_hardened", False):
        return
    BaseHandler._celery_fleet_hardened = True

    cors_headers = (
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Headers",
        "Access-Control-Allow-Methods",
    )
    set_default_headers = BaseHandler.set_default_headers

    def set_default_headers_without_cors(self: BaseHandler) -> None:
        set_default_headers(self)
        for header in cors_headers:
            self.clear_header(header)

    BaseHandler.set_default_headers = set_default_headers_without_cors

    public = os.environ.get("CELERY_FLEET_FLOWER_METRICS_PUBLIC", "false").strip().lower()
    if public not in ("1", "true", "yes", "on"):
        # Same rule as Flower's pages: basic auth answers 401, OAuth redirects to the login page.
        monitor.Metrics.get = web.authenticated(monitor.Metrics.get)

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items() if str(key).lower() != "password"}
        if isinstance(value, list | tuple):
            return [scrub(item) for item in value]
        if isinstance(value, str) and "://" in value:
            return maybe_sanitize_url(value)
        return value

    on_update = inspector.Inspector._on_update

    def on_update_scrubbed(self: Any, workername: str, method: str, response: Any) -> None:
        on_update(self, workername, method, scrub(response))

    inspector.Inspector._on_update = on_update_scrubbed


_harden()
del _harden
