#!/usr/bin/python
"""Module of roles/redis: one redis-cli command asked of several servers in one module run.

Why a module: the role asks every Sentinel which data node is the master on each data node and each
Sentinel of every run (tasks/master.yml), and every Sentinel for its quorum (tasks/status.yml). As
a loop of ``command`` tasks each question was a module run of its own on the host (a Python process,
~0.25 CPU-s there, and a forked worker on the controller): nine of them per data node and run with
three Sentinels, where the redis-cli calls themselves take milliseconds. Here they run in one
process, concurrently (each bounded by the ``timeout`` of the given argv), and come back in the
shape a loop registers, so the rules reading them (lib/celery_fleet/sentinel.py) are unchanged.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: celery_fleet_redis_ask
short_description: Ask several Redis servers or Sentinels the same command, each with every password given
description:
  - Runs C(cli) + C(-h <address>) + C(command) once per server and password, the password on
    redis-cli's stdin only (C(cli) ends with --askpass), never in an argv or the environment.
  - Returns one result per server and password, in the order of I(servers) then I(passwords), shaped
    as a registered loop's results (item = [server's name, password's index]).
  - Changes nothing; a server that does not answer is a result with a non-zero rc, not a failure.
options:
  cli:
    description: redis-cli's argv up to the address, ending with --askpass (a C(timeout) prefix bounds it).
    type: list
    elements: str
    required: true
  servers:
    description: The servers asked, by name (what the results call them), in this order.
    type: list
    elements: str
    required: true
  addresses:
    description: Each server's address (host name or IP) by name; one of I(servers) missing fails the task.
    type: dict
    required: true
  command:
    description: The command and its arguments.
    type: list
    elements: str
    required: true
  passwords:
    description: The passwords tried, each on every server.
    type: list
    elements: str
    required: true
    no_log: true
"""

RETURN = r"""
results:
  description: One per server and password; item ([name, password's index]), rc, stdout, stderr, stdout_lines.
  type: list
  elements: dict
  returned: always
"""

# At most this many redis-cli processes at once (the role asks three to five Sentinels).
WORKERS = 8
# A bound of its own for a call whose argv has none (the role's carries `timeout 5`).
CALL_TIMEOUT_S = 15

Run = Callable[[Sequence[str], str], tuple[int, str, str]]


def run_cli(argv: Sequence[str], password: str) -> tuple[int, str, str]:
    """redis-cli with ``argv``, the password on stdin: (rc, stdout, stderr)."""
    try:
        done = subprocess.run(
            list(argv),
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, "", f"no answer within {CALL_TIMEOUT_S} s"
    except OSError as exc:
        return 127, "", str(exc)
    return done.returncode, done.stdout, done.stderr


def ask(
    cli: Sequence[str],
    servers: Sequence[str],
    addresses: Mapping[str, str],
    command: Sequence[str],
    passwords: Sequence[str],
    run: Run = run_cli,
) -> list[dict[str, Any]]:
    """Every (server, password) asked, concurrently; the results in the order of the questions."""
    questions = [
        ([server, index], [*cli, "-h", str(addresses[server]), *command], password)
        for server in servers
        for index, password in enumerate(passwords)
    ]
    if not questions:
        return []
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(questions))) as pool:
        answers = list(pool.map(lambda q: run(q[1], q[2]), questions))
    results = []
    for (item, _argv, _password), (rc, stdout, stderr) in zip(questions, answers, strict=True):
        # What redis-cli printed, never the password (it only went to stdin): safe to return.
        stdout, stderr = stdout.rstrip("\n"), stderr.rstrip("\n")
        results.append(
            {"item": item, "rc": rc, "stdout": stdout, "stderr": stderr, "stdout_lines": stdout.splitlines()}
        )
    return results


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "cli": {"type": "list", "elements": "str", "required": True},
            "servers": {"type": "list", "elements": "str", "required": True},
            "addresses": {"type": "dict", "required": True},
            "command": {"type": "list", "elements": "str", "required": True},
            "passwords": {"type": "list", "elements": "str", "required": True, "no_log": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    missing = [name for name in params["servers"] if name not in params["addresses"]]
    if missing:
        module.fail_json(msg=f"servers: no address for {', '.join(missing)}")
    asked = ask(params["cli"], params["servers"], params["addresses"], params["command"], params["passwords"])
    module.exit_json(changed=False, results=asked)


if __name__ == "__main__":
    main()
