"""The app written here (app/byoapp, no fleet-specific code) runs under the fleet's defaults."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from conftest import APP, HOME, HOST, NODE, TESTS_DIR, VARS, check_output, https, redis_url, ssh
from fleetnode import wait_until, worker_node

# Node name -> declared pool.
DECLARED = {worker_node(w, HOST): w["pool"] for w in VARS["celery_workers"]}
# The broker's TLS settings of a producer (the files roles/celery_app installed; the key is readable
# by the app's group), as the README's producer snippet sets them.
TLS_SETTINGS = {
    "ssl_cert_reqs": "required",
    "ssl_ca_certs": NODE.layout["tls_ca_file"],
    "ssl_certfile": NODE.layout["tls_cert_file"],
    "ssl_keyfile": NODE.layout["tls_key_file"],
}


def inspect(action: str, timeout: float = 60) -> dict:
    """`celery inspect`, waited on until every declared worker answers."""
    return NODE.inspect(action, set(DECLARED), timeout=timeout)


def test_every_declared_worker_answers_with_its_pool() -> None:
    stats = inspect("stats")
    # "celery.concurrency.prefork:TaskPool" -> "prefork"
    pools = {
        node: reply["pool"]["implementation"].split(":")[0].rsplit(".", 1)[-1]
        for node, reply in stats.items()
    }
    print(f"\nworkers: {pools}")
    assert pools == DECLARED


def test_the_apps_own_transport_options_reach_every_worker() -> None:
    conf = inspect("conf")
    for node, settings in conf.items():
        options = settings.get("broker_transport_options") or {}
        print(f"\n{node}: broker_transport_options {options}")
        # The app's own keys, kept beside what the fleet adds.
        assert options.get("socket_keepalive") is True, (node, options)
        assert options.get("queue_order_strategy") == "priority", (node, options)


def test_a_producer_with_only_the_broker_url_runs_get_group_chord_and_countdown() -> None:
    script = (TESTS_DIR / "producer.py").read_text()
    check_output("cat > /tmp/byoapp-producer.py && chmod 0644 /tmp/byoapp-producer.py", stdin=script)
    # Not the app's run-as-app entry on purpose: an empty environment (env -i), the rediss:// URLs
    # and the TLS settings on stdin, as a producer outside the fleet has them.
    result = ssh(
        f"cd / && runuser -u {APP} -- env -i PATH=/usr/bin:/bin PYTHONPATH={HOME}/app "
        f"{HOME}/venv/bin/python /tmp/byoapp-producer.py",
        stdin=f"{redis_url('producer', 0)}\n{redis_url('producer', 1)}\n{json.dumps(TLS_SETTINGS)}\n",
        timeout=300,
    )
    match = re.search(r"^\{.*\}$", result.stdout, re.M)
    assert match, f"producer failed (rc {result.returncode}): {result.stdout[-1000:]} {result.stderr[-3000:]}"
    report = json.loads(match.group(0))
    print(f"\nproducer: {report}")
    assert report["get"] == 5
    assert report["group"] == [0, 2, 4, 6, 8] + [0.2] * 5
    assert report["chord"] == sum(range(1, 11))
    assert report["countdown"] == 42
    # Not run before its countdown.
    assert report["countdown_s"] >= 2


def test_beat_runs_the_periodic_task_on_a_worker() -> None:
    def runs_seen() -> int:
        out = NODE.logs(f"{APP}-worker-default")
        return len(re.findall(r"Task byoapp\.tasks\.tick\[[^]]+\] succeeded", out))

    # The count is asserted below, with the number seen.
    with contextlib.suppress(AssertionError):
        wait_until(lambda: runs_seen() >= 2, timeout=30, interval=2, what="2 runs of byoapp.tasks.tick")
    runs = runs_seen()
    print(f"\nbeat's byoapp.tasks.tick: {runs} runs seen")
    assert runs >= 2


@pytest.mark.parametrize("credentials", ["none", "wrong", "inventory"])
def test_flower_over_https_answers_only_its_user(credentials: str) -> None:
    # From the controller through nginx on 443, the certificate verified with the run's CA; curl
    # reads the credentials from its configuration on stdin, not from argv (conftest.https).
    user = VARS["flower_users"][0]
    auth = {
        "none": None,
        "wrong": (user["name"], "not-the-password"),
        "inventory": (user["name"], user["password"]),
    }[credentials]
    code, _, body = https("/api/workers", auth=auth)
    print(f"\nFlower https://{HOST}/api/workers with {credentials} credentials: HTTP {code}")
    assert code == (200 if credentials == "inventory" else 401), body[:300]
