"""A worker that does not come up makes the deploy say why: its last log lines and what to change.

The app module of one worker host is made unimportable (celery_app_module misspelt, as a typo in
the inventory would): every worker of the host crash-loops, and deploy-workers.yml fails naming the
workers, showing their log and the hint for an import error. The host is then deployed as declared:
by test_stale's full site.yml run, which comes next and checks that its workers answer (a run of
deploy-workers.yml of its own cost 100-190 s), or at the end of the session (conftest.LEFT_BROKEN).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from conftest import LEFT_BROKEN, WORKERS, ansible_playbook, node_name

HOST = "fleet-worker-gpu"


@pytest.fixture(scope="module")
def broken_deploy() -> Iterator[subprocess.CompletedProcess[str]]:
    # Deployed as declared again by test_stale's site.yml run, which follows (conftest.LEFT_BROKEN).
    LEFT_BROKEN.add(HOST)
    result = ansible_playbook(
        "playbooks/deploy-workers.yml",
        "-l",
        HOST,
        "-e",
        "celery_app_module=celery_demo.misspelt",
        "-e",
        "celery_worker_verify_retries=5",
    )
    yield result


def test_the_deploy_fails_naming_each_worker_with_its_log_and_the_cause(broken_deploy) -> None:
    output = broken_deploy.stdout + broken_deploy.stderr
    print(output[output.find("fatal:") :][:3000])
    assert broken_deploy.returncode != 0
    for worker in WORKERS[HOST]:
        assert f"worker '{worker['name']}' (node {node_name(worker, HOST)}): did not answer" in output
    assert "'celery_demo.misspelt' (celery_app_module) cannot be imported" in output
    assert "No module named 'celery_demo.misspelt'" in output
