#!/usr/bin/env python3
"""Fail when a secret is committed in clear text.

Checks every file git tracks (or every file under the given paths):
- vault files (`vault.yml`, `vault_<topic>.yml`) must be Ansible Vault encrypted;
- no vault password file (`vault-password.txt`, `.vault_pass`, ...), the sandbox's included: it is
  made on each checkout (`make sandbox-vault`) and git ignores it;
- no private keys;
- no literal password/secret/token values outside Molecule scenarios and unit tests, whose
  throwaway credentials exist only inside test containers. Values that are Jinja expressions
  (`{{ vault_... }}`) are references, not secrets.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)
    \b[\w-]*(password|passwd|secret|token|requirepass)[\w-]*\b \s* [:=] \s*
    (?P<value>["']?[^\s"'#{}()\[\],]{8,}["']?) \s* (?:\#.*)? $
    """
)
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
TEST_PATHS = ("molecule/", "tests/")
VAULT_FILE = re.compile(r"vault(_[\w-]+)?\.ya?ml")
VAULT_PASSWORD_FILE = re.compile(r"(?i)\.?vault[-_.]?pass(word)?([-_.][\w.-]*)?")
SKIP_SUFFIXES = (".png", ".whl", ".gz")


def tracked_files(paths: list[str]) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--", *paths], capture_output=True, text=True, check=False)
    if out.returncode != 0:  # not a git checkout: scan the tree
        roots = [Path(p) for p in paths] or [Path(".")]
        return [f for r in roots for f in r.rglob("*") if f.is_file() and ".venv" not in f.parts]
    return [Path(line) for line in out.stdout.splitlines() if line]


def is_reference(value: str, line: str) -> bool:
    """A value that points at a secret (a path, a vault variable, a lookup) rather than being one."""
    value = value.strip("\"'")
    return value.startswith(("/", "~", "./", "$")) or "lookup(" in line or "vault_" in line


def problems_in(path: Path) -> list[str]:
    if path.suffix in SKIP_SUFFIXES or not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    found: list[str] = []
    if VAULT_FILE.fullmatch(path.name) and not text.startswith("$ANSIBLE_VAULT;"):
        found.append(f"{path}: vault file is not encrypted (ansible-vault encrypt {path})")
    if VAULT_PASSWORD_FILE.fullmatch(path.name):
        found.append(f"{path}: a vault password in the repository opens its vault: keep it out of git")
    if PRIVATE_KEY.search(text):
        found.append(f"{path}: contains a private key")
    if str(path).startswith(TEST_PATHS) or path.name == "scan-secrets.py":
        return found
    for number, line in enumerate(text.splitlines(), start=1):
        match = SECRET_ASSIGNMENT.search(line)
        if match and not is_reference(match.group("value"), line):
            found.append(f"{path}:{number}: literal secret value: {line.strip()[:80]}")
    return found


def main(argv: list[str]) -> int:
    problems = [p for f in tracked_files(argv) for p in problems_in(f)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"scan-secrets: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
