"""lib/celery_fleet/diagnose.py: what to change, from the log of a service that did not come up."""

from __future__ import annotations

import pytest
from celery_fleet.diagnose import diagnose, log_command, report, up_for
from celery_fleet.errors import FleetError

CONTEXT = {"prefix": "", "user": "worker", "module": "proj.celery"}

# Lines as Celery 5.7 / redis-py 8.1 print them (measured: issue 14's crash loop, a wrong password,
# a misspelt module, a stopped broker).
NOPERM_KEY = (
    "redis.exceptions.NoPermissionError: this user has no permissions to access one of the keys used as "
    "arguments"
)
WRONGPASS = (
    "[2026-12-01 05:40:00,001: ERROR/MainProcess] consumer: Cannot connect to "
    "redis://worker:**@10.0.0.5:6379/0: WRONGPASS invalid username-password pair or user is disabled.."
)
IMPORT = (
    "Error: Invalid value for '-A' / '--app': \nUnable to load celery application.\nNo module named 'proj'"
)
REFUSED = (
    "consumer: Cannot connect to redis://worker:**@10.0.0.5:6379/0: Error 111 connecting to 10.0.0.5:6379."
)

# The error measured in the Sentinel lab (issue 16) without the Sentinels' password in sentinel_kwargs,
# behind the prefix the consumer logs connection errors with.
NO_MASTER = (
    "consumer: Cannot connect to sentinel://worker:**@10.0.0.11:26379/0: No master found for "
    "'celery-fleet' : <redis.client.Redis(<redis.connection.ConnectionPool(<redis.connection.Connection("
    "db=0,username=<REDACTED>,password=<REDACTED>,socket_timeout=None"
)

# redis-py 8.1's message when no Sentinel could be asked over TLS (a lab Sentinel on 127.0.0.1 whose
# certificate another CA signed; shortened in the middle): the TLS error itself does not show.
NO_MASTER_TLS = (
    "consumer: Cannot connect to sentinel://worker:**@10.0.0.11:26379/0: No master found for "
    "'celery-fleet' : <redis.client.Redis(<redis.connection.ConnectionPool(<redis.connection.SSLConnection("
    "db=0,username=<REDACTED>,password=<REDACTED>,socket_timeout=5,...,host=127.0.0.1,port=43283,"
    "ssl_cert_reqs=required,ssl_ca_certs=otherca.crt,ssl_check_hostname=True,...)>)>)> - "
    "network:ConnectionError"
)

# redis-py's message for a broker certificate that the client's CA did not sign (issue 18).
TLS_UNVERIFIED = (
    "consumer: Cannot connect to rediss://worker:**@10.0.0.5:6380/0: Error 1 connecting to 10.0.0.5:6380. "
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in chain."
)


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (NOPERM_KEY, "may not touch the keys the app uses"),
        ("NOPERM this user has no permissions to run the 'flushall' command", "lacks a command"),
        ("NOPERM this user has no permissions to access one of the channels used as arguments", "channel"),
        (WRONGPASS, "refused the credentials of 'worker'"),
        (IMPORT, "'proj.celery' (celery_app_module) cannot be imported"),
        (REFUSED, "cannot reach the broker"),
        ("celery_fleet_app.FleetConfigError: CELERY_FLEET_CONFIG is not set", "cannot read its settings"),
        (NO_MASTER, "no Sentinel of celery_broker_sentinels named a master"),
        (TLS_UNVERIFIED, "the TLS connection to the broker failed"),
    ],
)
def test_each_known_cause_gets_its_hint(log, expected):
    # Act
    hints = diagnose("[noise]\n" + log + "\n[more noise]", CONTEXT)

    # Assert
    assert len(hints) == 1, hints
    assert expected in hints[0]


def test_no_master_over_tls_adds_the_tls_causes_to_the_sentinel_ones():
    # Act
    hints = diagnose(NO_MASTER_TLS, CONTEXT)
    plain = diagnose(NO_MASTER, CONTEXT)

    # Assert: the password and master name may still be the cause; TLS is the other one.
    assert len(hints) == 2, hints
    assert hints[0].startswith("no Sentinel of celery_broker_sentinels named a master")
    assert "the Sentinels were asked over TLS" in hints[1]
    assert "celery_broker_tls_ca" in hints[1]
    assert len(plain) == 1


def test_an_unknown_log_gets_no_hint_but_its_last_lines():
    # Act
    messages = report({"app-worker-io": "\n".join(f"line {i}" for i in range(40))}, CONTEXT, lines=3)

    # Assert
    assert messages == ["app-worker-io: no known cause in its log\n  line 37\n  line 38\n  line 39"]


def test_a_report_names_the_service_the_hint_and_the_lines():
    # Act
    messages = report({"app-worker-io": NOPERM_KEY, "app-flower": ""}, CONTEXT)

    # Assert
    assert messages[0].startswith("app-worker-io: the broker's ACL user 'worker' may not touch the keys")
    assert messages[0].endswith("\n  " + NOPERM_KEY)
    assert messages[1] == "app-flower: no known cause in its log (its log is empty)"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ActiveState=active\nActiveEnterTimestampMonotonic=100000000\n112.50 200.1\n", True),
        ("ActiveState=active\nActiveEnterTimestampMonotonic=100000000\n104.00 200.1\n", False),
        ("ActiveState=activating\nActiveEnterTimestampMonotonic=100000000\n500.00 200.1\n", False),
        ("ActiveState=failed\nActiveEnterTimestampMonotonic=0\n500.00 200.1\n", False),
        ("app-beat                         RUNNING   pid 7, uptime 0:00:12\n", True),
        ("app-beat                         RUNNING   pid 7, uptime 0:00:03\n", False),
        ("app-beat                         RUNNING   pid 7, uptime 2 days, 1:00:00\n", True),
        (
            "app-beat                         BACKOFF   Exited too quickly (process log may have details)\n",
            False,
        ),
        ("", False),
    ],
)
def test_up_for_reads_systemd_and_supervisord_status(status, expected):
    assert up_for(status, 10) is expected


def test_log_command_reads_the_journal_or_supervisords_tail():
    assert log_command("app-beat", "systemd") == [
        "journalctl",
        "--unit",
        "app-beat.service",
        "--lines",
        "60",
        "--no-pager",
        "--output",
        "cat",
    ]
    assert log_command("app-beat", "supervisord") == ["supervisorctl", "tail", "-6000", "app-beat"]
    with pytest.raises(FleetError, match="celery_process_manager"):
        log_command("app-beat", "runit")
