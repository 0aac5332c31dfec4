"""The one error type of celery_fleet: a list of problems, each naming the worker, host and field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the fleet description.

    ``worker`` is the worker's name (or ``#<index>`` when it has none), ``host`` the inventory
    host it was declared for (unknown to the per-worker checks, added by the fleet validation),
    ``field`` the variable or worker field at fault and ``detail`` what is wrong and what is allowed.
    """

    field: str
    detail: str
    worker: str | None = None
    host: str | None = None

    def on_host(self, host: str) -> Problem:
        return Problem(self.field, self.detail, self.worker, host)

    def __str__(self) -> str:
        where = []
        if self.worker is not None:
            where.append(
                f"worker {self.worker}" if self.worker.startswith("#") else f"worker '{self.worker}'"
            )
        if self.host is not None:
            where.append(f"host '{self.host}'")
        prefix = " on ".join(where)
        head = f"{prefix}: " if prefix else ""
        return f"{head}field '{self.field}': {self.detail}"


class FleetError(ValueError):
    """A worker spec or fleet description is invalid; ``problems`` lists every reason, one a line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
