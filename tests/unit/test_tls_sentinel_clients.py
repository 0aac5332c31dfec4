"""TLS through Sentinel as the pinned libraries read it: lib/celery_fleet/broker.py ``connection``'s
output, through the fleet's settings file (JSON) and entry module, into kombu's broker channel,
Celery's result backend and Flower's broker page, down to the redis-py connections they would open.

No network: the connection objects are made and inspected, never connected (kombu's channel, which
pings at once, finds no master because ``discover_master`` is replaced). Needs celery, kombu, redis
and flower, which the controller venv does not carry (target packages): the module is skipped there.
Run it with them importable, e.g. with the wheelhouse's packages on PYTHONPATH::

    pip install --no-index --find-links "$CELERY_FLEET_WHEELHOUSE/py311" --target /tmp/pinned \\
        -r "$CELERY_FLEET_WHEELHOUSE/py311/requirements.txt"
    PYTHONPATH=/tmp/pinned .venv/bin/pytest -q tests/unit/test_tls_sentinel_clients.py
"""

from __future__ import annotations

import importlib.util
import json
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
pytest.importorskip("kombu.transport.redis")
redis_sentinel = pytest.importorskip("redis.sentinel")
asyncio_sentinel = pytest.importorskip("redis.asyncio.sentinel")

from celery_fleet.broker import connection  # noqa: E402
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection  # noqa: E402
from redis.connection import SSLConnection  # noqa: E402

ENTRY = Path(__file__).resolve().parents[2] / "roles" / "celery_app" / "files" / "celery_fleet_app.py"
# The files roles/celery_app installs (lib/celery_fleet/layout.py, app celerydemo).
TLS_DIR = "/etc/celerydemo/tls"
CA, CERT, KEY = f"{TLS_DIR}/ca.crt", f"{TLS_DIR}/client.crt", f"{TLS_DIR}/client.key"
# Closed local ports: nothing is ever dialled, and nothing could answer if it were.
SENTINELS = ["127.0.0.1:1", "127.0.0.1:2"]


@pytest.fixture(params=[True, False], ids=["client-cert", "ca-only"])
def app(request, tmp_path, monkeypatch) -> Any:
    """An app configured as a fleet service is: connection()'s output written as the fleet's JSON
    settings file (as roles/celery_app does) and merged by the fleet's entry module."""
    client_cert = request.param
    built = connection(
        None,
        user="worker",
        password="broker-pw",
        sentinels=SENTINELS,
        master_name="celery-fleet",
        sentinel_password="sentinel-pw",
        tls=True,
        tls_ca_file=CA,
        tls_cert_file=CERT if client_cert else "",
        tls_key_file=KEY if client_cert else "",
    )
    config = {
        "app": "tlsapp",
        "broker_transport_options": built["transport_options"]["broker"],
        "result_backend_transport_options": built["transport_options"]["backend"],
        "settings": built["settings"],
    }
    # An app module of its own per run: Celery's app caches its backend and kombu its pools.
    name = f"tlsapp_{request.param_index}"
    config["app"] = name
    (tmp_path / f"{name}.py").write_text(f"from celery import Celery\n\napp = Celery({name!r})\n")
    (tmp_path / "fleet.json").write_text(json.dumps(config))
    monkeypatch.setenv("CELERY_FLEET_CONFIG", str(tmp_path / "fleet.json"))
    monkeypatch.setenv("CELERY_BROKER_URL", built["broker_url"])
    monkeypatch.setenv("CELERY_RESULT_BACKEND", built["result_backend"])
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = importlib.util.spec_from_file_location("celery_fleet_app", ENTRY)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "celery_fleet_app", module)
    spec.loader.exec_module(module)
    # Celery reads CELERY_BROKER_URL / CELERY_RESULT_BACKEND from the environment, as the services do.
    module.app.client_cert = client_cert
    yield module.app
    sys.modules.pop(name, None)


def assert_verified(conn: Any, client_cert: bool) -> None:
    """A redis-py connection object (not connected) that speaks TLS and verifies the peer (kombu's
    and Celery's SentinelManagedSSLConnection are their own subclasses of redis-py's SSLConnection;
    Flower's broker page uses redis.asyncio's)."""
    assert isinstance(conn, SSLConnection | AsyncSSLConnection), type(conn)
    assert conn.cert_reqs == ssl.CERT_REQUIRED
    assert conn.ca_certs == CA
    assert conn.check_hostname is True
    assert (conn.certfile, conn.keyfile) == ((CERT, KEY) if client_cert else (None, None))


def assert_sentinels_verified(sentinel: Any, client_cert: bool) -> None:
    """Every Sentinel client of a redis.sentinel.Sentinel: TLS, verified, the Sentinels' password."""
    assert [c.connection_pool.connection_kwargs["port"] for c in sentinel.sentinels] == [1, 2]
    for client in sentinel.sentinels:
        conn = client.connection_pool.make_connection()
        assert_verified(conn, client_cert)
        assert conn.password == "sentinel-pw"


def test_kombus_broker_channel_reaches_sentinels_and_master_over_verified_tls(app, monkeypatch):
    # Arrange: record the Sentinel manager kombu builds; no master is ever found (no socket opened).
    made: list[Any] = []

    class Recorded(redis_sentinel.Sentinel):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

        def discover_master(self, service_name: str) -> Any:
            raise redis_sentinel.MasterNotFoundError(f"test: no master for {service_name}")

    monkeypatch.setattr(redis_sentinel, "Sentinel", Recorded)

    # Act: a channel pings the broker as it is made, through the master pool.
    with app.connection_for_write() as conn, pytest.raises(Exception, match="test: no master"):
        conn.channel()

    # Assert
    assert type(conn.transport).__name__ == "SentinelTransport"
    assert made, "kombu made no Sentinel manager"
    sentinel = made[-1]
    assert_sentinels_verified(sentinel, app.client_cert)
    pool = redis_sentinel.SentinelConnectionPool("celery-fleet", sentinel, **sentinel.connection_kwargs)
    master = pool.make_connection()
    assert isinstance(master, redis_sentinel.SentinelManagedConnection)
    assert_verified(master, app.client_cert)
    assert master.password == "broker-pw"


def test_celerys_result_backend_reaches_sentinels_and_master_over_verified_tls(app):
    # Act: the backend's client (its Sentinel manager and master pool; nothing connects yet).
    backend = app.backend
    pool = backend.client.connection_pool

    # Assert
    assert type(backend).__name__ == "SentinelBackend"
    assert isinstance(pool, redis_sentinel.SentinelConnectionPool)
    assert_sentinels_verified(pool.sentinel_manager, app.client_cert)
    master = pool.make_connection()
    assert isinstance(master, redis_sentinel.SentinelManagedConnection)
    assert_verified(master, app.client_cert)
    assert (master.password, master.db) == ("broker-pw", 1)


def test_flowers_broker_page_reaches_sentinels_and_master_over_verified_tls(app):
    # Arrange: Flower 2.2's broker page, given what flower/views get_broker passes it.
    broker_module = pytest.importorskip("flower.utils.broker")

    # Act
    broker = broker_module.Broker(
        app.connection_for_write().as_uri(include_password=True),  # Flower's broker_uri_with_password
        http_api=None,
        broker_options=app.conf.broker_transport_options,
        broker_use_ssl=app.conf.broker_use_ssl,
    )

    # Assert: Flower asks the URL's first Sentinel only (its own choice), over TLS as well.
    pool = broker.redis.connection_pool
    assert isinstance(pool, redis_sentinel.SentinelConnectionPool | asyncio_sentinel.SentinelConnectionPool)
    sentinel = pool.sentinel_manager
    assert [c.connection_pool.connection_kwargs["port"] for c in sentinel.sentinels] == [1]
    conn = sentinel.sentinels[0].connection_pool.make_connection()
    assert_verified(conn, app.client_cert)
    assert conn.password == "sentinel-pw"
    assert_verified(pool.make_connection(), app.client_cert)
