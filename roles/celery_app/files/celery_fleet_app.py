"""celery-fleet's entry point to the app: every service of the fleet runs ``celery -A celery_fleet_app``.

The app needs no fleet-specific code. This module imports it the way ``celery -A <module>`` would
(from the working directory, the app's code directory), then merges the fleet's settings from the
JSON file named by ``CELERY_FLEET_CONFIG`` (written by roles/celery_app) into the app's own
transport options: the fleet's keys win, because validation reasoned about them (the visibility
timeout), the Redis ACL depends on them (the key prefix, when scoping is on), green pools need
them (kombu's ``max_connections``, per worker in ``CELERY_FLEET_MAX_CONNECTIONS``) and a Sentinel
client needs them (``master_name``, ``sentinel_kwargs``, failover settings); every other key the app
set stays. With Sentinel or TLS the file also has ``settings``: Celery settings set over the app's
(the result backend's socket timeouts and retries with Sentinel; TLS). A green-pool worker keeps
one result backend for all its greenlets (``green_pool_settings``). The deploy's verification
reads the options back from each running worker.

It also ends the event heartbeat's retries (``bounded_event_retries``): Celery's heartbeat retried
its publish forever while the broker was away, holding a prefork worker's event loop (nothing
logged, no reconnect) or, in a green pool, the event dispatcher's lock that the warm shutdown waits
for (no stop); now it tries once. And it keeps a
worker running while the broker refuses writes for want of replicas, which used to stop it for good
(``refused_writes_fail_as_lost_connections``), through a broker failover that used to stop it
(``closed_connections_fail_as_such``),
and one that used to leave it looping against the demoted master (``reconnects_ask_the_sentinels``),
and keeps a message it took off a queue when the broker went away before it could record it as
unacknowledged (``deliveries_survive_a_failover``). A worker's warm stop does not wait 30 s for a
prefork pool process whose exit waits on a count the main process no longer makes
(``pool_processes_exit_promptly``).

A producer on a fleet host runs a module with the app configured the same way:
``python -m celery_fleet_app <module> [args...]``.

Installed into the app's virtualenv by roles/celery_app: keep it free of anything but the
standard library and Celery.
"""

from __future__ import annotations

import json
import logging
import os
import runpy
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

CONFIG_ENV = "CELERY_FLEET_CONFIG"
MAX_CONNECTIONS_ENV = "CELERY_FLEET_MAX_CONNECTIONS"
SETTINGS = ("broker_transport_options", "result_backend_transport_options")
# Seconds before each new attempt to record a delivered message as unacknowledged
# (deliveries_survive_a_failover): 15 s in all, a Sentinel election (down-after plus the vote) and
# the clients' reconnect, with room to spare on a loaded host.
DELIVERY_RETRY_DELAYS = (0.0, 1.0, 2.0, 4.0, 8.0)
# Seconds a prefork pool process waits, as it exits, for the main process to count the results it
# sent (billiard's own: 30 s): pool_processes_exit_promptly.
POOL_EXIT_WAIT = 2.0
log = logging.getLogger("celery_fleet_app")


class FleetConfigError(RuntimeError):
    """The fleet's settings cannot be read: the message says which file or variable and why."""


def read_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The fleet's settings: ``{"app": "<module>", "broker_transport_options": {...}, ...}``."""
    path = environ.get(CONFIG_ENV, "")
    if not path:
        raise FleetConfigError(
            f"{CONFIG_ENV} is not set: start this through the app's service or its celery-env "
            "wrapper, which load the app's environment file"
        )
    try:
        with open(path, encoding="utf-8") as stream:
            config = json.load(stream)
    except (OSError, ValueError) as exc:
        raise FleetConfigError(f"{CONFIG_ENV}={path}: cannot read the fleet's settings: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("app"), str):
        raise FleetConfigError(f"{path}: expected a JSON object with the app module under 'app'")
    return config


def fleet_options(config: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Setting name -> the options the fleet sets in it, the worker's own max_connections included."""
    options = {name: dict(config.get(name) or {}) for name in SETTINGS}
    limit = environ.get(MAX_CONNECTIONS_ENV, "").strip()
    if limit:
        if not limit.isdigit() or int(limit) < 1:
            raise FleetConfigError(f"{MAX_CONNECTIONS_ENV}={limit!r} is not a number >= 1")
        options["broker_transport_options"]["max_connections"] = int(limit)
    return options


def merged(current: Mapping[str, Any] | None, fleet: Mapping[str, Any]) -> dict[str, Any]:
    """The app's options with the fleet's keys set over them (a copy: the app's dict is not changed)."""
    return {**dict(current or {}), **fleet}


def shutting_down(state: Any) -> bool:
    """Whether a warm or cold stop was asked for (``celery.worker.state``), as
    ``celery.worker.state.maybe_shutdown`` tests it: a warm stop sets should_stop to 0 (EX_OK)."""
    return any(flag is not None and flag is not False for flag in (state.should_stop, state.should_terminate))


# kombu ``Connection.ensure`` options of an event sent with ``retry=True`` and no policy (the
# heartbeat): one attempt, no retry (``bounded_event_retries``).
EVENT_RETRY_POLICY = {"max_retries": 0}


def bounded_event_retries(app: Any) -> Any:
    """Give the app's event dispatcher a retry policy for the heartbeat: one attempt, no retry.

    Celery 5.7's worker heartbeat (``celery.worker.heartbeat.Heart``, on unless
    ``--without-heartbeat``) publishes ``worker-heartbeat`` every 2 s with ``retry=True`` and no
    retry policy: kombu's ``Connection.ensure`` then retries the connection every second with no
    limit and no shutdown check, inside the dispatcher's lock. After the broker went away (down, or
    up again with another password):

    - a prefork or solo worker runs the heartbeat in its event loop (a timer of kombu's hub): when
      the heartbeat was the first to meet the lost connection (it was waiting for the broker's reply
      while Redis shut down), the whole loop retried with it for as long as the broker stayed away:
      no "Cannot connect" in the log, no reconnect of the consumer, no pool maintenance (measured:
      nothing logged in 25 s of outage; py-spy: ``Hub.fire_timers`` -> ``Heart._send`` ->
      ``retry_over_time``);
    - a green pool (gevent, eventlet) runs it in a greenlet of its own, so it retried forever while
      the warm shutdown waited for that lock (``EventDispatcher.close``): the worker stopped only
      when the process manager killed it after its stop timeout (measured: 600 s).

    Retries bounded to a few attempts (stop 45: 2 more, 0.5 s and 1 s apart) were not enough once
    a connection has a socket timeout (a Sentinel client's, lib/celery_fleet/broker.py
    SENTINEL_BROKER_OPTIONS; measured with the same 5 s given to a direct client, since taken back:
    README, Troubleshooting): with a broker that stops answering (frozen, host lost), each attempt
    waits out the timeout (5 s), so each heartbeat held a prefork worker's loop 15-20 s, and it
    logged the lost broker 28-54 s into the outage (measured, Redis under SIGSTOP); without retries
    it holds the loop one timeout at most and the worker logged it after 10-12 s. A heartbeat lost
    is harmless: the next one follows in 2 s.

    So a send with ``retry=True`` and no policy of its own tries the broker once
    (``EVENT_RETRY_POLICY``); when that fails the worker's dispatcher keeps the event in its
    offline buffer (``buffer_while_offline``, sent with the next event that gets through) and the
    consumer's own reconnect loop, which logs, takes over. No retry also means nothing for a warm
    stop to wait for. Sends that pass their own retry policy are unchanged.
    """
    from celery.app.events import Events
    from celery.events.dispatcher import EventDispatcher
    from celery.utils.imports import symbol_by_name

    events = symbol_by_name(getattr(app, "events_cls", None) or Events)
    dispatcher = symbol_by_name(events.dispatcher_cls)
    if not issubclass(dispatcher, EventDispatcher) or getattr(dispatcher, "fleet_bounded_retries", False):
        return app

    class BoundedRetriesDispatcher(dispatcher):  # type: ignore[misc, valid-type]
        fleet_bounded_retries = True

        def send(
            self, type: str, *args: Any, retry: bool = False, retry_policy: Any = None, **fields: Any
        ) -> Any:
            if retry and retry_policy is None:
                retry_policy = dict(EVENT_RETRY_POLICY)
            return super().send(type, *args, retry=retry, retry_policy=retry_policy, **fields)

    app.events_cls = type("FleetEvents", (events,), {"dispatcher_cls": BoundedRetriesDispatcher})
    # app.events is a cached property: drop a copy made before this (a new one uses events_cls).
    vars(app).pop("events", None)
    return app


def guard(owner: Any, name: str, wrap: Callable[[Any], Any]) -> bool:
    """Replace ``owner.name`` by ``wrap(original)`` once (a second call, another app in the same
    process, leaves the guard as it is). Returns True: the guard is in place."""
    original = getattr(owner, name)
    if not getattr(original, "fleet_guarded", False):
        guarded = wrap(original)
        guarded.fleet_guarded = True
        setattr(owner, name, guarded)
    return True


def collected(channel: Any) -> bool:
    """Whether a kombu channel's connection was collected (kombu 5.7 ``Connection.collect`` sets
    its transport's ``client`` to None)."""
    return getattr(getattr(channel, "connection", None), "client", None) is None


NO_REPLICAS = "NOREPLICAS"  # Redis' reply to a write while too few replicas are in sync
CLOSED = "the channel's connection is closed (celery_fleet_app.closed_connections_fail_as_such)"


def closed_connections_fail_as_such() -> bool:
    """Make a Redis channel of a closed connection fail with a connection error, not AttributeError.

    Celery 5.7's consumer, after a connection error once connected
    (``Consumer.on_connection_error_after_connected``), first collects the broken connection
    (kombu 5.7 ``Connection.collect``: it closes the connection's default channel, then sets its
    transport's ``client`` to None) and then closes it (``Connection.close``), which closes the
    default channel again. When the first close did not finish (the channel was polling, and
    reading the dead socket raised before the channel marked itself closed), the second one
    reaches ``QoS.restore_unacked`` with no connection pool, and the channel's ``_connparams``
    reads ``self.connection.client.hostname`` with ``client`` None. ``AttributeError`` is not one
    of the transport's connection errors, so the close did not ignore it: the worker stopped with
    "Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")" and its
    service manager started it again (molecule/sentinel: 1-3 times per run of four failovers, the
    prefork and the gevent worker, with the tasks they held waiting out the visibility timeout).

    Raised as redis-py's ``ConnectionError``, it is a connection error: the close ignores it, and the
    consumer reconnects as after any connection loss. The unacked messages that close would have
    restored go back to their queues after the visibility timeout, as every other worker's do:
    the broker it would have written them to is gone. Nothing else changes: a channel whose
    connection is open builds its parameters as before. Returns whether the guard is in place.
    """
    try:
        from kombu.transport import redis as transport
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:  # no Redis transport in this virtualenv: nothing to guard
        return False

    def wrap(original: Any) -> Any:
        def _connparams(self: Any, *args: Any, **kwargs: Any) -> Any:
            if collected(self):
                raise RedisConnectionError(CLOSED)
            return original(self, *args, **kwargs)

        return _connparams

    return guard(transport.Channel, "_connparams", wrap)


def reconnects_ask_the_sentinels() -> bool:
    """Make a Sentinel-managed connection ask the Sentinels for the master whenever it reconnects.

    redis-py 8.1's ``SentinelManagedConnection`` asks the Sentinels in ``connect()`` only. A
    connection that lost its socket and is then used to send a command reconnects through
    ``Connection.send_packed_command``, which calls ``connect_check_health`` and ``_connect`` on
    the address it had (redis/redis-py#3874). Its own ``ReadOnlyError`` handler drops the socket
    when the master it talks to was demoted, so after a planned switchover (the old master is up,
    a replica now) the next command goes back to the demoted master. Measured in molecule/sentinel
    after playbooks/switchover.yml: the prefork worker's consumer, restoring its unacknowledged
    messages as it reconnected (kombu ``QoS.restore_by_tag``, a WATCH transaction), looped for good
    against the old master (WATCH, HGET, MULTI, HDEL refused with READONLY; the connection error,
    raised while watching, becomes redis-py's ``WatchError``, which ``Redis.transaction`` retries):
    about 20 connections a second at 87 % CPU while the new master's queues filled up.

    Connecting through ``connect()`` first asks the Sentinels, so the retry reaches the new master.
    A connection that has its socket sends as before. Returns whether the guard is in place.
    """
    try:
        from redis.sentinel import SentinelManagedConnection
    except ImportError:  # no redis-py in this virtualenv: nothing to guard
        return False

    def wrap(original: Any) -> Any:
        def send_packed_command(self: Any, command: Any, check_health: bool = True) -> Any:
            if not self._sock:
                self.connect()
            return original(self, command, check_health)

        return send_packed_command

    return guard(SentinelManagedConnection, "send_packed_command", wrap)


def refused_writes_fail_as_lost_connections() -> bool:
    """Make a write the broker refuses for want of replicas (NOREPLICAS) a connection error.

    A master with ``min-replicas-to-write`` (the fleet's Sentinel default: 1) refuses every write
    while fewer replicas than that are in sync (down, or lagging more than ``min-replicas-max-lag``),
    BRPOP included: a pop is a write. redis-py 8.1 raises that reply as a plain ``ResponseError``,
    which kombu 5.7 counts as a channel error, and Celery 5.7 retries channel errors only with
    ``broker_channel_error_retry``: the worker stopped with "Unrecoverable error:
    ResponseError('NOREPLICAS ...')" (seen in molecule/sentinel under load), its service manager
    started it again, the restarted worker met the same refusal at its first BRPOP (or binding
    write), and after ``start_limit_burst`` starts in ``start_limit_interval_sec`` the unit stayed
    ``failed``, still down after the replicas were back. ``broker_channel_error_retry`` is not the
    cure: it would also retry a refusal that waiting cannot end (NOPERM after an ACL change).

    So the NOREPLICAS reply is raised as an error that is both redis-py's ``ResponseError`` (what a
    reply error is, where a pipeline collects it) and its ``ConnectionError``, as redis-py itself
    raises WRONGPASS (``AuthenticationError``): kombu and Celery treat it as a lost connection, so
    the consumer logs "Connection to broker lost" and reconnects until the master accepts writes
    again; the result backend retries a result it could not store (result_backend_always_retry);
    ``deliveries_survive_a_failover`` retries the delivery's record. Every other reply error is
    raised as before. Returns whether the mapping is in place.
    """
    try:
        from redis._parsers.base import BaseParser
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import ResponseError as RedisResponseError
    except ImportError:  # no redis-py in this virtualenv: nothing to map
        return False
    if NO_REPLICAS not in BaseParser.EXCEPTION_CLASSES:

        class NoReplicasError(RedisResponseError, RedisConnectionError):
            """NOREPLICAS: the master refuses writes until enough replicas are in sync."""

        BaseParser.EXCEPTION_CLASSES[NO_REPLICAS] = NoReplicasError
    return True


def refused_for_want_of_replicas(exc: BaseException) -> bool:
    """Whether ``exc`` is a NOREPLICAS reply (``refused_writes_fail_as_lost_connections``)."""
    return getattr(exc, "status_code", None) == NO_REPLICAS or NO_REPLICAS in str(exc)


# Waits of a worker's consumer between reconnects while the broker refuses writes: doubling, then
# the last one each time (``reconnects_back_off_refused_writes``).
REFUSED_WRITES_WAITS = (1, 2, 4, 8)


def reconnects_back_off_refused_writes(waits: tuple[int, ...] = REFUSED_WRITES_WAITS) -> bool:
    """Make a worker's consumer wait before it reconnects to a broker that refuses writes.

    With ``refused_writes_fail_as_lost_connections`` a NOREPLICAS reply is a lost connection, but
    the connection itself comes back at once (reads and PING are answered): the consumer's restart
    meets the refusal again in its first write (the BRPOP, or a write of its start), before or after
    Celery 5.7 counts it as connected. Celery backs off only from a failed connect, so the consumer
    restarted without a pause, 5 times a second, each time with an error and, every second, a
    "Frequent restarts detected" traceback in the log (measured: ~150 "Connection to broker lost"
    and ~300 "Cannot connect" lines a minute per worker).

    So after Celery's own handler of either error (``on_connection_error_before_connected``,
    ``on_connection_error_after_connected``: they log it and drop the connection), a refusal makes
    the consumer wait ``waits`` (1, 2, 4, 8, 8... s, logged), in one-second steps that end at once
    on a warm or cold stop (``celery.worker.state.maybe_shutdown``); the count starts again once a
    refusal is more than twice the longest wait after the one before. Other errors are handled as
    before. Returns whether the guard is in place.
    """
    try:
        from celery.worker import state
        from celery.worker.consumer.consumer import Consumer
    except ImportError:  # pragma: no cover - every service of the fleet runs Celery
        return False
    refusals = {"count": 0, "at": float("-inf")}

    def back_off() -> None:
        now = time.monotonic()
        if now - refusals["at"] > 2 * waits[-1]:
            refusals["count"] = 0
        wait = waits[min(refusals["count"], len(waits) - 1)]
        refusals["count"] += 1
        log.warning(
            "the broker refuses writes (NOREPLICAS: too few replicas in sync); reconnecting in %d s", wait
        )
        for _ in range(wait):
            state.maybe_shutdown()
            time.sleep(1)
        refusals["at"] = time.monotonic()

    def wrap(original: Any) -> Any:
        def handler(self: Any, exc: BaseException) -> Any:
            result = original(self, exc)
            if refused_for_want_of_replicas(exc):
                back_off()
            return result

        return handler

    guard(Consumer, "on_connection_error_before_connected", wrap)
    return guard(Consumer, "on_connection_error_after_connected", wrap)


def failed_event_loop_registrations_close() -> bool:
    """Close a Redis connection whose registration with the worker's event loop failed.

    A prefork worker's consumer connects, then registers the connection with its event loop
    (Celery 5.7 ``Consumer.connect``), and kombu 5.7's registration restores unacknowledged
    messages at once (``MultiChannelPoller.on_poll_init``: a SET NX lock, a write). When that write
    is refused (NOREPLICAS), the error leaves ``connect`` before the consumer holds the connection,
    so nothing closes it: one more open socket per reconnect for as long as writes are refused
    (measured: +1 descriptor per attempt; without the waits of ``reconnects_back_off_refused_writes``
    a worker reached its 1024 open files within 2.5 min and could not reconnect afterwards).

    So the transport's channels (and with them their connection pools) are closed before the error
    goes on; a registration that succeeds is unchanged. Returns whether the guard is in place.
    """
    try:
        from kombu.transport import redis as transport
    except ImportError:  # no Redis transport in this virtualenv: nothing to guard
        return False

    def wrap(original: Any) -> Any:
        def register_with_event_loop(self: Any, connection: Any, loop: Any) -> Any:
            try:
                return original(self, connection, loop)
            except Exception:
                try:
                    self.close_connection(connection)
                except Exception as exc:  # the registration's error is the one to raise
                    log.debug("closing a connection whose registration failed: %r", exc)
                raise

        return register_with_event_loop

    return guard(transport.Transport, "register_with_event_loop", wrap)


def deliveries_survive_a_failover(delays: tuple[float, ...] = DELIVERY_RETRY_DELAYS) -> bool:
    """Retry recording a delivered message as unacknowledged when the broker connection breaks.

    kombu 5.7's Redis transport delivers a message in two steps: ``BRPOP`` takes it off its queue,
    then ``QoS.append`` records it in the ``unacked`` hash (ZADD and HSET in one transaction on
    another connection), the record that brings it back if the worker dies. When that second step
    fails with a connection error, the exception leaves the consumer's callback, the consumer
    reconnects, and the message, already off the queue and recorded nowhere, is lost. A planned
    switchover opens exactly that window: ``CLIENT PAUSE WRITE`` holds the transaction, and the
    ``CLIENT KILL`` that sends the clients to the new master drops it (molecule/sentinel: 1 of 1130
    tasks, taken by the gevent worker just before the pause, never received, no result); so can a
    master that dies between the two steps, or a single Redis restarted between them.

    So can a master that refuses writes for a while because its replicas lag behind
    (``min-replicas-to-write``: the transaction's commands answered NOREPLICAS; seen in
    molecule/sentinel's switchover on a machine loaded to 6: 1 task lost), until they catch up or
    the Sentinels elect another.

    The transaction is retried after each of ``delays`` seconds on a new connection (which, with
    Sentinel, asks the Sentinels for the master: ``reconnects_ask_the_sentinels``), so the record
    lands on the master that has the queue now and the worker runs the task. Repeating it is
    harmless: the same score and payload under the same delivery tag. When every attempt fails, the
    last error is raised as before (the consumer reconnects). Each retry is logged as a warning.
    No retry where waiting cannot help (``waiting_cannot_help``): the channel is closing (kombu's
    ``Channel.close`` reads a pending BRPOP reply and delivers it), its connection was collected, or
    the worker is shutting down; the error is raised at once, as before, and the stop is not held
    up (a worker's warm stop once took 32.8 s instead of 2.2 in molecule/monitoring's rotation,
    about two deliveries' worth of retries). Returns whether the guard is in place.
    """
    try:
        from kombu.transport import redis as transport
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import ResponseError as RedisResponseError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # no Redis transport in this virtualenv: nothing to guard
        return False

    def wrap(original: Any) -> Any:
        def append(self: Any, message: Any, delivery_tag: Any) -> Any:
            for attempt, delay in enumerate(delays, start=1):
                try:
                    return original(self, message, delivery_tag)
                except (RedisConnectionError, RedisTimeoutError, RedisResponseError) as exc:
                    # Of the errors a command answers, only a write refused for lagging replicas
                    # passes with time.
                    refused = isinstance(exc, RedisResponseError) and not refused_for_want_of_replicas(exc)
                    if refused or waiting_cannot_help(self):
                        raise
                    log.warning(
                        "recording delivery %s as unacknowledged failed (attempt %d of %d: %r); "
                        "retrying in %.1f s on a new connection",
                        delivery_tag,
                        attempt,
                        len(delays) + 1,
                        exc,
                        delay,
                    )
                    time.sleep(delay)
            return original(self, message, delivery_tag)

        return append

    return guard(transport.QoS, "append", wrap)


def waiting_cannot_help(qos: Any) -> bool:
    """Whether a delivery's failed record should not be retried: its channel is closing or closed,
    its connection was collected (``client`` None), or the worker is shutting down."""
    channel = getattr(qos, "channel", None)
    if getattr(channel, "_closing", False) or getattr(channel, "closed", False) or collected(channel):
        return True
    try:
        from celery.worker import state
    except ImportError:  # pragma: no cover - every service of the fleet runs Celery
        return False
    return shutting_down(state)


def pool_processes_exit_promptly(seconds: float = POOL_EXIT_WAIT) -> bool:
    """Bound how long an exiting prefork pool process waits for the main process to count its results.

    billiard 4.3 (Celery 5.7's prefork pool) makes each pool process, as it exits, wait until the
    main process has counted every result it sent, for at most 300 x 0.1 s
    (``Worker._ensure_messages_consumed``). In a warm shutdown the main process has stopped reading
    results and waits in ``Pool.join`` for the processes to exit, so a process whose count is short
    waits the whole 30 s: measured on mon-worker (molecule/monitoring's hosts) restarting the two
    workers under a 20 task/s stream on a loaded machine, 4-5 of 45 warm stops took 31.7 s instead
    of 1.7, the main process in ``Pool.join`` -> ``os.waitpid`` and its pool process in
    ``time.sleep``, with every task's result already handled (nothing left in the pool's cache:
    the count itself fell short). The clean-clone CI of 425a2f6 failed on it in two scenarios.
    Waiting longer cannot help then: the main process reads nothing more before the process exits,
    and a result still in the pipe stays readable after it. Returns whether the bound is in place.
    """
    try:
        from billiard import pool
    except ImportError:  # no prefork pool in this virtualenv: nothing to bound
        return False
    limit = getattr(pool, "GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT", None)
    interval = getattr(pool, "GUARANTEE_MESSAGE_CONSUMPTION_RETRY_INTERVAL", None)
    if not isinstance(limit, int) or not isinstance(interval, (int, float)) or interval <= 0:
        return False  # another billiard: leave it as it is
    pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT = min(limit, max(1, round(seconds / interval)))
    return True


def green_pool_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Celery settings of a green-pool worker (gevent, eventlet: the worker's unit sets
    ``CELERY_FLEET_MAX_CONNECTIONS`` for these pools only): one result backend for the process.

    Celery keeps its result backend per thread (``threading.local``) unless the backend says it is
    thread safe (``result_backend_thread_safe``). A green pool runs each task in a new greenlet, and
    gevent's and eventlet's monkey patching makes ``threading.local`` per greenlet: every task built
    a new backend, with a new connection pool, so storing its result opened a new Redis connection
    (with Sentinel, asking a Sentinel for the master first, over TLS a handshake and the system's CA
    bundle loaded for each: ~140 ms of CPU per task in molecule/sentinel's gevent worker, against
    ~8 ms of the prefork worker's main process; celery/celery#7960). redis-py's connection pool is
    safe to share (the greenlets take connections from it as threads would), and a worker's tasks
    do not use the backend's result consumer (joining a result inside a task is refused).
    """
    return {"result_backend_thread_safe": True} if environ.get(MAX_CONNECTIONS_ENV, "").strip() else {}


def configure(app: Any, config: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """Merge the fleet's options into ``app.conf``, set the fleet's Celery settings, return the app.

    ``settings`` (with Sentinel the result backend's socket timeouts, health checks and retries;
    TLS) are Celery settings the fleet sets over the app's, and so are a green-pool worker's
    (``green_pool_settings``). The app's event dispatcher does not retry the heartbeat
    (``bounded_event_retries``).
    """
    updates = {
        name: merged(app.conf.get(name), options) for name, options in fleet_options(config, environ).items()
    }
    settings = config.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise FleetConfigError("the fleet's 'settings' is not a JSON object of Celery settings")
    app.conf.update({**settings, **green_pool_settings(environ), **updates})
    return bounded_event_retries(app)


def load(environ: Mapping[str, str]) -> Any:
    """Import the app named in the fleet's settings, as ``celery -A`` does, and configure it
    (with kombu's Redis channels and redis-py's Sentinel connections guarded:
    ``refused_writes_fail_as_lost_connections``, ``reconnects_back_off_refused_writes``,
    ``failed_event_loop_registrations_close``, ``closed_connections_fail_as_such``,
    ``reconnects_ask_the_sentinels``,
    ``deliveries_survive_a_failover``; and the prefork pool's exit wait bounded:
    ``pool_processes_exit_promptly``)."""
    from celery.app.utils import find_app

    config = read_config(environ)
    refused_writes_fail_as_lost_connections()
    reconnects_back_off_refused_writes()
    failed_event_loop_registrations_close()
    closed_connections_fail_as_such()
    reconnects_ask_the_sentinels()
    deliveries_survive_a_failover()
    pool_processes_exit_promptly()
    return configure(find_app(config["app"]), config, environ)


app = load(os.environ)


def main(argv: list[str]) -> None:
    """``python -m celery_fleet_app <module> [args...]``: run a module with the app configured."""
    if not argv or argv[0].startswith("-"):
        sys.exit("usage: python -m celery_fleet_app <module> [args...]")
    sys.argv = argv
    sys.path.insert(0, os.getcwd())
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
