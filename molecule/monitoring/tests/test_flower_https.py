"""Prometheus scrapes Flower over HTTPS (issue 18): Flower is served by nginx on 443 only (its own
port on loopback), and the scrape of job flower is https, verified against the fleet's CA for the
name in Flower's certificate, with basic auth through the password file, as before.

What proves it: the target's scrapeUrl and `up`, the loaded configuration (scheme, tls_config), the
CA file Prometheus reads (the scenario's CA, no key material beside it), and that the only way in
from another container is HTTPS.
"""

from __future__ import annotations

import os
import pathlib

import yaml
from conftest import OPS, WORKER, api, node, scenario_vars, wait_until

CA_FILE = "/etc/prometheus/flower-ca.crt"


def _flower_job() -> dict:
    loaded = yaml.safe_load(api("/api/v1/status/config")["yaml"])
    return next(job for job in loaded["scrape_configs"] if job["job_name"] == "flower")


def test_flower_target_is_up_over_https() -> None:
    def flower_up() -> list[dict] | None:
        targets = [t for t in api("/api/v1/targets")["activeTargets"] if t["labels"]["job"] == "flower"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets, seconds = wait_until(flower_up, timeout=90, what="the flower target up")
    up = api("/api/v1/query?query=up%7Bjob%3D%22flower%22%7D")["result"]
    print(
        f"flower up after {seconds:.1f} s: {[t['scrapeUrl'] for t in targets]}, "
        f"up = {[r['value'][1] for r in up]}"
    )
    assert [t["scrapeUrl"] for t in targets] == ["https://127.0.0.1:443/metrics"]
    assert [r["value"][1] for r in up] == ["1"]
    # Flower's own metrics came through: a worker it sees over the broker.
    assert api("/api/v1/query?query=flower_worker_online")["result"], "no flower_worker_online series"


def test_scrape_config_is_https_verified_against_the_ca_with_basic_auth() -> None:
    job = _flower_job()
    print(
        f"job flower: scheme {job['scheme']}, tls_config {job['tls_config']}, "
        f"basic_auth {sorted(job['basic_auth'])}"
    )
    assert job["scheme"] == "https"
    assert job["tls_config"]["ca_file"] == CA_FILE
    assert job["tls_config"]["server_name"] == OPS
    assert job["tls_config"]["insecure_skip_verify"] is False
    assert job["basic_auth"]["username"] == scenario_vars()["flower_users"][0]["name"]
    assert job["basic_auth"]["password_file"] == "/etc/prometheus/flower.password"
    assert "password" not in job["basic_auth"]


def test_prometheus_reads_the_fleets_ca_and_no_key() -> None:
    ca_dir = pathlib.Path(os.path.expandvars(scenario_vars()["celery_fleet_throwaway_ca_dir"]))
    assert node(OPS).stat(CA_FILE) == ("root", "root", 0o644)
    on_host = node(OPS).check(f"cat {CA_FILE}")
    assert on_host.strip() == (ca_dir / "ca.crt").read_text().strip()
    assert "PRIVATE KEY" not in node(OPS).check("cat /etc/prometheus/*.yml /etc/prometheus/*.crt")


def test_a_wrong_name_or_no_ca_fails_verification_where_the_scrape_succeeds() -> None:
    # The same request as Prometheus's, from the ops host: the CA and the name make it pass.
    base = "curl -s -o /dev/null -w '%{{http_code}}' --resolve {name}:443:127.0.0.1 {ca} https://{name}:443/healthcheck"
    ok = node(OPS).run(base.format(name=OPS, ca=f"--cacert {CA_FILE}"))
    wrong_name = node(OPS).run(base.format(name="not-in-the-certificate", ca=f"--cacert {CA_FILE}"))
    no_ca = node(OPS).run(base.format(name=OPS, ca=""))
    print(
        f"curl exits: CA and name {ok.returncode} ({ok.stdout}), wrong name {wrong_name.returncode}, "
        f"no CA {no_ca.returncode}"
    )
    assert (ok.returncode, ok.stdout) == (0, "200")
    assert wrong_name.returncode == 60
    assert no_ca.returncode == 60


def test_only_https_reaches_flower_from_another_host() -> None:
    listening = node(OPS).check("ss -Hltn 'sport = :5555 or sport = :443'").split("\n")
    assert sorted(line.split()[3] for line in listening if line) == ["0.0.0.0:443", "127.0.0.1:5555"]
    plain = node(WORKER).run(f"curl -s -o /dev/null --connect-timeout 5 http://{OPS}:5555/metrics")
    assert plain.returncode == 7  # connection refused
