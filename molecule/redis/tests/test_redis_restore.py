"""A value that passes validation but keeps the server from starting never leaves the broker down.

`redis_bind` with an address the host does not have is a valid list of addresses (argument_specs and
the server's own parsing accept it), yet the server aborts at start. The role restarts, sees it fail,
puts the previous files back and starts the server with them, then fails the run saying so.
"""

from __future__ import annotations

import pytest
from conftest import all_brokers, run_playbook

UNASSIGNED = "10.255.255.1"


@pytest.fixture(scope="module")
def failed_run():
    broker = next(b for b in all_brokers() if b.container.endswith("bookworm"))
    before_files = broker.sh(f"sha256sum {broker.config_dir}/redis.conf {broker.config_dir}/users.acl").stdout
    before_keys = broker.admin("DBSIZE")
    before_pid = broker.main_pid()
    result = run_playbook("-l", broker.container, "-e", f'{{"redis_bind": ["127.0.0.1", "{UNASSIGNED}"]}}')
    return broker, result, before_files, before_keys, before_pid


def test_the_run_fails_and_says_the_previous_configuration_runs(failed_run):
    _, result, *_ = failed_run
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output[-800:]
    assert "did not start with the new configuration" in output, output[-1500:]
    assert "previous configuration files were put back and the server runs with them again" in output


def test_the_broker_runs_its_previous_configuration_with_its_data(failed_run):
    broker, _, before_files, before_keys, before_pid = failed_run
    after_files = broker.sh(f"sha256sum {broker.config_dir}/redis.conf {broker.config_dir}/users.acl").stdout
    assert after_files == before_files
    assert broker.main_pid() not in (0, before_pid)  # restarted, and running
    assert broker.admin("DBSIZE") == before_keys
    leftovers = broker.sh(f"ls {broker.config_dir}").stdout.split()
    assert [name for name in leftovers if "~" in name] == [], leftovers
