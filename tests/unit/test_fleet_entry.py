"""roles/celery_app/files/celery_fleet_app.py, the fleet's entry point to any app, without Celery.

The controller venv has no Celery (a target package), so a stand-in ``celery.app.utils.find_app``
imports the app module the way Celery's does; the app's ``conf`` is a dict with ``update``, as
Celery's settings behave for ``get`` and ``update``. The real thing runs in every Molecule scenario.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ENTRY = Path(__file__).resolve().parents[2] / "roles" / "celery_app" / "files" / "celery_fleet_app.py"

FAKE_CELERY = {
    "celery/__init__.py": "",
    "celery/app/__init__.py": "",
    "celery/app/utils.py": """
        import importlib
        def find_app(name):
            module, _, attr = name.partition(":")
            return getattr(importlib.import_module(module), attr or "app")
    """,
    # What bounded_event_retries uses of Celery 5.7: the events class, its dispatcher, the
    # worker's shutdown flags and symbol_by_name.
    "celery/app/events.py": """
        class Events:
            dispatcher_cls = "celery.events.dispatcher:EventDispatcher"
    """,
    "celery/events/__init__.py": "",
    "celery/events/dispatcher.py": """
        class EventDispatcher:
            def send(self, type, blind=False, utcoffset=None, retry=False, retry_policy=None, **fields):
                self.sent = {"type": type, "retry": retry, "retry_policy": retry_policy, **fields}
                return self.sent
    """,
    "celery/worker/__init__.py": "",
    "celery/worker/state.py": """
        should_stop = None
        should_terminate = None
        class WorkerShutdown(SystemExit):
            pass
        def maybe_shutdown():
            if should_stop is not None and should_stop is not False:
                raise WorkerShutdown(should_stop)
    """,
    # What reconnects_back_off_refused_writes uses of Celery 5.7: the consumer's two handlers of a
    # connection error (they log it; here they record it).
    "celery/worker/consumer/__init__.py": "",
    "celery/worker/consumer/consumer.py": """
        class Consumer:
            def __init__(self):
                self.handled = []
            def on_connection_error_before_connected(self, exc):
                self.handled.append(("before", exc))
            def on_connection_error_after_connected(self, exc):
                self.handled.append(("after", exc))
    """,
    "celery/utils/__init__.py": "",
    "celery/utils/imports.py": """
        import importlib
        def symbol_by_name(name):
            if not isinstance(name, str):
                return name
            module, _, attr = name.partition(":")
            return getattr(importlib.import_module(module), attr)
    """,
}
# What closed_connections_fail_as_such uses of kombu 5.7 / redis-py 8.1: the Redis channel's
# _connparams (its first line reads the connection's client, None once the connection was collected)
# and redis-py's ConnectionError, one of the transport's connection errors.
FAKE_KOMBU = {
    "redis/__init__.py": "",
    "redis/exceptions.py": """
        class RedisError(Exception):
            def __init__(self, *args, status_code=None):
                super().__init__(*args)
                self.status_code = status_code
        class ConnectionError(RedisError):
            pass
        class TimeoutError(RedisError):
            pass
        class ResponseError(RedisError):
            pass
    """,
    # What refused_writes_fail_as_lost_connections uses of redis-py 8.1: the parsers' map from a
    # reply's error code to the exception raised (BaseParser.parse_error, as redis-py has it).
    "redis/_parsers/__init__.py": "",
    "redis/_parsers/base.py": """
        from redis.exceptions import ConnectionError, ResponseError
        class NoPermissionError(ResponseError):
            pass
        class BaseParser:
            EXCEPTION_CLASSES = {
                "NOPERM": NoPermissionError,
                "ERR": {"max number of clients reached": ConnectionError},
            }
            @classmethod
            def parse_error(cls, response):
                error_code = response.split(" ")[0]
                if error_code in cls.EXCEPTION_CLASSES:
                    response = response[len(error_code) + 1 :]
                    exception_class = cls.EXCEPTION_CLASSES[error_code]
                    if isinstance(exception_class, dict):
                        exception_class = exception_class.get(response, ResponseError)
                    return exception_class(response, status_code=error_code)
                return ResponseError(response)
    """,
    # What reconnects_ask_the_sentinels uses of redis-py 8.1: a Sentinel-managed connection that
    # asks the Sentinels in connect() only, while send_packed_command reconnects to the address it
    # had (Connection.connect_check_health, redis/redis-py#3874).
    "redis/sentinel.py": """
        class SentinelManagedConnection:
            def __init__(self, master, host):
                self.master, self.host, self._sock, self.sent = master, host, None, []
            def connect(self):
                self.host = self.master()
                self._sock = self.host
            def connect_check_health(self, check_health=True):
                self._sock = self.host
            def send_packed_command(self, command, check_health=True):
                if not self._sock:
                    self.connect_check_health(check_health=False)
                self.sent.append((self._sock, command))
    """,
    # What pool_processes_exit_promptly bounds: billiard 4.3's exit wait of a pool process
    # (Worker._ensure_messages_consumed reads both at call time: 300 tries, 0.1 s apart).
    "billiard/__init__.py": "",
    "billiard/pool.py": """
        GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT = 300
        GUARANTEE_MESSAGE_CONSUMPTION_RETRY_INTERVAL = 0.1
    """,
    "kombu/__init__.py": "",
    "kombu/transport/__init__.py": "",
    "kombu/transport/redis.py": """
        class Channel:
            def __init__(self, connection):
                self.connection = connection
            def _connparams(self, asynchronous=False):
                conninfo = self.connection.client
                return {"host": conninfo.hostname or "127.0.0.1", "asynchronous": asynchronous}
        # What failed_event_loop_registrations_close uses: the transport's registration with the
        # worker's event loop (here it raises the scripted error) and its close of a connection.
        class Transport:
            def __init__(self, failure=None):
                self.failure, self.closed = failure, []
            def register_with_event_loop(self, connection, loop):
                if self.failure:
                    raise self.failure
                return "registered"
            def close_connection(self, connection):
                self.closed.append(connection)
        # What deliveries_survive_a_failover uses: QoS.append records a delivered message as
        # unacknowledged (kombu: one ZADD + HSET transaction); here it raises the scripted errors
        # first, one per attempt.
        class QoS:
            def __init__(self, failures=(), channel=None):
                self.failures, self.recorded = list(failures), []
                # An open channel of a live connection, unless the test gives another.
                live = type("Conn", (), {"client": object()})()
                state = {"_closing": False, "closed": False, "connection": live}
                self.channel = channel or type("Chan", (), state)()
            def append(self, message, delivery_tag):
                if self.failures:
                    raise self.failures.pop(0)
                self.recorded.append((message, delivery_tag))
    """,
}
APP_WITH_OPTIONS = """
    class Conf(dict):
        pass
    class App:
        def __init__(self):
            self.conf = Conf(broker_transport_options={"socket_keepalive": True, "visibility_timeout": 60})
    app = App()
"""
# An app with its own events class and dispatcher (Celery(events=...)): the fleet's subclasses them.
APP_WITH_OWN_EVENTS = """
    from celery.app.events import Events
    from celery.events.dispatcher import EventDispatcher
    class OwnDispatcher(EventDispatcher):
        own = True
    class OwnEvents(Events):
        dispatcher_cls = "custom:OwnDispatcher"
    class App:
        events_cls = "custom:OwnEvents"
        def __init__(self):
            self.conf = type("Conf", (dict,), {})()
    app = App()
"""
APP_WITHOUT_OPTIONS = """
    class App:
        def __init__(self):
            self.conf = type("Conf", (dict,), {})()
    celery = App()
"""


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A directory with the stand-in Celery and the apps on sys.path, and a fleet config writer."""
    apps = {"byo.py": APP_WITH_OPTIONS, "plain.py": APP_WITHOUT_OPTIONS, "custom.py": APP_WITH_OWN_EVENTS}
    for name, text in {**FAKE_CELERY, **FAKE_KOMBU, **apps}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (tmp_path / "celery_fleet_app.py").write_text(ENTRY.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [
        m
        for m in sys.modules
        if m.split(".")[0]
        in {"billiard", "celery", "kombu", "redis", "byo", "plain", "custom", "celery_fleet_app"}
    ]:
        monkeypatch.delitem(sys.modules, name)

    def write(app: str, broker: dict, backend: dict | None = None, settings: dict | None = None) -> Path:
        config = tmp_path / "fleet.json"
        content = {
            "app": app,
            "broker_transport_options": broker,
            "result_backend_transport_options": backend or {},
        }
        if settings is not None:
            content["settings"] = settings
        config.write_text(json.dumps(content))
        return config

    return tmp_path, write


def load(monkeypatch, config: Path | None, max_connections: str | None = None):
    if config is None:
        monkeypatch.delenv("CELERY_FLEET_CONFIG", raising=False)
    else:
        monkeypatch.setenv("CELERY_FLEET_CONFIG", str(config))
    if max_connections is None:
        monkeypatch.delenv("CELERY_FLEET_MAX_CONNECTIONS", raising=False)
    else:
        monkeypatch.setenv("CELERY_FLEET_MAX_CONNECTIONS", max_connections)
    return importlib.import_module("celery_fleet_app")


def test_fleet_keys_win_and_the_apps_other_options_stay(tree, monkeypatch):
    # Arrange
    _, write = tree
    config = write(
        "byo", {"visibility_timeout": 7200, "global_keyprefix": "cf:"}, {"global_keyprefix": "cf:"}
    )

    # Act
    entry = load(monkeypatch, config)

    # Assert
    assert entry.app.conf["broker_transport_options"] == {
        "socket_keepalive": True,
        "visibility_timeout": 7200,
        "global_keyprefix": "cf:",
    }
    assert entry.app.conf["result_backend_transport_options"] == {"global_keyprefix": "cf:"}


def test_an_app_without_options_gets_the_fleets_and_a_green_workers_pool_size(tree, monkeypatch):
    # Arrange: a module:attribute app name, as celery_app_module may give it.
    _, write = tree
    config = write("plain:celery", {"visibility_timeout": 3600})

    # Act
    entry = load(monkeypatch, config, max_connections="30")

    # Assert
    assert entry.app.conf["broker_transport_options"] == {"visibility_timeout": 3600, "max_connections": 30}
    assert entry.app.conf["result_backend_transport_options"] == {}
    # One result backend for the worker's greenlets, not one per task (celery/celery#7960).
    assert entry.app.conf["result_backend_thread_safe"] is True


def test_a_green_worker_shares_its_result_backend_even_where_the_app_said_otherwise(tree, monkeypatch):
    directory, write = tree
    config = write("byo", {"visibility_timeout": 10})
    (directory / "byo.py").write_text(
        textwrap.dedent(APP_WITH_OPTIONS) + "app.conf['result_backend_thread_safe'] = False\n"
    )

    entry = load(monkeypatch, config, max_connections="20")

    assert entry.app.conf["result_backend_thread_safe"] is True


def test_other_pools_and_producers_keep_celerys_backend_per_thread(tree, monkeypatch):
    # Prefork, threads, solo and a producer (python -m celery_fleet_app): no max_connections in the
    # environment, Celery's own default stays (a backend per thread: bounded by the threads).
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))

    assert "result_backend_thread_safe" not in entry.app.conf


def test_the_fleets_celery_settings_are_set_over_the_apps(tree, monkeypatch):
    # Arrange: what the builder writes with Sentinel (lib/celery_fleet/broker.py connection).
    _, write = tree
    sentinel = {"master_name": "celery-fleet", "sentinel_kwargs": {"password": "pw"}}
    config = write("byo", {"visibility_timeout": 60, **sentinel}, sentinel, {"redis_socket_timeout": 5})

    # Act
    entry = load(monkeypatch, config)

    # Assert
    assert entry.app.conf["redis_socket_timeout"] == 5
    assert entry.app.conf["result_backend_transport_options"] == sentinel
    assert entry.app.conf["broker_transport_options"]["sentinel_kwargs"] == {"password": "pw"}


def test_settings_that_are_not_an_object_are_refused(tree, monkeypatch):
    _, write = tree
    config = write("byo", {}, None, ["redis_socket_timeout"])

    with pytest.raises(Exception, match="'settings' is not a JSON object"):
        load(monkeypatch, config)


def test_the_apps_own_dict_is_not_changed_in_place(tree, monkeypatch):
    # Arrange
    _, write = tree
    byo = importlib.import_module("byo")
    original = byo.app.conf["broker_transport_options"]

    # Act
    load(monkeypatch, write("byo", {"visibility_timeout": 10}))

    # Assert
    assert original == {"socket_keepalive": True, "visibility_timeout": 60}


@pytest.mark.parametrize(
    ("config", "max_connections", "message"),
    [
        (None, None, "CELERY_FLEET_CONFIG is not set"),
        ("missing.json", None, "cannot read the fleet's settings"),
        ("fleet.json", "0", "CELERY_FLEET_MAX_CONNECTIONS='0' is not a number >= 1"),
        ("fleet.json", "ten", "CELERY_FLEET_MAX_CONNECTIONS='ten' is not a number >= 1"),
    ],
)
def test_a_missing_or_bad_setting_fails_with_what_to_fix(tree, monkeypatch, config, max_connections, message):
    # Arrange
    root, write = tree
    write("byo", {"visibility_timeout": 10})
    path = None if config is None else root / config

    # Act, Assert
    with pytest.raises(Exception, match=message):
        load(monkeypatch, path, max_connections)


def test_a_config_without_the_app_module_is_refused(tree, monkeypatch):
    # Arrange
    root, _ = tree
    (root / "fleet.json").write_text("[]")

    # Act, Assert
    with pytest.raises(Exception, match="expected a JSON object with the app module"):
        load(monkeypatch, root / "fleet.json")


def test_running_a_module_as_a_producer_sees_the_configured_app(tree):
    # Arrange: a producer module that prints what it sees of the app.
    root, write = tree
    config = write("byo", {"visibility_timeout": 99})
    (root / "producer.py").write_text(
        "import sys, json\nfrom byo import app\n"
        "print(json.dumps([sys.argv[1:], app.conf['broker_transport_options']['visibility_timeout']]))\n"
    )

    # Act
    result = subprocess.run(
        [sys.executable, "-m", "celery_fleet_app", "producer", "--json"],
        cwd=root,
        env={"CELERY_FLEET_CONFIG": str(config), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )

    # Assert
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [["--json"], 99]


def _dispatcher(entry):
    """An instance of the event dispatcher the app's workers get (app.events.Dispatcher)."""
    from celery.utils.imports import symbol_by_name

    return symbol_by_name(symbol_by_name(entry.app.events_cls).dispatcher_cls)()


def test_the_heartbeat_is_tried_once_and_never_retried(tree, monkeypatch):
    # Arrange: the heartbeat's send (retry=True, no policy).
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))

    # Act
    sent = _dispatcher(entry).send("worker-heartbeat", retry=True, freq=2.0)

    # Assert: kombu's Connection.ensure raises at the first failure when max_retries is 0 (None
    # would retry without end), so no errback and no wait; the event itself is unchanged.
    assert sent["retry_policy"] == {"max_retries": 0}
    assert sent["type"] == "worker-heartbeat"
    assert sent["freq"] == 2.0


def test_sends_without_retry_or_with_their_own_policy_are_unchanged(tree, monkeypatch):
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    dispatcher = _dispatcher(entry)

    assert dispatcher.send("worker-offline", retry=False)["retry_policy"] is None
    assert dispatcher.send("task-custom", retry=True, retry_policy={"max_retries": 3})["retry_policy"] == {
        "max_retries": 3
    }


def test_the_apps_own_events_class_and_dispatcher_are_kept(tree, monkeypatch):
    _, write = tree
    entry = load(monkeypatch, write("custom", {"visibility_timeout": 10}))

    dispatcher = _dispatcher(entry)

    assert dispatcher.own is True
    assert dispatcher.send("worker-heartbeat", retry=True)["retry_policy"] == {"max_retries": 0}


def _transport(client):
    """kombu's Redis transport as a channel sees it: ``client`` is None once collected."""
    from types import SimpleNamespace

    return SimpleNamespace(client=client)


def test_a_channel_of_a_collected_connection_fails_with_a_connection_error(tree, monkeypatch):
    # Arrange: the app loaded as every service loads it; a channel whose transport lost its client.
    _, write = tree
    load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from kombu.transport.redis import Channel
    from redis.exceptions import ConnectionError as RedisConnectionError

    # Act, Assert: what Connection.close ignores (a connection error), not AttributeError.
    with pytest.raises(RedisConnectionError, match="connection is closed"):
        Channel(_transport(None))._connparams()


def test_a_channel_of_an_open_connection_builds_its_parameters_as_before(tree, monkeypatch):
    from types import SimpleNamespace

    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from kombu.transport.redis import Channel

    params = Channel(_transport(SimpleNamespace(hostname="redis-1")))._connparams(asynchronous=True)

    assert params == {"host": "redis-1", "asynchronous": True}
    # Guarded once: a second call (another app in the process) does not wrap the guard again.
    guarded = Channel._connparams
    assert entry.closed_connections_fail_as_such() is True
    assert Channel._connparams is guarded


def test_without_kombu_and_redis_py_the_app_loads_unguarded(tree, monkeypatch):
    import shutil

    path, write = tree
    shutil.rmtree(path / "kombu")
    shutil.rmtree(path / "redis")

    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))

    assert entry.closed_connections_fail_as_such() is False
    assert entry.deliveries_survive_a_failover() is False
    assert entry.refused_writes_fail_as_lost_connections() is False
    assert entry.app.conf["broker_transport_options"]["visibility_timeout"] == 10


def test_a_sentinel_connection_that_lost_its_socket_asks_the_sentinels_before_it_sends(tree, monkeypatch):
    # Arrange: a connection to the old master whose socket was dropped (READONLY: the master was
    # demoted); the Sentinels now name another.
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from redis.sentinel import SentinelManagedConnection

    connection = SentinelManagedConnection(master=lambda: "new-master:6380", host="old-master:6380")

    # Act: what redis-py's pipeline does next (UNWATCH, then the transaction again).
    connection.send_packed_command(b"UNWATCH")
    connection.send_packed_command(b"WATCH unacked")

    # Assert: both went to the master the Sentinels name, the second on the same socket.
    assert connection.sent == [("new-master:6380", b"UNWATCH"), ("new-master:6380", b"WATCH unacked")]
    guarded = SentinelManagedConnection.send_packed_command
    assert entry.reconnects_ask_the_sentinels() is True
    assert SentinelManagedConnection.send_packed_command is guarded


def test_without_the_guard_the_stand_in_reconnects_to_the_old_master(tree):
    # The stand-in behaves as redis-py 8.1 does (what the guard is for), checked without the entry module.
    from redis.sentinel import SentinelManagedConnection

    connection = SentinelManagedConnection(master=lambda: "new-master:6380", host="old-master:6380")
    connection.send_packed_command(b"UNWATCH")

    assert connection.sent == [("old-master:6380", b"UNWATCH")]


def test_a_delivery_whose_record_was_cut_off_is_recorded_on_a_new_connection(tree, monkeypatch, caplog):
    # Arrange: the record's transaction fails twice (the switchover's CLIENT KILL, then the old
    # address refusing), then reaches the new master.
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from kombu.transport.redis import QoS
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    sleeps: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", sleeps.append)
    qos = QoS([RedisConnectionError("Connection closed by server."), RedisTimeoutError("Timeout connecting")])

    # Act
    with caplog.at_level("WARNING", logger="celery_fleet_app"):
        qos.append("message", "tag-1")

    # Assert: recorded once, after the first two delays; each retry said so.
    assert qos.recorded == [("message", "tag-1")]
    assert sleeps == list(entry.DELIVERY_RETRY_DELAYS[:2])
    assert [r.getMessage() for r in caplog.records] == [
        "recording delivery tag-1 as unacknowledged failed (attempt 1 of 6: "
        "ConnectionError('Connection closed by server.')); retrying in 0.0 s on a new connection",
        "recording delivery tag-1 as unacknowledged failed (attempt 2 of 6: "
        "TimeoutError('Timeout connecting')); retrying in 1.0 s on a new connection",
    ]
    guarded = QoS.append
    assert entry.deliveries_survive_a_failover() is True
    assert QoS.append is guarded


def test_a_broker_that_stays_away_gets_the_last_error_after_every_delay(tree, monkeypatch):
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from kombu.transport.redis import QoS
    from redis.exceptions import ConnectionError as RedisConnectionError

    sleeps: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", sleeps.append)
    attempts = len(entry.DELIVERY_RETRY_DELAYS) + 1
    qos = QoS([RedisConnectionError(f"refused {n}") for n in range(1, attempts + 1)])

    with pytest.raises(RedisConnectionError, match=f"refused {attempts}"):
        qos.append("message", "tag-1")

    # Bounded: every delay once (15 s in all), then the consumer's own reconnect takes over.
    assert sleeps == list(entry.DELIVERY_RETRY_DELAYS)
    assert sum(sleeps) == 15.0
    assert qos.failures == [] and qos.recorded == []


def test_a_record_refused_for_lagging_replicas_is_retried_until_the_master_takes_writes(tree, monkeypatch):
    # Arrange: the master refuses writes while its replicas lag (min-replicas-to-write), as redis-py
    # raises it for a command of the transaction, then takes them.
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from kombu.transport.redis import QoS
    from redis.exceptions import ResponseError as RedisResponseError

    sleeps: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", sleeps.append)
    refused = (
        "Command # 1 (ZADD unacked_index 1.0 tag-1) of pipeline caused error: "
        "NOREPLICAS Not enough good replicas to write."
    )
    qos = QoS([RedisResponseError(refused), RedisResponseError(refused)])

    # Act
    qos.append("message", "tag-1")

    # Assert
    assert qos.recorded == [("message", "tag-1")]
    assert sleeps == list(entry.DELIVERY_RETRY_DELAYS[:2])


def test_a_write_refused_for_want_of_replicas_is_a_lost_connection(tree, monkeypatch):
    # Arrange: the app loaded as every service loads it.
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from redis._parsers.base import BaseParser
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError as RedisResponseError

    # Act: the reply to a BRPOP (or any write) while too few replicas are in sync.
    error = BaseParser.parse_error("NOREPLICAS Not enough good replicas to write.")

    # Assert: kombu and Celery reconnect on a ConnectionError; a pipeline collects a ResponseError.
    assert isinstance(error, RedisConnectionError)
    assert isinstance(error, RedisResponseError)
    assert error.status_code == "NOREPLICAS"
    assert str(error) == "Not enough good replicas to write."
    assert entry.refused_for_want_of_replicas(error)
    # Mapped once: a second call (another app in the process) keeps the same class.
    mapped = BaseParser.EXCEPTION_CLASSES["NOREPLICAS"]
    assert entry.refused_writes_fail_as_lost_connections() is True
    assert BaseParser.EXCEPTION_CLASSES["NOREPLICAS"] is mapped


def test_a_consumer_refused_writes_waits_longer_each_time_before_it_reconnects(tree, monkeypatch):
    # Arrange: the refusal as the consumer meets it, the worker's clock and sleep under the test.
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from celery.worker.consumer.consumer import Consumer
    from redis._parsers.base import BaseParser

    clock = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(entry.time, "sleep", sleep)
    monkeypatch.setattr(entry.time, "monotonic", lambda: clock[0])
    refused = BaseParser.parse_error("NOREPLICAS Not enough good replicas to write.")
    consumer = Consumer()

    # Act: six refusals in a row, before and after the consumer counted itself connected.
    waits = []
    handlers = (consumer.on_connection_error_before_connected, consumer.on_connection_error_after_connected)
    for n in range(6):
        before = len(slept)
        handler = handlers[n % 2]
        handler(refused)
        waits.append(sum(slept[before:]))

    # Assert: Celery's own handler ran each time; 1, 2, 4, 8 s, then 8 s each time.
    assert [kind for kind, _ in consumer.handled] == ["before", "after"] * 3
    assert waits == [1, 2, 4, 8, 8, 8]
    assert set(slept) == {1}  # one-second steps, a stop is seen within one


def test_a_refusal_long_after_the_last_waits_the_shortest_again(tree, monkeypatch):
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from celery.worker.consumer.consumer import Consumer
    from redis._parsers.base import BaseParser

    clock = [1000.0]
    slept: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)))
    monkeypatch.setattr(entry.time, "monotonic", lambda: clock[0])
    refused = BaseParser.parse_error("NOREPLICAS Not enough good replicas to write.")
    consumer = Consumer()
    for _ in range(3):
        consumer.on_connection_error_before_connected(refused)
    clock[0] += 2 * entry.REFUSED_WRITES_WAITS[-1] + 1

    # Act
    slept.clear()
    consumer.on_connection_error_before_connected(refused)

    # Assert
    assert sum(slept) == entry.REFUSED_WRITES_WAITS[0]


def test_a_stop_ends_the_wait_and_other_errors_do_not_wait(tree, monkeypatch):
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from celery.worker import state
    from celery.worker.consumer.consumer import Consumer
    from redis._parsers.base import BaseParser
    from redis.exceptions import ConnectionError as RedisConnectionError

    slept: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", slept.append)
    consumer = Consumer()

    # Act, Assert: a lost connection of another kind is Celery's alone (it backs off itself).
    consumer.on_connection_error_after_connected(RedisConnectionError("Connection reset by peer"))
    assert slept == []
    # A warm stop asked for: the wait ends before its first second.
    monkeypatch.setattr(state, "should_stop", 0)
    with pytest.raises(state.WorkerShutdown):
        consumer.on_connection_error_before_connected(BaseParser.parse_error("NOREPLICAS Not enough."))
    assert slept == []
    assert entry.reconnects_back_off_refused_writes() is True  # guarded once
    assert len(consumer.handled) == 2


def test_a_connection_whose_event_loop_registration_failed_is_closed(tree, monkeypatch):
    # Arrange: kombu restores unacked messages as it registers (a write), and the broker refuses it.
    _, write = tree
    load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from kombu.transport.redis import Transport
    from redis._parsers.base import BaseParser

    refused = BaseParser.parse_error("NOREPLICAS Not enough good replicas to write.")
    failing, working = Transport(refused), Transport()

    # Act, Assert: the error goes on, the connection is closed; a registration that works is as it was.
    with pytest.raises(type(refused)):
        failing.register_with_event_loop("connection-1", "hub")
    assert failing.closed == ["connection-1"]
    assert working.register_with_event_loop("connection-2", "hub") == "registered"
    assert working.closed == []


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("NOPERM User worker has no permissions to run the 'brpop' command", "NoPermissionError"),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", "ResponseError"),
        ("ERR max number of clients reached", "ConnectionError"),
    ],
)
def test_other_reply_errors_are_raised_as_before(tree, monkeypatch, reply, kind):
    # NOPERM (an ACL change) must stay loud: waiting cannot end it.
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from redis._parsers.base import BaseParser

    error = BaseParser.parse_error(reply)

    assert type(error).__name__ == kind
    assert not entry.refused_for_want_of_replicas(error)


def test_a_record_refused_as_the_mapped_error_is_retried(tree, monkeypatch):
    # Arrange: the refusal as redis-py raises it with the mapping in place, the pipeline's command
    # named before the reply (redis-py's annotate_exception rewrites the message, not the class).
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from kombu.transport.redis import QoS
    from redis._parsers.base import BaseParser

    sleeps: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", sleeps.append)
    refused = BaseParser.parse_error("NOREPLICAS Not enough good replicas to write.")
    refused.args = ("Command # 1 (ZADD unacked_index 1.0 tag-1) of pipeline caused error: " + str(refused),)
    qos = QoS([refused])

    # Act
    qos.append("message", "tag-1")

    # Assert
    assert qos.recorded == [("message", "tag-1")]
    assert sleeps == list(entry.DELIVERY_RETRY_DELAYS[:1])


@pytest.mark.parametrize(
    "reply",
    [
        "OOM command not allowed when used memory > 'maxmemory'.",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    ],
)
def test_other_refusals_of_the_record_are_not_retried(tree, monkeypatch, reply):
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from kombu.transport.redis import QoS
    from redis.exceptions import ResponseError as RedisResponseError

    sleeps: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", sleeps.append)
    qos = QoS([RedisResponseError(reply), None])

    with pytest.raises(RedisResponseError, match=reply.split()[0]):
        qos.append("message", "tag-1")

    assert sleeps == [] and qos.recorded == []


def test_errors_other_than_a_lost_connection_are_not_retried(tree, monkeypatch):
    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from kombu.transport.redis import QoS

    sleeps: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", sleeps.append)
    qos = QoS([ValueError("OOM command not allowed"), None])

    with pytest.raises(ValueError, match="OOM"):
        qos.append("message", "tag-1")

    assert sleeps == [] and qos.recorded == []


@pytest.mark.parametrize(
    "why",
    ["the channel is closing", "the channel is closed", "the connection was collected", "the worker stops"],
)
def test_no_retry_where_waiting_cannot_help(tree, monkeypatch, why):
    # A failed record while the worker stops (kombu's Channel.close delivers a pending BRPOP reply)
    # is raised at once, as without the guard: a warm stop once took 32.8 s of retries.
    from types import SimpleNamespace

    _, write = tree
    entry = load(monkeypatch, write("byo", {"visibility_timeout": 10}))
    from celery.worker import state
    from kombu.transport.redis import QoS
    from redis.exceptions import ConnectionError as RedisConnectionError

    channel = SimpleNamespace(_closing=False, closed=False, connection=SimpleNamespace(client=object()))
    if why == "the channel is closing":
        channel._closing = True
    elif why == "the channel is closed":
        channel.closed = True
    elif why == "the connection was collected":
        channel.connection.client = None
    else:
        monkeypatch.setattr(state, "should_stop", 0)  # a warm stop: EX_OK
    sleeps: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", sleeps.append)
    qos = QoS([RedisConnectionError("Connection closed by server."), None], channel=channel)

    with pytest.raises(RedisConnectionError):
        qos.append("message", "tag-1")

    assert sleeps == [] and qos.recorded == []


def test_an_exiting_pool_process_waits_two_seconds_at_most_for_its_results_to_be_counted(tree, monkeypatch):
    _, write = tree
    entry = load(monkeypatch, write("byo", {}))
    from billiard import pool

    # Loading the app bounded it: 20 tries 0.1 s apart, not billiard's 300 (a warm stop's 30 s).
    assert pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT == 20
    assert entry.pool_processes_exit_promptly(seconds=0.5) is True
    assert pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT == 5
    # Never longer than billiard's own, never no wait at all.
    assert entry.pool_processes_exit_promptly(seconds=60) is True
    assert pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT == 5
    assert entry.pool_processes_exit_promptly(seconds=0) is True
    assert pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT == 1


def test_without_billiard_or_with_another_billiard_the_exit_wait_is_left_alone(tree, monkeypatch):
    import shutil

    path, write = tree
    (path / "billiard" / "pool.py").write_text("GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT = 300\n")
    entry = load(monkeypatch, write("byo", {}))
    from billiard import pool

    assert entry.pool_processes_exit_promptly() is False
    assert pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT == 300

    shutil.rmtree(path / "billiard")
    monkeypatch.delitem(sys.modules, "billiard.pool")
    monkeypatch.delitem(sys.modules, "billiard")
    assert entry.pool_processes_exit_promptly() is False
