"""Unit tests of library/celery_fleet_packages.py: the packages of a list that dpkg does not have
installed, so that the roles run apt only for those."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

basic = pytest.importorskip("ansible.module_utils.basic")

PATH = Path(__file__).resolve().parents[2] / "library" / "celery_fleet_packages.py"
spec = importlib.util.spec_from_file_location("celery_fleet_packages", PATH)
packages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(packages)

# dpkg-query --show --showformat='${Package}\t${db:Status-Abbrev}\t${Version}\n' as bookworm prints it:
# an installed package, one removed with its configuration left ("rc"), one half-installed.
LISTED = (
    "redis-server\tii \t5:7.0.15-1~deb12u7\n"
    "nginx\trc \t1.22.1-9\n"
    "supervisor\tiF \t4.2.5-1\n"
    "python3-venv\tii \t3.11.2-1+b1\n"
)


class Query:
    """A stand-in for dpkg-query: what it was asked, what it answers."""

    def __init__(self, output: str = LISTED) -> None:
        self.output, self.asked = output, []

    def __call__(self, names: list[str]) -> str:
        self.asked.append(names)
        return self.output


def test_only_packages_dpkg_lists_as_installed_count_as_installed() -> None:
    query = Query()
    missing, installed = packages.missing_packages(
        ["redis-server", "nginx", "supervisor", "git", "python3-venv"], query
    )
    # Removed with its configuration left, half-installed, and unknown to dpkg: apt installs them.
    assert missing == ["nginx", "supervisor", "git"]
    assert installed == {"redis-server": "5:7.0.15-1~deb12u7", "python3-venv": "3.11.2-1+b1"}
    assert query.asked == [["redis-server", "nginx", "supervisor", "git", "python3-venv"]]


def test_names_that_are_not_plain_package_names_are_left_to_apt() -> None:
    query = Query()
    missing, installed = packages.missing_packages(
        ["redis-server=5:7.0.15-1~deb12u7", "redis-server:arm64", "redis-*", "Redis-Server", "redis-server"],
        query,
    )
    # dpkg is asked about the plain name only; the others are always apt's to judge.
    assert query.asked == [["redis-server"]]
    assert missing == ["redis-server=5:7.0.15-1~deb12u7", "redis-server:arm64", "redis-*", "Redis-Server"]
    assert installed == {"redis-server": "5:7.0.15-1~deb12u7"}


def test_each_name_is_reported_once_in_its_order_and_no_query_without_plain_names() -> None:
    query = Query()
    assert packages.missing_packages(["git", "git", "nginx"], query) == (["git", "nginx"], {})
    assert query.asked == [["git", "nginx"]]
    empty = Query()
    assert packages.missing_packages([], empty) == ([], {})
    assert packages.missing_packages(["pkg=1.0"], empty) == (["pkg=1.0"], {})
    assert empty.asked == []


def test_a_package_listed_for_two_architectures_is_installed_if_one_is() -> None:
    listed = "libssl3\tun \t\nlibssl3\tii \t3.0.15-1~deb12u1\n"
    assert packages.missing_packages(["libssl3"], Query(listed)) == ([], {"libssl3": "3.0.15-1~deb12u1"})


def run_main(
    monkeypatch: pytest.MonkeyPatch, args: dict[str, Any], answer: tuple[int, str, str]
) -> dict[str, Any]:
    """The module's main() as Ansible runs it (check mode), dpkg-query answering ``answer``."""
    payload = {"ANSIBLE_MODULE_ARGS": {"_ansible_check_mode": True, **args}}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps(payload).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: None)
    monkeypatch.setattr(
        basic.AnsibleModule, "get_bin_path", lambda self, name, required=False: f"/usr/bin/{name}"
    )
    commands: list[list[str]] = []

    def run_command(self, argv, **kwargs):
        commands.append(argv)
        return answer

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with pytest.raises(SystemExit):
        packages.main()
    result = json.loads(out.getvalue())
    result["_commands"] = commands
    return result


def test_the_module_reads_dpkg_without_a_shell_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # rc 1: a name dpkg does not know (git here) is not listed, which is not an error.
    result = run_main(
        monkeypatch, {"names": ["redis-server", "git"]}, (1, LISTED, "no packages found matching git\n")
    )
    assert result["changed"] is False and "failed" not in result, result
    assert result["missing"] == ["git"]
    assert result["installed"] == {"redis-server": "5:7.0.15-1~deb12u7"}
    assert result["_commands"] == [
        ["/usr/bin/dpkg-query", "--show", f"--showformat={packages.FORMAT}", "--", "redis-server", "git"]
    ]


def test_a_dpkg_query_that_fails_fails_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_main(
        monkeypatch, {"names": ["redis-server"]}, (2, "", "dpkg-query: error: database locked\n")
    )
    assert result["failed"] is True
    assert "rc 2" in result["msg"] and "database locked" in result["msg"]
