"""playbooks/throwaway-ca.yml on the controller (its first play; the second copies files to the
broker hosts and is left out with --limit): what the certificates name and what they may be used
for, read back with `cryptography`. TLS through Sentinel needs a broker certificate that names
every data node and Sentinel host by each address it is reached at (clients check the name of the
master the Sentinels report), and that is a client certificate too (replicas and Sentinels present
it to each other)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import write_local_inventory
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

PLAYBOOK = "playbooks/throwaway-ca.yml"


def names(path: Path) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) of a certificate's subjectAltName."""
    san = x509.load_pem_x509_certificate(path.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    return set(san.value.get_values_for_type(x509.DNSName)), {
        str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)
    }


def usages(path: Path) -> set[x509.ObjectIdentifier]:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@pytest.fixture(scope="module")
def made(tmp_path_factory, ansible_playbook):
    """The CA made for two data nodes (r1, r2: one with an announce address of its own) and a
    Sentinel-only host (s1), twice: the second run must change nothing."""
    tmp_path = tmp_path_factory.mktemp("throwaway-ca")
    inventory = write_local_inventory(
        tmp_path,
        {
            "redis": {
                "r1": {"celery_fleet_private_address": "10.0.0.1", "redis_announce_address": "10.9.0.1"},
                "r2": {"celery_fleet_private_address": "r2.internal"},
            },
            "redis_sentinel": {"r1": {}, "r2": {}, "s1": {"celery_fleet_private_address": "10.0.0.3"}},
            # The controller, named so that --limit can keep the play on it.
            "controller": {"localhost": {}},
        },
        celery_fleet_throwaway_ca_dir=str(tmp_path / "ca"),
    )
    runs = [ansible_playbook(PLAYBOOK, "--limit", "localhost", inventory=inventory) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return tmp_path / "ca", runs


def test_the_broker_certificate_names_every_data_node_and_sentinel_host_by_every_address(made):
    ca, _ = made

    dns, ips = names(ca / "server.crt")

    assert {"r1", "r2", "s1", "r2.internal", "localhost"} <= dns
    # r1's announce address (what Sentinel names it by) as well as its private one.
    assert {"10.0.0.1", "10.9.0.1", "10.0.0.3", "127.0.0.1"} <= ips


def test_the_broker_certificate_is_also_a_client_certificate_and_the_others_are_not(made):
    ca, _ = made

    assert usages(ca / "server.crt") == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert usages(ca / "client.crt") == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert usages(ca / "flower.crt") == {ExtendedKeyUsageOID.SERVER_AUTH}


def test_a_second_run_changes_nothing_and_keys_stay_private(made):
    ca, runs = made

    assert re.search(r"^localhost\s+: ok=\d+\s+changed=0\b", runs[1].stdout, re.M), runs[1].stdout[-2000:]
    for key in ca.glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    assert ca.stat().st_mode & 0o777 == 0o700
