"""bench/cpu_by_command.py: dump-acct's records summed by command and by kind."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import cpu_by_command as cpu

# dump-acct's fields (acct 6.6, v3 records; it pads them with spaces): command, version, utime, stime
# and etime in ticks of 1/100 s, uid, gid, memory, io, pid, ppid, flags (F: forked without exec), ...
# The last line is not a record.
DUMP = """\
ansible-playboo|v3|20.00|5.00|300.00|0|0|90000.00|0.00|1001|900|F|0|__|Fri Dec  4 18:30:00 2026
ansible-playboo|v3|150.00|50.00|12000.00|0|0|120000.00|0.00|900|899||0|__|Fri Dec  4 18:30:00 2026
python3.11|v3|20.00|4.00|50.00|0|0|30000.00|0.00|1002|1000||0|__|Fri Dec  4 18:30:00 2026
python3|v3|21.00|6.00|60.00|0|0|30000.00|0.00|1003|1000||0|__|Fri Dec  4 18:30:00 2026
celery|v3|180.00|20.00|40000.00|998|998|60000.00|0.00|1004|1||0|__|Fri Dec  4 18:30:00 2026
docker|v3|1.00|1.00|30.00|0|0|300000.00|0.00|1005|900||0|__|Fri Dec  4 18:30:00 2026
apt-get|v3|60.00|10.00|200.00|0|0|4000.00|0.00|1006|1000||0|__|Fri Dec  4 18:30:00 2026
sh|v3|0.00|0.00|1.00|0|0|600.00|0.00|1007|1000||0|__|Fri Dec  4 18:30:00 2026
not a record
"""


def test_parse_reads_cpu_seconds_and_marks_forks() -> None:
    records = cpu.parse(DUMP.splitlines())

    assert len(records) == 8
    assert records[0] == cpu.Record("ansible-playboo*", 0.25)
    assert records[1] == cpu.Record("ansible-playboo", 2.0)
    assert records[4] == cpu.Record("celery", 2.0)


def test_kinds_tell_the_controller_from_the_hosts() -> None:
    assert cpu.kind("ansible-playboo*").startswith("Ansible controller: worker")
    assert cpu.kind("ansible-playboo").startswith("Ansible controller: ansible-playbook")
    assert cpu.kind("python3.11").startswith("Python on the hosts")
    assert cpu.kind("python3").startswith("Python on the hosts")
    assert cpu.kind("celery*").startswith("Celery")
    assert cpu.kind("containerd-shim").startswith("Docker")
    assert cpu.kind("dpkg-deb*").startswith("Packages")
    assert cpu.kind("bio_aof_fsync").startswith("Redis")
    assert cpu.kind("sh") == "Other"


def test_summary_shares_add_up_and_rank_the_commands() -> None:
    text = cpu.summary(cpu.parse(DUMP.splitlines()), top=3)

    # 5.48 CPU-s: ansible-playbook 2.0 and celery 2.0 (36 % each), the modules' Python 0.51 (9 %).
    assert text.startswith("8 processes, 5 CPU-s accounted")
    assert "| Ansible controller: ansible-playbook | 2 | 36 % |" in text
    assert "| Python on the hosts: modules and the app's scripts | 1 | 9 % |" in text
    assert "| Ansible controller: worker per task and host | 0 | 5 % |" in text
    commands = [line for line in text.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in commands] == ["ansible-playboo", "celery", "apt-get"]


def test_a_run_forked_by_the_kept_server_is_an_ansible_playbook_not_a_task_process() -> None:
    dump = """\
kept-playbook|v3|70.00|5.00|90000.00|0|0|90000.00|0.00|2000|1||0|__|Fri Dec  4 18:30:00 2026
ansible-playboo|v3|20.00|5.00|300.00|0|0|90000.00|0.00|2002|2001|F|0|__|Fri Dec  4 18:30:00 2026
ansible-playboo|v3|30.00|0.00|900.00|0|0|90000.00|0.00|2001|2000|F|0|__|Fri Dec  4 18:30:00 2026
ansible-playboo|v3|3.00|0.00|10.00|0|0|90000.00|0.00|2003|1999||0|__|Fri Dec  4 18:30:00 2026
"""
    records = cpu.parse(dump.splitlines())

    # The server, its run (parent 2000, the server), the run's task process, a client.
    assert [r.command for r in records] == [
        "kept-playbook",
        "ansible-playboo*",
        "ansible-playboo (kept)",
        "ansible-playboo",
    ]
    assert cpu.kind("ansible-playboo (kept)").startswith("Ansible controller: ansible-playbook")
    assert cpu.kind("kept-playbook").startswith("Ansible controller: ansible-playbook")
