"""Bad input fails before any change, with a message naming the variable and what is allowed."""

from __future__ import annotations

import json
import pathlib
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import APP, FLOWER_SERVICE, Target, ansible_playbook, inventory_hosts

SCENARIO = pathlib.Path(__file__).resolve().parents[1]
PLAYBOOK = str(SCENARIO / "check-input.yml")
HOST = inventory_hosts()[0]

OAUTH = {
    "flower_users": [],
    "flower_auth_provider": "flower.views.auth.GithubLoginHandler",
    "flower_oauth2_key": "test-only-client-id",
    "flower_oauth2_secret": "test-only-client-secret",
    "flower_oauth2_redirect_uri": "https://flower.example.com/login",
}

BAD = {
    "no authentication": ({"flower_users": []}, ["flower_users", "flower_allow_unauthenticated"]),
    "port out of range": ({"flower_port": 70000}, ["flower_port", "1-65535"]),
    "port not a number": ({"flower_port": "http"}, ["flower_port"]),
    "regex-style e-mail rule": (
        {**OAUTH, "flower_auth": "a@example\\.com$"},
        ["flower_auth", "a@example.com.evil.org"],
    ),
    "wildcard after the domain": ({**OAUTH, "flower_auth": ".*@example.com.*"}, ["flower_auth"]),
    "wildcard domain": ({**OAUTH, "flower_auth": "a@.*"}, ["flower_auth"]),
    "OAuth without its secret": (
        {**OAUTH, "flower_oauth2_secret": "", "flower_auth": ".*@example.com"},
        ["flower_oauth2_secret"],
    ),
    "comma in a password": ({"flower_users": [{"name": "ops", "password": "a,b"}]}, ["flower_users", "','"]),
    "beat entry without schedule": (
        {"celery_beat_schedule": {"tick": {"task": "celery_demo.tasks.noop"}}},
        ["celery_beat_schedule entry 'tick'", "schedule"],
    ),
}

GOOD = {
    "basic auth (scenario)": {},
    "OAuth with a domain wildcard": {**OAUTH, "flower_auth": ".*@example.com"},
    "OAuth with a list of addresses": {**OAUTH, "flower_auth": "a@example.com|b@example.org"},
    "no authentication, explicitly allowed": {"flower_users": [], "flower_allow_unauthenticated": True},
}


def _fingerprint() -> str:
    """Checksums of what the roles write, plus Flower's and beat's process ids: unchanged means untouched."""
    target = Target(HOST)
    return target.sh(
        f"md5sum /etc/{APP}/flower.env /etc/{APP}/flowerconfig.py /etc/systemd/system/{APP}-*.service "
        f"/opt/{APP}/beat/*.py 2>/dev/null; pgrep -f 'bin/[c]elery' | sort"
    ).stdout


@pytest.fixture(scope="module")
def checked() -> dict[str, subprocess.CompletedProcess[str]]:
    """check-input.yml run once per case, four at a time (each run is mostly Ansible's start-up)."""
    cases = {**{case: extra for case, (extra, _) in BAD.items()}, **GOOD}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            case: pool.submit(ansible_playbook, [PLAYBOOK, "--limit", HOST], extra)
            for case, extra in cases.items()
        }
    return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_fails_with_a_message_naming_the_variable(
    checked: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    _, expected = BAD[case]
    result = checked[case]
    output = result.stdout + result.stderr
    first = next((line for line in output.splitlines() if "msg" in line), "")
    print(f"{case}: rc {result.returncode}: {first.strip()[:160]}")
    assert result.returncode != 0
    for text in expected:
        assert text in output, f"{case}: {text!r} not in the failure"
    assert "test-only-client-secret" not in output


@pytest.mark.parametrize("case", GOOD, ids=list(GOOD))
def test_good_input_passes_the_checks(
    checked: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    result = checked[case]
    assert result.returncode == 0, result.stdout[-2000:]
    if "allowed" in case:
        assert "WITHOUT AUTHENTICATION" in result.stdout


def test_bad_input_in_the_full_deploy_changes_nothing() -> None:
    before = _fingerprint()
    result = ansible_playbook([str(SCENARIO / "converge.yml"), "--limit", HOST], {"flower_users": []})
    assert result.returncode != 0
    assert "flower_allow_unauthenticated" in result.stdout + result.stderr
    assert "changed=0" in result.stdout
    assert _fingerprint() == before
    assert Target(HOST).service_active(FLOWER_SERVICE)


def test_two_beat_hosts_fail_before_any_change(tmp_path: pathlib.Path) -> None:
    """A celery_beat group of two hosts: playbooks/validate.yml (first play of site.yml) and
    playbooks/deploy-beat.yml both refuse it, naming the group and the hosts."""
    second = "beat-two.invalid"
    inventory = tmp_path / "beat.yml"
    inventory.write_text(
        json.dumps(
            {
                "celery_beat": {"hosts": {HOST: {}, second: {"ansible_connection": "local"}}},
                "celery_workers": {"hosts": {HOST: {}}},
            }
        )
    )
    before = _fingerprint()
    for playbook in ["playbooks/validate.yml", "playbooks/deploy-beat.yml"]:
        result = ansible_playbook(["-i", str(inventory), playbook])
        output = result.stdout + result.stderr
        print(f"{playbook}: rc {result.returncode}")
        assert result.returncode != 0, output[-2000:]
        assert f"2 hosts ('{HOST}', '{second}') run beat; at most 1 is allowed" in output
    assert _fingerprint() == before
