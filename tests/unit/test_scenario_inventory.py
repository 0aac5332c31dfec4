"""molecule/resources/scenario_inventory.py: a host's inventory variables as Molecule writes them
(group all, the host's groups in Ansible's order, host_vars), read by the scenarios' tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "molecule" / "resources"))
import scenario_inventory
from scenario_inventory import host_groups, inventory_vars

# The shape Molecule writes: every group at the top level, hosts shared through YAML anchors.
INVENTORY = """\
# Molecule managed

---
all:
  hosts:
    data-1: &id001
      ansible_connection: community.docker.docker
    client: &id002
      ansible_connection: community.docker.docker
celery_workers:
  hosts:
    client: *id002
  children:
    gpu_workers:
      hosts:
        client: *id002
flower:
  hosts:
    client: *id002
redis:
  hosts:
    data-1: *id001
"""


@pytest.fixture
def scenario(tmp_path, monkeypatch) -> Path:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "host_vars").mkdir()
    (inventory / "ansible_inventory.yml").write_text(INVENTORY)
    (inventory / "group_vars" / "all").write_text("shared: all\nsecret: from-all\nlevel: all\n")
    (inventory / "group_vars" / "celery_workers").write_text(
        "flower_users: [{name: ops, password: test-only}]\nlevel: celery_workers\n"
    )
    (inventory / "group_vars" / "gpu_workers").write_text("level: gpu_workers\n")
    (inventory / "group_vars" / "flower.yml").write_text("flower_port: 5555\n")
    (inventory / "group_vars" / "redis").write_text("redis_maxmemory: 128mb\nlevel: redis\n")
    (inventory / "host_vars" / "data-1").write_text("level: host\n")
    monkeypatch.setenv("MOLECULE_INVENTORY_FILE", str(inventory / "ansible_inventory.yml"))
    inventory_vars.cache_clear()
    scenario_inventory.inventory_hosts.cache_clear()
    yield inventory
    inventory_vars.cache_clear()
    scenario_inventory.inventory_hosts.cache_clear()


def test_a_hosts_groups_in_ansibles_order():
    import yaml

    inventory = yaml.safe_load(INVENTORY)

    # Parents before children (depth), then by name; `all` is not listed.
    assert host_groups(inventory, "client") == ["celery_workers", "flower", "gpu_workers"]
    assert host_groups(inventory, "data-1") == ["redis"]
    assert host_groups(inventory, "nobody") == []


def test_group_vars_of_the_hosts_groups_are_read(scenario):
    client = inventory_vars("client")

    assert client["flower_users"] == [{"name": "ops", "password": "test-only"}]
    assert client["flower_port"] == 5555  # a group_vars file with an extension
    assert client["shared"] == "all"
    # The deeper group wins over its parent, as in Ansible.
    assert client["level"] == "gpu_workers"
    assert "redis_maxmemory" not in client  # not its group


def test_host_vars_win_and_other_groups_stay_out(scenario):
    data = inventory_vars("data-1")

    assert data["level"] == "host"
    assert data["redis_maxmemory"] == "128mb"
    assert "flower_users" not in data
    assert scenario_inventory.inventory_hosts() == ["client", "data-1"]


def test_a_group_vars_directory_is_read_and_a_vault_file_skipped(scenario):
    (scenario / "group_vars" / "redis").unlink()
    (scenario / "group_vars" / "redis").mkdir()
    (scenario / "group_vars" / "redis" / "redis.yml").write_text("redis_maxmemory: 64mb\n")
    (scenario / "group_vars" / "redis" / "vault.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")

    assert inventory_vars("data-1")["redis_maxmemory"] == "64mb"
