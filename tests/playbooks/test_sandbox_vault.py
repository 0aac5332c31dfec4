"""playbooks/sandbox-vault.yml makes the sandbox's vault password and vaults on this machine.

No password that opens a vault is committed: each checkout gets a random one (0600) and vaults of
random secrets encrypted with it, never overwritten, and a vault the password file does not open
stops the play with what to do.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
SECRET_NAMES = yaml.safe_load((TOP / "playbooks" / "vars" / "vault-secrets.yml").read_text())[
    "vault_secret_names"
]


@pytest.fixture(scope="session")
def make_vault(ansible_playbook) -> Callable[[Path], subprocess.CompletedProcess[str]]:
    """Runs playbooks/sandbox-vault.yml on another inventory directory."""
    return lambda sandbox: ansible_playbook("playbooks/sandbox-vault.yml", "-e", f"sandbox_dir={sandbox}")


@pytest.fixture(scope="session")
def view(ansible) -> Callable[[Path, str], dict[str, str]]:
    """The secrets of one of a sandbox directory's vaults, opened with its password file."""

    def read(sandbox: Path, vault: str) -> dict[str, str]:
        password = sandbox / "vault-password.txt"
        shown = ansible(
            "ansible-vault",
            "view",
            "--vault-password-file",
            str(password),
            str(sandbox / "group_vars" / "all" / vault),
        )
        assert shown.returncode == 0, shown.stderr
        return yaml.safe_load(shown.stdout)

    return read


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, make_vault) -> dict[str, object]:
    """One sandbox directory, the play run twice on it (each run takes ~7 s)."""
    sandbox = tmp_path_factory.mktemp("made") / "sandbox"
    (sandbox / "group_vars" / "all").mkdir(parents=True)
    first = make_vault(sandbox)
    files = {p: p.read_bytes() for p in sandbox.rglob("*") if p.is_file()}
    second = make_vault(sandbox)
    return {"sandbox": sandbox, "first": first, "second": second, "files": files}


def test_password_and_vaults_are_made_private_and_encrypted(made):
    sandbox, first = made["sandbox"], made["first"]

    assert first.returncode == 0, first.stdout + first.stderr
    password = sandbox / "vault-password.txt"
    assert oct(password.stat().st_mode & 0o777) == "0o600"
    assert len(password.read_text().strip()) == 40
    for vault in SECRET_NAMES:
        path = sandbox / "group_vars" / "all" / vault
        assert path.read_text().startswith("$ANSIBLE_VAULT;"), vault
        assert oct(path.stat().st_mode & 0o777) == "0o600", vault


def test_every_secret_is_random_distinct_and_never_printed(made, view):
    sandbox, first = made["sandbox"], made["first"]

    secrets = {}
    for vault, names in SECRET_NAMES.items():
        values = view(sandbox, vault)
        assert set(values) == set(names), vault
        secrets.update(values)
    values = [*secrets.values(), (sandbox / "vault-password.txt").read_text().strip()]
    assert len(set(values)) == len(values)
    assert all(len(v) >= 32 and v.isalnum() for v in values)
    for value in values:
        assert value not in first.stdout + first.stderr


def test_a_second_run_changes_nothing(made):
    second = made["second"]

    assert second.returncode == 0, second.stdout + second.stderr
    assert "changed=0" in second.stdout
    assert {p: p.read_bytes() for p in made["sandbox"].rglob("*") if p.is_file()} == made["files"]


def test_a_vault_the_password_does_not_open_stops_the_play(made, make_vault, tmp_path):
    sandbox = tmp_path / "sandbox"
    (sandbox / "group_vars" / "all").mkdir(parents=True)
    for vault in SECRET_NAMES:
        vault_path = Path("group_vars") / "all" / vault
        (sandbox / vault_path).write_bytes((made["sandbox"] / vault_path).read_bytes())
    (sandbox / "vault-password.txt").write_text("another-checkouts-password\n")

    result = make_vault(sandbox)

    assert result.returncode != 0
    assert "Decryption failed" in result.stdout
    assert "delete the password file and both vaults" in result.stdout


def test_vaults_without_their_password_are_refused_not_replaced(made, make_vault, tmp_path):
    sandbox = tmp_path / "sandbox"
    vault_path = sandbox / "group_vars" / "all" / "vault.yml"
    vault_path.parent.mkdir(parents=True)
    vault_path.write_bytes((made["sandbox"] / "group_vars" / "all" / "vault.yml").read_bytes())

    result = make_vault(sandbox)

    assert result.returncode != 0
    assert "nothing can open them" in result.stdout
    assert not (sandbox / "vault-password.txt").exists()
    assert vault_path.read_bytes() == (made["sandbox"] / "group_vars" / "all" / "vault.yml").read_bytes()
