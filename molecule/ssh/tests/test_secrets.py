"""No password of the inventory and no TLS private key reaches a log, a command line, a unit or a
world-readable file.

Runs after the test files that use secrets (alphabetical order), so what the tests did is judged
too. Each place is searched for every password (and its URL-encoded form) and a line of the PEM
body of every private key of the run's throwaway CA (the CA's own, the broker's, Flower's, the
clients'); a failure names the place and the secret's name, never the secret.
"""

from __future__ import annotations

import re

import pytest
from conftest import ANSIBLE_LOG, HOST, check_output, grep_files, secrets

# What each place holds, read over SSH with sudo. Plain text the controller searches.
PLACES = {
    "journal (journalctl -o cat)": "journalctl -o cat --no-pager",
    # Every field of every entry, the _CMDLINE of whoever logged included.
    "journal (journalctl -o json)": "journalctl -o json --no-pager",
    "/var/log/auth.log": "cat /var/log/auth.log 2>/dev/null || true",
    "ps -eo args": "ps -eo args",
    "unit files and supervisor configuration": (
        "cat /etc/systemd/system/*.service /etc/systemd/system/*/*.conf /etc/supervisor/conf.d/*"
        " 2>/dev/null || true"
    ),
    # What any local user reads over D-Bus.
    "systemctl show (every unit)": "systemctl show '*' --all --no-pager 2>/dev/null",
}

# The world-readable files under these trees are searched on the host (the virtualenv alone is
# too big to copy), with the passwords given to grep on stdin. /home and /tmp: where Ansible's
# remote temporary files would go without pipelining.
TREES = ["/etc", "/opt", "/var/lib", "/var/log", "/run", "/home", "/tmp"]


def where(text: str, found: dict[str, str]) -> list[str]:
    return [name for name, value in found.items() if value in text]


def excerpts(text: str, found: dict[str, str], names: list[str]) -> str:
    """Up to three places per leaked password, the password masked, 100 characters either side."""
    lines = []
    for name in names:
        value = found[name]
        start = 0
        for _ in range(3):
            at = text.find(value, start)
            if at < 0:
                break
            before = text[max(0, at - 100) : at].replace("\n", " ")
            after = text[at + len(value) : at + len(value) + 100].replace("\n", " ")
            lines.append(f"{name}: ...{before}<{name}>{after}...")
            start = at + len(value)
    return "\n".join(lines)


@pytest.mark.parametrize("place", sorted(PLACES))
def test_no_password_on_the_host(place: str) -> None:
    text = check_output(PLACES[place], timeout=300)
    found = secrets()
    print(f"\n{place}: {len(text.splitlines())} lines searched for {len(found)} secrets")
    leaks = where(text, found)
    assert not leaks, f"passwords found in {place}:\n" + excerpts(text, found, leaks)


def test_no_password_in_a_world_readable_file() -> None:
    found = secrets()
    # grep -l prints file names only.
    result = grep_files(TREES, list(found.values()), "-l", "-perm -o=r")
    listing = check_output(
        f"n=$(find {' '.join(TREES)} -xdev -type f -perm -o=r 2>/dev/null | wc -l); echo $n"
    )
    print(f"\nworld-readable files under {', '.join(TREES)}: {listing.strip()} searched")
    assert int(listing) > 100, listing
    assert result.strip() == "", "world-readable files holding a secret:\n" + result


def test_no_password_in_the_verbose_output_of_the_runs() -> None:
    assert ANSIBLE_LOG.is_file(), f"{ANSIBLE_LOG} is missing: molecule.yml sets ANSIBLE_LOG_PATH"
    text = ANSIBLE_LOG.read_text(errors="replace")
    runs = len(re.findall(rf"^.*\| {re.escape(HOST)} +: ok=", text, re.M))
    results = len(re.findall(rf"^.*\| (ok|changed): \[{re.escape(HOST)}\] => ", text, re.M))
    print(
        f"\nansible-playbook -v log: {len(text.splitlines())} lines, {runs} runs on {HOST}, {results} results"
    )
    # At least the converge, with the task results -v shows.
    assert runs >= 1 and results > 100, "the log holds no verbose run of site.yml"
    found = secrets()
    leaks = where(text, found)
    assert not leaks, "passwords in the -v output of ansible-playbook:\n" + excerpts(text, found, leaks)
