"""Redis Sentinel pieces of roles/redis that are logic, not rendering (issue 16).

- :func:`quorum`: the quorum the Sentinels are given (0 declared: a majority of them).
- :func:`current_master`: the master of the fleet, from what every Sentinel answered to
  ``SENTINEL GET-MASTER-ADDR-BY-NAME``; the declared initial master only when no Sentinel answered,
  an error when a Sentinel refused every password tried.
- :func:`peer_addresses`: the address other hosts use for each host of a group.
- :func:`replication_info`: a data node's ``INFO replication`` as data (the switchover's checks and
  the verify play's report).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from celery_fleet.errors import FleetError, Problem


def quorum(declared: Any, sentinels: int) -> int:
    """``declared`` (0 or unset: a majority of ``sentinels``)."""
    value = int(declared or 0)
    return value if value > 0 else sentinels // 2 + 1


def parse_answer(stdout: Any) -> tuple[str, int] | None:
    """The (address, port) of one ``redis-cli SENTINEL GET-MASTER-ADDR-BY-NAME`` output, else None.

    redis-cli exits 0 on error replies (NOAUTH, an unknown master name): only two lines, an address
    and a port, count as an answer.
    """
    lines = [line.strip() for line in str(stdout or "").splitlines() if line.strip()]
    if len(lines) != 2 or not lines[1].isdigit() or " " in lines[0]:
        return None
    return lines[0], int(lines[1])


# What redis-cli prints (stdout or stderr) when a server refuses the password it was given. Not
# NOAUTH or "AUTH failed" alone: a Sentinel that Debian's package started with its own default file
# (no password yet: the first deployment) answers AUTH with "ERR AUTH <password> called without any
# password configured" and the command with DENIED (protected mode): no Sentinel of the fleet yet.
REFUSALS = ("WRONGPASS", "invalid username-password pair")


def refused(text: Any) -> bool:
    """Whether one redis-cli output says the server refused its password (not: did not answer)."""
    return any(marker in str(text or "") for marker in REFUSALS)


def _per_sentinel(answers: Iterable[Any]) -> tuple[list[str], list[str]]:
    """(one answer per Sentinel, the Sentinels that refused every password tried).

    An element of ``answers`` is a registered loop result (``stdout``, ``stderr`` and ``item`` =
    [Sentinel, index of the password tried]), or a bare stdout (Sentinel number n). A Sentinel may
    have been asked with several passwords (a rotation of redis_sentinel_password): its first
    parsable answer counts.
    """
    tries: dict[str, list[Mapping[str, Any]]] = {}
    for n, answer in enumerate(answers):
        if not isinstance(answer, Mapping):
            answer = {"stdout": answer, "item": [f"Sentinel {n + 1}", 0]}
        item = answer.get("item")
        name = item[0] if isinstance(item, list | tuple) and item else item
        tries.setdefault(str(name if name is not None else f"Sentinel {n + 1}"), []).append(answer)
    answered, refusing = [], []
    for name, results in tries.items():
        parsed = next((str(r.get("stdout")) for r in results if parse_answer(r.get("stdout"))), "")
        answered.append(parsed)
        if not parsed and all(refused(f"{r.get('stdout') or ''}\n{r.get('stderr') or ''}") for r in results):
            refusing.append(name)
    return answered, refusing


def current_master(answers: Iterable[Any], sentinels: int, fallback: Mapping[str, Any]) -> dict[str, Any]:
    """The current master: ``{"address", "port", "source"}``.

    ``answers``: each Sentinel's answer (unreachable ones included, as ""), out of ``sentinels``
    declared: its stdout, or the registered results of asking it (:func:`_per_sentinel`). The
    address named by more than half of the Sentinels that answered wins (source ``sentinel``):
    while the Sentinels are deployed one at a time, only those already running answer. No answer
    at all means no Sentinel runs yet (first deployment): the ``fallback`` (the declared initial
    master, source ``initial``). Answers without such a majority (a failover in progress, a split)
    raise: the role must not pick a master then. So does a Sentinel that refuses every password
    tried: taking its refusal for "no Sentinel runs yet" would put the initial master back in
    charge after a failover moved the master (redis_sentinel_password changed in one step).
    """
    answers, refusing = _per_sentinel(answers)
    if refusing:
        raise FleetError(
            [
                Problem(
                    "redis_sentinel_password",
                    f"the Sentinel(s) on {', '.join(refusing)} refuse it (and every password of "
                    "redis_sentinel_previous_passwords): nothing was changed. To change the "
                    "Sentinels' password, rotate it in two runs: the new one as "
                    "redis_sentinel_password with the old one in redis_sentinel_previous_passwords, "
                    'then empty the list (roles/redis/README.md, "Rotating the Sentinels\' password")',
                )
            ]
        )
    parsed = [a for a in map(parse_answer, answers) if a is not None]
    if not parsed:
        return {"address": str(fallback["address"]), "port": int(fallback["port"]), "source": "initial"}
    (address, port), votes = Counter(parsed).most_common(1)[0]
    if votes * 2 > len(parsed):
        return {"address": address, "port": port, "source": "sentinel"}
    seen = ", ".join(f"{a}:{p} ({n})" for (a, p), n in Counter(parsed).most_common())
    raise FleetError(
        [
            Problem(
                "redis_sentinel_master_name",
                f"no master named by a majority of the Sentinels that answered (answers: {seen}; "
                f"{sentinels - len(parsed)} of {sentinels} gave none): a failover may be running, or the "
                "Sentinels are split. Nothing was changed; re-run once SENTINEL CKQUORUM answers OK",
            )
        ]
    )


def peer_addresses(
    hosts: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]], strict: bool = True
) -> dict[str, str]:
    """Host -> the address other hosts use for it.

    ``redis_announce_address`` when the host's inventory sets it, else ``celery_fleet_private_address``,
    else its default IPv4 address from its facts (the role's default for redis_announce_address).
    A host without any raises, unless ``strict`` is false (then it is left out: the role gathers
    its facts and asks again).
    """
    addresses = {}
    missing = []
    for host in hosts:
        try:
            address = _address(hostvars.get(host, {}))
        except Exception:  # an address templated from facts not gathered yet (Ansible's undefined)
            if strict:
                raise
            address = None
        if address:
            addresses[host] = str(address)
        else:
            missing.append(host)
    if missing and strict:
        raise FleetError(
            [
                Problem(
                    "redis_announce_address",
                    f"no address for {', '.join(missing)}: set celery_fleet_private_address (or "
                    "redis_announce_address) in the inventory, or gather their facts",
                )
            ]
        )
    return addresses


def _address(variables: Mapping[str, Any]) -> Any:
    facts = variables.get("ansible_facts", {}) or {}
    return (
        variables.get("redis_announce_address")
        or variables.get("celery_fleet_private_address")
        or (facts.get("default_ipv4") or {}).get("address")
    )


def replication_info(stdout: Any) -> dict[str, Any]:
    """``INFO replication`` of a data node: role, master offset, replicas and those fully in sync.

    ``{"role": "master", "master_repl_offset": 1234, "replicas": [{"ip", "port", "state", "offset",
    "lag"}...], "in_sync": [...]}``: a replica is in sync when it is online and acknowledged the
    master's whole replication stream (its offset equals ``master_repl_offset``). A replica adds
    ``master_host``, ``master_port`` and ``master_link_status``.
    """
    fields: dict[str, str] = {}
    for line in str(stdout or "").splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and not key.startswith("#"):
            fields[key] = value
    info: dict[str, Any] = {"role": fields.get("role", ""), "replicas": [], "in_sync": []}
    info["master_repl_offset"] = int(fields.get("master_repl_offset", "0") or 0)
    for key in ("master_host", "master_port", "master_link_status"):
        if key in fields:
            info[key] = fields[key]
    for key, value in fields.items():
        if not (key.startswith("slave") and key[5:].isdigit()):
            continue
        replica: dict[str, Any] = dict(item.partition("=")[::2] for item in value.split(","))
        for number in ("port", "offset", "lag"):
            try:
                replica[number] = int(replica.get(number, -1))
            except ValueError:
                replica[number] = -1
        behind = info["master_repl_offset"] - replica["offset"]
        replica["summary"] = (
            f"{replica.get('ip', '?')}:{replica['port']} {replica.get('state', '?')}, last acknowledgement "
            f"{replica['lag']} s ago, {behind} bytes behind"
        )
        info["replicas"].append(replica)
        if replica.get("state") == "online" and replica["offset"] == info["master_repl_offset"]:
            info["in_sync"].append(replica)
    return info
