"""Nothing stale (roles/celery_retire): the systemd host switched to supervisord runs one beat, one
Flower and its workers under supervisord only, the old units gone; playbooks/retire-host.yml refuses
to run without --limit, changes nothing in check mode, then leaves nothing of the app running (a
second run: changed=0) and never touches another app's or an unmarked unit; converge.yml brings
the host back to systemd. Runs last in the scenario and restores the host even when a test fails.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from celery_fleet.recap import play_recap  # lib/ is on sys.path through fleetnode
from conftest import APP, BEAT_PROCESS, FLOWER_PROCESS, LAYOUT, Target, ansible_playbook
from fleetnode import wait_until

SCENARIO_CONVERGE = "molecule/flower/converge.yml"
RETIRE_HOST = "playbooks/retire-host.yml"
HOST = "flower-bookworm"  # systemd in molecule.yml
OTHER = "flowerx"
# Units that must survive everything: another app whose name starts with this one's (its file
# matches the glob celerydemo-*), and an operator's unit named after the app without the marker.
FOREIGN = {
    f"{APP}-{OTHER}-beat": f"X-CeleryFleet=celery-fleet beat of app {APP}-{OTHER}",
    f"{APP}-sidecar": "",
}
# The other app's beat under supervisord, added once the host runs supervisord.
FOREIGN_PROGRAM = f"{APP}-{OTHER}-beat"
FOREIGN_PROGRAM_FILE = f"/etc/supervisor/conf.d/{FOREIGN_PROGRAM}.conf"
CELERY = "bin/[c]elery -A "
# Set by the last test once converge.yml has brought the host back; otherwise the fixture does.
RESTORED: dict[str, bool] = {}


def _recap(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    recap = play_recap(result.stdout)
    assert HOST in recap, result.stdout[-3000:]
    return recap[HOST]


def _units(target: Target) -> dict[str, str]:
    """Each celery process of the host -> the systemd unit it runs in (supervisor.service under
    supervisord)."""
    out = target.sh(f"for p in $(pgrep -f '{CELERY}'); do echo $p $(ps -o unit= -p $p); done").stdout
    return dict(line.split(maxsplit=1) for line in out.splitlines() if len(line.split()) == 2)


def _count(target: Target, pattern: str) -> int:
    return int(target.sh(f"pgrep -c -f '{pattern}'", check=False).stdout.strip() or 0)


def _app_units(target: Target) -> list[str]:
    return target.sh(f"ls /etc/systemd/system | grep '^{APP}-' || true").stdout.split()


def _programs(target: Target) -> dict[str, str]:
    out = target.sh("supervisorctl status 2>/dev/null || true").stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith(f"{APP}-")}


def _install_foreign(target: Target) -> None:
    for name, marker in FOREIGN.items():
        lines = [
            f"[Unit]\nDescription=not celery-fleet's {name}",
            marker,
            "[Service]",
            "ExecStart=/bin/sleep infinity",
        ]
        target.sh(f"cat > /etc/systemd/system/{name}.service", stdin="\n".join(lines) + "\n")
    target.sh(f"systemctl daemon-reload && systemctl start {' '.join(FOREIGN)}")


def _foreign_active(target: Target) -> dict[str, str]:
    return {name: target.sh(f"systemctl is-active {name}", check=False).stdout.strip() for name in FOREIGN}


def _converge(manager: str) -> subprocess.CompletedProcess[str]:
    # The broker is not what switches: its tasks are skipped (a third of the converge's time).
    args = [SCENARIO_CONVERGE, "--limit", HOST, "--skip-tags", "redis"]
    return ansible_playbook(args, {"celery_process_manager": manager})


@pytest.fixture(scope="module")
def host() -> Iterator[Target]:
    target = Target(HOST)
    _install_foreign(target)
    yield target
    # Whatever failed: the host as molecule.yml declares it, for the tests that may run after.
    if not RESTORED:
        _converge("systemd")
    target.sh(f"systemctl stop {' '.join(FOREIGN)}")
    target.sh(f"cd /etc/systemd/system && rm -f {' '.join(f'{name}.service' for name in FOREIGN)}")
    target.sh(f"rm -f {FOREIGN_PROGRAM_FILE}; supervisorctl update || true; systemctl daemon-reload")


@pytest.fixture(scope="module")
def switched(host: Target) -> dict:
    result = _converge("supervisord")
    print(f"\n{HOST} switched to supervisord: rc {result.returncode}, {_recap(result)}")
    return {"result": result}


def test_switch_to_supervisord_converges(switched: dict) -> None:
    result = switched["result"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Retiring " in result.stdout


def test_old_units_are_gone_and_nothing_runs_under_systemd(host: Target, switched: dict) -> None:
    units = _units(host)
    print(f"{HOST}: celery processes by unit: {sorted(set(units.values()))}")
    assert _app_units(host) == sorted(f"{name}.service" for name in FOREIGN)
    assert set(units.values()) == {"supervisor.service"}
    assert host.sh(f"ls /etc/systemd/system/*.wants | grep '^{APP}-' || true").stdout.split() == []
    listed = host.sh(f"systemctl list-units --all --plain --no-legend '{APP}-*'").stdout
    assert sorted(line.split()[0] for line in listed.splitlines()) == sorted(f"{n}.service" for n in FOREIGN)


def test_one_beat_one_flower_and_the_workers_run_under_supervisord(host: Target, switched: dict) -> None:
    programs = _programs(host)
    print(f"{HOST}: supervisord programs {programs}")
    expected = {f"{APP}-beat", f"{APP}-flower"} | {
        f"{APP}-worker-{w['name']}" for w in host.vars["celery_workers"]
    }
    assert programs == dict.fromkeys(expected, "RUNNING")
    assert _count(host, BEAT_PROCESS) == 1
    assert _count(host, FLOWER_PROCESS) == 1
    assert host.sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5555/healthcheck").stdout == "200"


def test_foreign_units_survive_the_switch(host: Target, switched: dict) -> None:
    assert _foreign_active(host) == dict.fromkeys(FOREIGN, "active")


def test_retire_host_refuses_to_run_without_limit(host: Target, switched: dict) -> None:
    before = _programs(host)
    result = ansible_playbook([RETIRE_HOST])
    print(f"retire-host.yml without --limit: rc {result.returncode}")
    assert result.returncode != 0
    assert "name them with -l <host>" in " ".join((result.stdout + result.stderr).split())
    assert "changed=0" in result.stdout
    assert _programs(host) == before


@pytest.fixture(scope="module")
def retired(host: Target, switched: dict) -> dict:
    program = f"# celery-fleet beat of app {APP}-{OTHER}\n[program:{FOREIGN_PROGRAM}]\n"
    program += "command=/bin/sleep infinity\n"
    host.sh(f"cat > {FOREIGN_PROGRAM_FILE} && supervisorctl update", stdin=program)

    # The update starts it, STARTING until it stayed up supervisord's startsecs (1 s): a check run
    # can end sooner than that (seen under load). Every program RUNNING first, so the states after
    # the check say what the check did.
    def all_running() -> bool:
        programs = _programs(host)
        assert set(programs.values()) == {"RUNNING"}, programs  # shown if the wait runs out
        return True

    wait_until(all_running, timeout=30, what=f"every program of {HOST} RUNNING before the check run")
    checked = ansible_playbook([RETIRE_HOST, "--limit", HOST, "--check"])
    programs_after_check = _programs(host)
    first = ansible_playbook([RETIRE_HOST, "--limit", HOST])
    second = ansible_playbook([RETIRE_HOST, "--limit", HOST])
    for name, result in [("--check", checked), ("first", first), ("second", second)]:
        print(f"retire-host.yml -l {HOST} ({name}): rc {result.returncode}, {_recap(result)}")
    return {"check": checked, "after_check": programs_after_check, "first": first, "second": second}


def test_retire_host_check_mode_reports_and_changes_nothing(host: Target, retired: dict) -> None:
    assert retired["check"].returncode == 0, retired["check"].stdout[-3000:]
    assert _recap(retired["check"])["changed"] > 0
    assert set(retired["after_check"].values()) == {"RUNNING"}, retired["after_check"]
    # Beat, Flower, the workers and the other app's program.
    assert len(retired["after_check"]) == 3 + len(host.vars["celery_workers"])


def test_retire_host_leaves_nothing_of_the_app_running(host: Target, retired: dict) -> None:
    assert retired["first"].returncode == 0, retired["first"].stdout[-3000:]
    assert _programs(host) == {FOREIGN_PROGRAM: "RUNNING"}
    assert _units(host) == {}
    assert host.sh(f"ls /etc/supervisor/conf.d | grep '^{APP}-' || true").stdout.split() == [
        f"{FOREIGN_PROGRAM}.conf"
    ]
    assert host.sh(f"test -e /etc/{APP}/flower.env", check=False).returncode == 1
    # Flower's HTTPS site and certificate go with it; nginx no longer listens for it.
    for path in [LAYOUT["flower_nginx_site"], LAYOUT["flower_tls_dir"]]:
        assert host.sh(f"test -e {path}", check=False).returncode == 1, path
    assert host.sh("ss -Hltn 'sport = :443'").stdout.strip() == ""
    # The app stays: its user, virtualenv and environment file.
    assert (
        host.sh(
            f"test -x /opt/{APP}/venv/bin/celery && test -f /etc/{APP}/celery.env", check=False
        ).returncode
        == 0
    )


def test_retire_host_again_changes_nothing(retired: dict) -> None:
    assert retired["second"].returncode == 0, retired["second"].stdout[-3000:]
    assert _recap(retired["second"])["changed"] == 0


def test_retire_host_spares_other_apps_and_unmarked_units(host: Target, retired: dict) -> None:
    assert _foreign_active(host) == dict.fromkeys(FOREIGN, "active")
    assert _app_units(host) == sorted(f"{name}.service" for name in FOREIGN)


def test_converge_brings_the_host_back_to_systemd(host: Target, retired: dict) -> None:
    result = _converge("systemd")
    print(f"{HOST} back to systemd: rc {result.returncode}, {_recap(result)}")
    assert result.returncode == 0, result.stdout[-3000:]
    units = _units(host)
    assert _programs(host) == {FOREIGN_PROGRAM: "RUNNING"}
    assert _count(host, BEAT_PROCESS) == 1
    assert _count(host, FLOWER_PROCESS) == 1
    assert "supervisor.service" not in units.values()
    assert set(units.values()) >= {f"{APP}-beat.service", f"{APP}-flower.service"}
    RESTORED["systemd"] = True
