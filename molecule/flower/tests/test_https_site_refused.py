"""A new HTTPS configuration nginx refuses leaves the host serving the previous one (issue 18).

The bad input passes every rule of validation but not nginx: a key in PEM form that is not the key of
flower_tls_cert (the scenario's client key: a renewal delivered with the wrong key). roles/flower's
tasks/https.yml (run alone through https-site.yml, as site.yml runs it) must fail naming nginx's
complaint and the field, put back the certificate, key and site nginx served before, leave no backup
behind and no key material in its output; Flower keeps answering over HTTPS, verified with the CA;
a re-run with the scenario's own variables changes nothing.
"""

from __future__ import annotations

import os
import pathlib
import re

from celery_fleet.recap import play_recap  # lib/ is on sys.path through fleetnode
from conftest import LAYOUT, Target, ansible_playbook, inventory_hosts

SCENARIO = pathlib.Path(__file__).resolve().parents[1]
PLAYBOOK = str(SCENARIO / "https-site.yml")
HOST = inventory_hosts()[0]
# A lookup, not the key: argv shows only this expression.
WRONG_KEY = {
    "flower_tls_key": "{{ lookup('ansible.builtin.file', celery_fleet_throwaway_ca_dir ~ '/client.key') }}"
}
FILES = [LAYOUT["flower_nginx_site"], LAYOUT["flower_tls_cert_file"], LAYOUT["flower_tls_key_file"]]


def _state(target: Target) -> str:
    """Checksums, owners and modes of the site, certificate and key, and the files beside them."""
    return target.sh(
        f"md5sum {' '.join(FILES)}; stat -c '%n %U %G %a' {' '.join(FILES)}; "
        f"ls -A /etc/nginx/conf.d {LAYOUT['flower_tls_dir']}"
    ).stdout


def test_refused_key_keeps_the_previous_site_and_a_rerun_changes_nothing() -> None:
    target = Target(HOST)
    before = _state(target)
    master = target.sh("cat /run/nginx.pid").stdout.strip()

    refused = ansible_playbook([PLAYBOOK, "-l", HOST], extra_vars=WRONG_KEY)

    output = refused.stdout + refused.stderr
    reported = re.findall(r"nginx refused[^\n]*", output)[:1]
    print(f"{HOST}: refused run rc {refused.returncode}; {reported}")
    assert refused.returncode != 0, output[-3000:]
    assert "nginx refused Flower's new" in output, output[-3000:]
    assert "key values mismatch" in output and "flower_tls_key" in output, output[-3000:]
    assert "The previous files are back in place and nginx accepts them" in output, output[-3000:]
    key_lines = target.sh(f"grep -v -- '-----' {LAYOUT['flower_tls_key_file']}").stdout.split()
    client_key = (pathlib.Path(_ca_dir()) / "client.key").read_text()
    wrong_lines = [line for line in client_key.splitlines() if line and "-----" not in line]
    assert not [line for line in key_lines + wrong_lines if line in output], "key material in the output"

    # The host as it was: same files (no backup left), nginx accepts them, the same master runs.
    assert _state(target) == before
    assert target.sh("nginx -t -q", check=False).returncode == 0
    assert target.sh("cat /run/nginx.pid").stdout.strip() == master
    status, _, _ = target.http(
        "/api/workers", auth=target.user, base=target.https_url, options=target.https_options()
    )
    assert status == 200

    rerun = ansible_playbook([PLAYBOOK, "-l", HOST])

    recap = play_recap(rerun.stdout).get(HOST, {})
    print(f"{HOST}: re-run with the scenario's variables rc {rerun.returncode}, recap {recap}")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert (recap.get("changed"), recap.get("failed")) == (0, 0), rerun.stdout[-3000:]
    assert _state(target) == before


def _ca_dir() -> str:
    return os.path.expandvars(Target(HOST).vars["celery_fleet_throwaway_ca_dir"])
