#!/usr/bin/python
"""Module of roles/redis: the timed part of a planned switchover, run on the old master's host.

Why a module: the old master's writers wait (CLIENT PAUSE WRITE) from the moment the replicas must
catch up until the old master is a replica of the new one. As a chain of Ansible tasks that window
took 13-16 s of task overhead and polling on two shared cores, and once it outlived the pause
(20 s): the old master took writes again (the producer's catch-up burst, 519 tasks) that its resync
to the new master then threw away. Here every step is a redis-cli call a few milliseconds apart,
and the pause is renewed in short slices while the module lives, so it can end only when the old
master is a replica (or the module gives up and says so); if the module dies, the last slice ends
within PAUSE_MS.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: celery_fleet_redis_switchover
short_description: Move a Sentinel topology's master to a replica that has every write
description:
  - Pauses the old master's writers, waits until every online replica acknowledged the whole
    replication stream, asks a Sentinel to fail over, waits until that Sentinel names the new
    master, makes the old master its replica (REPLICAOF, CONFIG REWRITE), disconnects its clients
    and unpauses it. The pause is renewed every RENEW_S while the module waits.
  - Runs on the old master's host (delegate_to). Passwords reach redis-cli on its stdin only.
options:
  admin_cli:
    description: redis-cli's argv reaching the old master as its administrative user, ending with --askpass.
    type: list
    elements: str
    required: true
  admin_password:
    description: That user's password.
    type: str
    required: true
    no_log: true
  sentinel_cli:
    description: redis-cli's argv reaching a Sentinel, ending with --askpass (-h <address> follows).
    type: list
    elements: str
    required: true
  sentinel_password:
    description: The Sentinels' password.
    type: str
    required: true
    no_log: true
  sentinels:
    description: The Sentinels' addresses, asked in this order.
    type: list
    elements: str
    required: true
  master_name:
    description: The name the Sentinels monitor the master under.
    type: str
    required: true
  master:
    description: The old master as the Sentinels name it, "ip port".
    type: str
    required: true
  timeout_ms:
    description: How long the old master's writers may wait in all; past it the module unpauses and fails.
    type: int
    required: true
"""

RETURN = r"""
new_master:
  description: The new master, [ip, port].
  type: list
  returned: success
paused_s:
  description: How long the old master's writers waited.
  type: float
  returned: always
steps_s:
  description: Seconds from the pause to each step (in_sync, failover_asked, new_master_named, repointed).
  type: dict
  returned: always
"""

# Each renewal pauses for PAUSE_MS; renewed every RENEW_S while waiting (a slice ends at most
# PAUSE_MS after the module stopped renewing it), polled every POLL_S.
PAUSE_MS = 2000
RENEW_S = 0.5
POLL_S = 0.05

Run = Callable[[Sequence[str], str], str]


class SwitchoverError(Exception):
    """A step that did not happen; the old master is unpaused."""


def replication(info: str) -> tuple[int, list[dict[str, str]]]:
    """master_repl_offset and the replicas (fields ip, port, state, offset, lag) of INFO replication."""
    fields = {}
    for line in info.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key] = value
    replicas = [
        dict(item.partition("=")[::2] for item in value.split(","))
        for key, value in fields.items()
        if key.startswith("slave") and key[5:].isdigit()
    ]
    return int(fields.get("master_repl_offset", "-1")), replicas


def run_cli(argv: Sequence[str], password: str) -> str:
    """redis-cli with ``argv`` (ending with the command), the password on stdin; its output."""
    result = subprocess.run(
        list(argv), input=password + "\n", capture_output=True, text=True, timeout=10, check=False
    )
    return (result.stdout + result.stderr).strip()


class Switchover:
    """The steps, over a redis-cli runner and a clock (both replaced in the unit tests)."""

    def __init__(
        self,
        params: dict[str, Any],
        run: Run = run_cli,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.p = params
        self.run, self.clock, self.sleep = run, clock, sleep
        self.old = params["master"].split()
        self.started = self.renewed = 0.0
        self.deadline = 0.0
        self.steps: dict[str, float] = {}

    def admin(self, *words: str) -> str:
        return self.run([*self.p["admin_cli"], *words], self.p["admin_password"])

    def sentinel(self, address: str, *words: str) -> str:
        return self.run([*self.p["sentinel_cli"], "-h", address, *words], self.p["sentinel_password"])

    def pause(self) -> None:
        reply = self.admin("CLIENT", "PAUSE", str(PAUSE_MS), "WRITE")
        if reply != "OK":
            raise SwitchoverError(f"CLIENT PAUSE answered {reply!r}")
        self.renewed = self.clock()

    def step(self, name: str) -> None:
        self.steps[name] = round(self.clock() - self.started, 3)

    def wait(self, what: str, found: Callable[[], Any]) -> Any:
        """Poll ``found`` until it returns something, renewing the pause; give up at the deadline."""
        while True:
            value = found()
            if value:
                return value
            if self.clock() >= self.deadline:
                raise SwitchoverError(f"no {what} within {self.p['timeout_ms']} ms")
            if self.clock() - self.renewed >= RENEW_S:
                self.pause()
            self.sleep(POLL_S)

    def in_sync(self) -> list[dict[str, str]] | None:
        offset, replicas = replication(self.admin("INFO", "replication"))
        online = [r for r in replicas if r.get("state") == "online"]
        if online and all(r.get("offset") == str(offset) for r in online):
            return online
        return None

    def ask_failover(self) -> str:
        replies = {}
        for address in self.p["sentinels"]:
            replies[address] = self.sentinel(address, "SENTINEL", "FAILOVER", self.p["master_name"])
            if replies[address] == "OK":
                return address
        raise SwitchoverError(f"no Sentinel started a failover: {replies}")

    def named(self, address: str) -> list[str] | None:
        reply = self.sentinel(address, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.p["master_name"]).split()
        return reply if len(reply) == 2 and reply != self.old else None

    def __call__(self) -> list[str]:
        self.started = self.clock()
        self.deadline = self.started + self.p["timeout_ms"] / 1000
        self.pause()
        try:
            self.wait("online replica with every write (every online one in sync)", self.in_sync)
            self.step("in_sync")
            asked = self.ask_failover()
            self.step("failover_asked")
            new = self.wait(f"new master named by the Sentinel at {asked}", lambda: self.named(asked))
            self.step("new_master_named")
            # The old master first follows the new one (its paused writers then get READONLY or
            # UNBLOCKED: kombu asks the Sentinels again), then lets them go. CLIENT KILL skips the
            # connection that sends it.
            for words, ok in (
                (("REPLICAOF", *new), "OK"),
                (("CONFIG", "REWRITE"), "OK"),
                (("CLIENT", "KILL", "TYPE", "normal"), None),
                (("CLIENT", "KILL", "TYPE", "pubsub"), None),
            ):
                reply = self.admin(*words)
                if ok and reply != ok:
                    raise SwitchoverError(f"{' '.join(words[:2])} answered {reply!r}")
            self.step("repointed")
        except BaseException:
            self.admin("CLIENT", "UNPAUSE")
            raise
        self.admin("CLIENT", "UNPAUSE")
        return new

    @property
    def paused_s(self) -> float:
        return round(self.clock() - self.started, 3)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "admin_cli": {"type": "list", "elements": "str", "required": True},
            "admin_password": {"type": "str", "required": True, "no_log": True},
            "sentinel_cli": {"type": "list", "elements": "str", "required": True},
            "sentinel_password": {"type": "str", "required": True, "no_log": True},
            "sentinels": {"type": "list", "elements": "str", "required": True},
            "master_name": {"type": "str", "required": True},
            "master": {"type": "str", "required": True},
            "timeout_ms": {"type": "int", "required": True},
        },
        supports_check_mode=False,
    )
    switchover = Switchover(module.params)
    try:
        new = switchover()
    except (SwitchoverError, subprocess.TimeoutExpired) as error:
        late = (
            " A Sentinel had accepted the failover: if the Sentinels still promote a replica, what the old "
            "master takes until it follows the new one is lost."
            if "failover_asked" in switchover.steps
            else ""
        )
        module.fail_json(
            msg=f"The switchover stopped, the old master is unpaused: {error}.{late} Ask the Sentinels "
            "which master they name (playbooks/verify.yml) before trying again.",
            paused_s=switchover.paused_s,
            steps_s=switchover.steps,
        )
    module.exit_json(changed=True, new_master=new, paused_s=switchover.paused_s, steps_s=switchover.steps)


if __name__ == "__main__":
    main()
