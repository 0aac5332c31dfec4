"""Unit tests of library/celery_fleet_venv_packages.py: the requirements a virtualenv does not satisfy,
read from its distributions' metadata, so that the roles run pip only when one is not."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

basic = pytest.importorskip("ansible.module_utils.basic")
pytest.importorskip("packaging.requirements")

PATH = Path(__file__).resolve().parents[2] / "library" / "celery_fleet_venv_packages.py"
spec = importlib.util.spec_from_file_location("celery_fleet_venv_packages", PATH)
venv_packages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(venv_packages)

INSTALLED = {"celery": "5.4.0", "flower": "2.2.0", "kombu": "5.4.2", "redis": "5.2.1", "gevent": "25.0.0rc1"}


def make_venv(root: Path, installed: dict[str, str], python: str = "python3.11") -> Path:
    """A virtualenv's layout with a .dist-info per distribution (what importlib.metadata reads)."""
    site = root / "lib" / python / "site-packages"
    for name, version in installed.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("")
    return root


def test_requirements_met_by_the_installed_versions_are_satisfied() -> None:
    missing, found = venv_packages.unsatisfied(
        ["celery[redis]>=5.3,<6", "flower==2.2.0", "Kombu", "redis>=5; python_version >= '3.8'"], INSTALLED
    )
    assert missing == []
    assert found == {"celery": "5.4.0", "flower": "2.2.0", "Kombu": "5.4.2", "redis": "5.2.1"}


def test_a_wrong_version_a_missing_package_and_what_pip_alone_can_judge_are_unsatisfied() -> None:
    missing, found = venv_packages.unsatisfied(
        [
            "flower==2.1.0",
            "eventlet",
            "./wheels/app-1.0-py3-none-any.whl",
            "app @ https://example.invalid/app.whl",
            "celery",
        ],
        INSTALLED,
    )
    assert missing == [
        "flower==2.1.0",
        "eventlet",
        "./wheels/app-1.0-py3-none-any.whl",
        "app @ https://example.invalid/app.whl",
    ]
    assert found == {"flower": "2.2.0", "celery": "5.4.0"}


def test_an_installed_prerelease_satisfies_a_plain_name_and_each_requirement_counts_once() -> None:
    assert venv_packages.unsatisfied(["gevent", "gevent", "gevent>=25"], INSTALLED) == (
        ["gevent>=25"],
        {"gevent": "25.0.0rc1"},
    )


def test_installed_versions_reads_the_metadata_with_canonical_names(tmp_path: Path) -> None:
    root = make_venv(tmp_path / "venv", {"Flower": "2.2.0", "python_dateutil": "2.9.0"})
    site = str(root / "lib" / "python3.11" / "site-packages")
    assert venv_packages.installed_versions([site]) == {"flower": "2.2.0", "python-dateutil": "2.9.0"}


def run_main(monkeypatch: pytest.MonkeyPatch, args: dict[str, Any]) -> dict[str, Any]:
    """The module's main() as Ansible runs it, in check mode."""
    payload = {"ANSIBLE_MODULE_ARGS": {"_ansible_check_mode": True, **args}}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps(payload).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: None)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with pytest.raises(SystemExit):
        venv_packages.main()
    return json.loads(out.getvalue())


def test_the_module_reads_the_virtualenv_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_venv(tmp_path / "venv", INSTALLED, python="python3.13")
    result = run_main(monkeypatch, {"venv": str(root), "requirements": ["flower==2.2.0", "eventlet"]})
    assert result["changed"] is False and "failed" not in result, result
    assert result["venv_exists"] is True
    assert result["unsatisfied"] == ["eventlet"]
    assert result["installed"] == {"flower": "2.2.0"}


def test_without_a_virtualenv_every_requirement_is_unsatisfied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_main(monkeypatch, {"venv": str(tmp_path / "none"), "requirements": ["flower==2.2.0"]})
    assert (result["venv_exists"], result["unsatisfied"], result["installed"]) == (
        False,
        ["flower==2.2.0"],
        {},
    )


def test_without_packaging_on_the_host_pip_judges_every_requirement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_venv(tmp_path / "venv", INSTALLED)
    monkeypatch.setattr(venv_packages, "Requirement", None)
    result = run_main(monkeypatch, {"venv": str(root), "requirements": ["flower==2.2.0", "flower==2.2.0"]})
    assert "failed" not in result, result
    assert result["unsatisfied"] == ["flower==2.2.0"]
    assert "packaging" in result["msg"]
