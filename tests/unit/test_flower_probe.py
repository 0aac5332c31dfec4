"""Unit tests of roles/flower/files/flower_probe.py (the verify probe) against a stand-in Flower on
loopback: it waits until /healthcheck answers, reports each anonymous page's status without following
a redirect, and reports what failed when nothing answers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

PROBE = Path(__file__).resolve().parents[2] / "roles" / "flower" / "files" / "flower_probe.py"


class StandIn(BaseHTTPRequestHandler):
    """Healthy after `ready_at`; the API and metrics refuse anonymous requests, / redirects to login."""

    ready_at = 0.0
    pages: ClassVar[dict[str, int]] = {"/api/workers": 401, "/metrics": 401, "/": 302, "/open": 200}

    def do_GET(self) -> None:
        if self.path == "/healthcheck":
            code = 200 if time.monotonic() >= self.ready_at else 503
        else:
            code = self.pages.get(self.path, 404)
        self.send_response(code)
        if code == 302:
            self.send_header("Location", "/login")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flower() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def probe(url: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(PROBE), "--url", url, "--ca", "", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_it_waits_for_the_healthcheck_then_reports_each_anonymous_page(flower: str) -> None:
    StandIn.ready_at = time.monotonic() + 2
    report = probe(flower, "--wait", "20", "--anonymous", "/api/workers", "/metrics", "/", "/open")
    assert report["health"] == 200
    assert 1.5 <= report["waited"] < 15, report
    # The redirect to the login page is the answer: not followed (the login page would say 200).
    assert report["anonymous"] == {"/api/workers": 401, "/metrics": 401, "/": 302, "/open": 200}


def test_a_flower_that_never_answers_is_reported_without_asking_the_pages(flower: str) -> None:
    StandIn.ready_at = time.monotonic() + 3600
    report = probe(flower, "--wait", "2", "--anonymous", "/api/workers")
    assert report["health"] == 503 and report["anonymous"] == {}
    assert 2 <= report["waited"] < 10, report


def test_nothing_listening_is_reported_with_the_reason() -> None:
    report = probe("http://127.0.0.1:9", "--wait", "1", "--anonymous", "/api/workers")
    assert report["health"] == 0
    assert "refused" in report["error"].lower(), report
