"""Where a run's CPU went, by command: a reader of Linux process accounting (acct's ``dump-acct``).

The kernel writes one record per process when it exits, with its user and system time, also for
processes in containers (a child PID namespace's processes are accounted in the host's file too).
So a `make test` under accounting says which programs spent the two cores: the Ansible controller,
the modules' Python in the containers, the services, Docker. What never exits while accounting is
on (dockerd, containerd, kernel threads) is not in the file.

    apt-get install acct && accton /var/tmp/suite.pacct
    make test; accton off
    .venv/bin/python bench/cpu_by_command.py /var/tmp/suite.pacct

Figures of 2026-12-04 (a clean-clone `make test` of 30a911b): bench/results/2026-12-04e-suite-cpu.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# dump-acct's clock ticks per second (AHZ); its time fields count ticks.
TICKS = 100
# A command name (the kernel keeps its first 15 characters) -> what it is, for the summary. A
# forked child that did not exec keeps its parent's name (dump-acct flags it F): an Ansible worker
# is "ansible-playboo" + F, one per task and host (unless its parent is no ansible-playbook: parse).
KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Ansible controller: worker per task and host", re.compile(r"^ansible-playboo\*$")),
    (
        "Ansible controller: ansible-playbook",
        re.compile(
            r"^(ansible-(playboo|galaxy|config|vault|doc|invento)|ansible-playboo \(kept\)|kept-playbook)$"
        ),
    ),
    ("Python on the hosts: modules and the app's scripts", re.compile(r"^python(3(\.\d+)?)?\*?$")),
    ("Celery: workers, beat, Flower, the celery CLI", re.compile(r"^celery\*?$")),
    ("Docker: docker CLI, containerd-shim, runc", re.compile(r"^(docker|containerd-shim|runc|exe)\*?$")),
    ("Packages: apt, dpkg, pip", re.compile(r"^(apt|dpkg|pip|deb-|py3compile)")),
    # Redis's background threads exit with their own names (bio_*, jemalloc_bg_thd, io_thd_*).
    ("Redis and Sentinel", re.compile(r"^(redis-|valkey-|bio_|jemalloc_bg_thd|io_thd)")),
    ("Test and lint tools", re.compile(r"^(pytest|molecule|ansible-lint|yamllint|ruff)\*?$")),
)


@dataclass(frozen=True)
class Record:
    command: str  # the command name, with * when the process forked without exec
    cpu_s: float  # user + system seconds


def parse(lines: Iterable[str]) -> list[Record]:
    """Records of dump-acct's text: ``command|v3|utime|stime|etime|uid|gid|mem|io|pid|ppid|flags|...``."""
    records = []
    links = []  # (pid, ppid) of each record
    for line in lines:
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 12 or not fields[0]:
            continue
        try:
            cpu = (float(fields[2]) + float(fields[3])) / TICKS
        except ValueError:
            continue
        forked = "F" in fields[11]
        records.append(Record(fields[0] + ("*" if forked else ""), cpu))
        links.append((fields[9], fields[10]))
    # The harness's kept server (molecule/resources/kept_playbook.py, command name kept-playbook)
    # forks each run, which renames itself ansible-playboo: a forked ansible-playboo whose parent is
    # no ansible-playbook process is such a run's main process, not a task process.
    players = {
        pid for r, (pid, _) in zip(records, links, strict=True) if r.command.rstrip("*") == "ansible-playboo"
    }
    return [
        Record("ansible-playboo (kept)", r.cpu_s)
        if r.command == "ansible-playboo*" and ppid not in players
        else r
        for r, (_, ppid) in zip(records, links, strict=True)
    ]


def kind(command: str) -> str:
    return next((name for name, pattern in KINDS if pattern.search(command)), "Other")


def summary(records: list[Record], top: int = 15) -> str:
    """A table by kind, then the commands that spent the most."""
    total = sum(r.cpu_s for r in records) or 1.0
    by_kind: Counter[str] = Counter()
    by_command: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for r in records:
        by_kind[kind(r.command)] += r.cpu_s
        by_command[r.command] += r.cpu_s
        count[r.command] += 1
    lines = [
        f"{len(records)} processes, {total:.0f} CPU-s accounted",
        "",
        "| kind | CPU-s | share |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {cpu:.0f} | {100 * cpu / total:.0f} % |" for name, cpu in by_kind.most_common()]
    lines += [
        "",
        "| command | processes | CPU-s | share | CPU-s per process |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| `{name}` | {count[name]} | {cpu:.0f} | {100 * cpu / total:.1f} % | {cpu / count[name]:.2f} |"
        for name, cpu in by_command.most_common(top)
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pacct", help="the process accounting file accton wrote")
    parser.add_argument("--top", type=int, default=15, help="commands listed (default 15)")
    args = parser.parse_args()
    dump = subprocess.run(["dump-acct", args.pacct], capture_output=True, text=True, check=True)
    print(summary(parse(dump.stdout.splitlines()), args.top))


if __name__ == "__main__":
    main()
