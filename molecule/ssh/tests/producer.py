"""A producer that knows nothing but the broker and result backend URLs and the broker's TLS
settings (read from stdin, so they stay off the command line): a result get(), a group, a chord and
a countdown task through the deployed workers. Prints one JSON line of what it measured.

The TLS settings (a JSON line: ssl_cert_reqs, the CA, a client certificate) go where the README's
producer snippet puts them, Celery's broker_use_ssl and redis_backend_use_ssl: kombu ignores TLS
options in a rediss:// URL.

Run on the host as the app's service user with an empty environment besides PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import sys
import time

broker, backend, tls = sys.stdin.read().split("\n", 2)
os.environ["CELERY_BROKER_URL"], os.environ["CELERY_RESULT_BACKEND"] = broker, backend

from byoapp.app import app  # noqa: E402  (Celery reads the URLs and settings at first use)
from byoapp.tasks import add, sleep, total  # noqa: E402
from celery import chord, group  # noqa: E402

app.conf.broker_use_ssl = app.conf.redis_backend_use_ssl = json.loads(tls)

TIMEOUT = 60
report: dict[str, object] = {}

start = time.monotonic()
report["get"] = add.delay(2, 3).get(timeout=TIMEOUT)
report["get_s"] = round(time.monotonic() - start, 3)

start = time.monotonic()
# Half on the prefork worker (queue celery), half on the gevent one (queue slow).
report["group"] = group([add.s(i, i) for i in range(5)] + [sleep.s(0.2) for _ in range(5)])().get(
    timeout=TIMEOUT
)
report["group_s"] = round(time.monotonic() - start, 3)

start = time.monotonic()
report["chord"] = chord(add.s(i, 1) for i in range(10))(total.s()).get(timeout=TIMEOUT)
report["chord_s"] = round(time.monotonic() - start, 3)

start = time.monotonic()
report["countdown"] = add.apply_async((20, 22), countdown=2).get(timeout=TIMEOUT)
report["countdown_s"] = round(time.monotonic() - start, 3)

print(json.dumps(report))
