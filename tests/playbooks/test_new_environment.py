"""playbooks/new-environment.yml scaffolds an inventory and an encrypted vault, and never overwrites."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
SECRETS = {
    "vault_redis_password",
    "vault_redis_admin_password",
    "vault_redis_worker_password",
    "vault_redis_producer_password",
    "vault_redis_flower_password",
    "vault_flower_admin_password",
    "vault_redis_exporter_password",
}


def _scaffold(tmp_path: Path) -> dict[str, Path]:
    inventories = tmp_path / "inventories"
    shutil.copytree(
        TOP / "inventories" / "staging", inventories / "staging", ignore=shutil.ignore_patterns("vault.yml")
    )
    password = tmp_path / "vault-pass"
    password.write_text("test-only-vault-password\n")
    env_file = tmp_path / "env.yml"
    env_file.write_text(
        yaml.safe_dump(
            {
                "env_name": "qa",
                "env_inventories_dir": str(inventories),
                "env_vault_password_file": str(password),
                "env_redis_hosts": ["redis-1.qa.internal"],
                "env_worker_groups": {
                    "gpu_workers": ["gpu-1.qa.internal"],
                    "cpu_workers": ["cpu-1.qa.internal"],
                },
                "env_ops_hosts": ["ops-1.qa.internal"],
                "env_private_addresses": {
                    "redis-1.qa.internal": "10.50.0.10",
                    "gpu-1.qa.internal": "10.50.0.11",
                    "cpu-1.qa.internal": "10.50.0.21",
                    "ops-1.qa.internal": "10.50.0.30",
                },
            }
        )
    )
    return {"inventories": inventories, "password": password, "env_file": env_file}


@pytest.fixture(scope="session")
def scaffold_play(ansible_playbook):
    """Runs playbooks/new-environment.yml on a scaffold's description."""

    def run(scaffold: dict[str, Path]) -> subprocess.CompletedProcess[str]:
        return ansible_playbook("playbooks/new-environment.yml", "-e", f"@{scaffold['env_file']}")

    return run


@pytest.fixture
def scaffold(tmp_path: Path) -> dict[str, Path]:
    """A description of a new environment, not scaffolded yet (each test may change it)."""
    return _scaffold(tmp_path)


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory, scaffold_play) -> dict[str, Any]:
    """One scaffold, made once for the tests that only read it (the play takes ~25 s)."""
    made = _scaffold(tmp_path_factory.mktemp("scaffolded"))
    return {**made, "result": scaffold_play(made)}


def test_scaffold_writes_inventory_with_every_group(scaffolded, ansible):
    scaffold, result = scaffolded, scaffolded["result"]

    assert result.returncode == 0, result.stdout + result.stderr
    graph = ansible(
        "ansible-inventory",
        "-i",
        str(scaffold["inventories"] / "qa"),
        "--list",
        "--vault-password-file",
        str(scaffold["password"]),
    )
    groups = json.loads(graph.stdout)
    assert groups["redis"]["hosts"] == ["redis-1.qa.internal"]
    redis_vars = groups["_meta"]["hostvars"]["redis-1.qa.internal"]
    assert redis_vars["celery_fleet_private_address"] == "10.50.0.10"
    assert (
        redis_vars["celery_broker_host"]
        == "{{ hostvars[groups['redis'][0]]['celery_fleet_private_address'] }}"
    )
    assert set(groups["celery_workers"]["children"]) == {"gpu_workers", "cpu_workers"}
    assert groups["celery_beat"]["hosts"] == ["ops-1.qa.internal"]


def test_vault_is_encrypted_and_holds_distinct_strong_secrets(scaffolded, ansible):
    scaffold = scaffolded
    vault = scaffold["inventories"] / "qa" / "group_vars" / "all" / "vault.yml"

    view = ansible("ansible-vault", "view", "--vault-password-file", str(scaffold["password"]), str(vault))

    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    assert oct(vault.stat().st_mode & 0o777) == "0o600"
    secrets = yaml.safe_load(view.stdout)
    assert set(secrets) == SECRETS
    assert all(len(value) >= 32 for value in secrets.values())
    assert len(set(secrets.values())) == len(SECRETS)


def test_second_run_changes_nothing_and_keeps_the_vault(scaffolded, scaffold_play):
    scaffold = scaffolded
    assert scaffold["result"].returncode == 0, scaffold["result"].stdout
    vault = scaffold["inventories"] / "qa" / "group_vars" / "all" / "vault.yml"
    before = vault.read_bytes()

    again = scaffold_play(scaffold)

    assert "changed=0" in again.stdout, again.stdout
    assert vault.read_bytes() == before


def test_missing_vault_password_file_fails_with_what_to_set(scaffold, scaffold_play):
    scaffold["password"].unlink()

    result = scaffold_play(scaffold)

    assert result.returncode != 0
    assert "env_vault_password_file" in result.stdout
    assert not (scaffold["inventories"] / "qa").exists()


def test_host_without_private_address_fails_before_writing(scaffold, scaffold_play):
    env = yaml.safe_load(scaffold["env_file"].read_text())
    del env["env_private_addresses"]["cpu-1.qa.internal"]
    scaffold["env_file"].write_text(yaml.safe_dump(env))

    result = scaffold_play(scaffold)

    assert result.returncode != 0
    assert "env_private_addresses" in result.stdout
    assert not (scaffold["inventories"] / "qa").exists()
