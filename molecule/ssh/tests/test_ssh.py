"""The deploy went the way users run it: SSH as the non-root login user, root through sudo, onto a
host as minimal as a cloud image."""

from __future__ import annotations

import re
import subprocess

from conftest import check_output

IMAGE = "celery-fleet/debian:bookworm-cloud"


def test_ansible_logged_in_as_deploy_with_a_key_and_became_root_with_sudo() -> None:
    journal = check_output("journalctl -o cat --no-pager")
    logins = len(re.findall(r"^Accepted publickey for deploy from ", journal, re.M))
    becomes = len(
        re.findall(r"^ *deploy : .*USER=root ; COMMAND=/bin/sh -c '?echo BECOME-SUCCESS-", journal, re.M)
    )
    print(f"\nsshd logins of deploy: {logins}; sudo to root for Ansible tasks: {becomes}")
    assert logins > 0
    assert becomes > 100
    assert "Accepted publickey for root" not in journal


def test_the_login_user_is_not_root() -> None:
    assert check_output("id -un", sudo=False).strip() == "deploy"


def test_the_image_is_as_minimal_as_a_cloud_image() -> None:
    # The image, not the converged host: the apt module installs python3-apt when it is missing.
    script = (
        "echo python3-apt=$(dpkg-query -W -f '${Status}' python3-apt 2>/dev/null);"
        " echo lists=$(ls -A /var/lib/apt/lists | wc -l); echo deploy=$(id -u deploy)"
    )
    out = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    facts = dict(line.split("=", 1) for line in out.splitlines())
    print(f"\n{IMAGE}: {facts}")
    assert facts == {"python3-apt": "", "lists": "0", "deploy": "1000"}
