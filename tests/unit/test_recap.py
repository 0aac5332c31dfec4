"""lib/celery_fleet/recap.py: the PLAY RECAP and the play and task sections the Molecule tests and
the benchmarks read."""

from __future__ import annotations

from celery_fleet.recap import changed_per_host, play_recap, play_section, slowest_tasks, task_section

OUTPUT = """\
PLAY [Deploy the Celery workers] ***********************************************

TASK [celery_worker : current | Compare the host with what its last converge left] ***
ok: [fleet-worker-gpu]

PLAY RECAP *********************************************************************
fleet-redis      : ok=3    changed=0    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
fleet-worker-gpu : ok=41   changed=2    unreachable=0    failed=0    skipped=12   rescued=0    ignored=1

Friday 04 December 2026  12:54:09 +0000 (0:00:00.025)       0:00:41.026 *******
===============================================================================
TASKS RECAP ********************************************************************
Friday 04 December 2026  12:54:09 +0000 (0:00:00.025)       0:00:41.026 *******
===============================================================================
celery_app : install | Install the app ---------------------------------- 9.50s
celery_worker : current | Compare the host ------------------------------ 1.20s
"""


def test_each_host_s_counts_from_the_recap():
    recap = play_recap(OUTPUT)

    assert list(recap) == ["fleet-redis", "fleet-worker-gpu"]
    assert recap["fleet-worker-gpu"] == {
        "ok": 41,
        "changed": 2,
        "unreachable": 0,
        "failed": 0,
        "skipped": 12,
        "rescued": 0,
        "ignored": 1,
    }
    assert changed_per_host(OUTPUT) == {"fleet-redis": 0, "fleet-worker-gpu": 2}


def test_the_last_recap_counts_and_a_run_without_one_has_none():
    earlier = OUTPUT.replace("changed=2", "changed=7").replace("fleet-redis", "old-host")

    assert changed_per_host(earlier + "\n" + OUTPUT) == {"fleet-redis": 0, "fleet-worker-gpu": 2}
    assert play_recap("ERROR! the playbook: site.yml could not be found\n") == {}
    # A host line is never taken from a task's output before the recap.
    assert play_recap("ok: [h] => ok=1 changed=1\n") == {}


def test_the_slowest_tasks_from_profile_tasks():
    assert slowest_tasks(OUTPUT) == [
        ("celery_app : install | Install the app", 9.5),
        ("celery_worker : current | Compare the host", 1.2),
    ]
    assert slowest_tasks(OUTPUT, count=1) == [("celery_app : install | Install the app", 9.5)]
    assert slowest_tasks("PLAY RECAP ***\nh : ok=1 changed=0\n") == []


SECTIONS = """\
PLAY [Deploy the Redis broker] *************************************************

TASK [redis : aof_switch | Switch the append-only file on in the running server] ***
changed: [redis-bookworm]
skipping: [redis-trixie]

TASK [redis : aof_switch | Stop when the running server refused the switch] ***
skipping: [redis-bookworm]

PLAY [Deploy the Celery app and its workers on every worker host at once] ******

TASK [celery_worker : current | Say why the host converges] ********************
ok: [fleet-worker-gpu] =>

PLAY RECAP *********************************************************************
"""


def test_a_task_section_ends_at_the_next_task_and_is_empty_when_the_task_did_not_print():
    switch = task_section(
        SECTIONS, "TASK [redis : aof_switch | Switch the append-only file on in the running server]"
    )

    assert "changed: [redis-bookworm]" in switch and "skipping: [redis-trixie]" in switch
    assert "Stop when" not in switch
    assert task_section(SECTIONS, "TASK [redis : aof | Switch the append-only file on live]") == ""


def test_a_play_section_ends_at_the_next_play_or_the_recap():
    redis = play_section(SECTIONS, "PLAY [Deploy the Redis broker]")
    workers = play_section(
        SECTIONS, "PLAY [Deploy the Celery app and its workers on every worker host at once]"
    )

    assert "Stop when the running server refused the switch" in redis and "celery_worker" not in redis
    assert "Say why the host converges" in workers and "aof_switch" not in workers
    assert task_section(workers, "TASK [celery_worker : current | Say why the host converges]").endswith(
        "=>\n"
    )
