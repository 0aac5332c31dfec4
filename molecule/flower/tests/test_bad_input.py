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

# Every rule is tested on the controller, message by message (tests/unit/test_input_rules.py and
# tests/playbooks/test_validate.py). Here, the roles' own validate steps on a real host: a rule of
# each (Flower, OAuth e-mail rule, beat schedule) refused, and good input accepted.
BAD = {
    "no authentication": ({"flower_users": []}, ["flower_users", "flower_allow_unauthenticated"]),
    "regex-style e-mail rule": (
        {**OAUTH, "flower_auth": "a@example\\.com$"},
        ["flower_auth", "a@example.com.evil.org"],
    ),
    "Flower's own port off loopback": (
        {"flower_bind": "0.0.0.0", "flower_tls_enabled": False},
        ["flower_bind", "flower_tls_enabled", "flower_allow_plain_http"],
    ),
    "beat entry without schedule": (
        {"celery_beat_schedule": {"tick": {"task": "celery_demo.tasks.noop"}}},
        ["celery_beat_schedule.tick", "schedule"],
    ),
}

GOOD = {
    "basic auth (scenario)": {},
    "OAuth with a domain wildcard": {**OAUTH, "flower_auth": ".*@example.com"},
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
