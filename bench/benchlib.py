"""The small framework of the benchmarks: samples, paired ratios, targets, tables and charts.

Every figure is a median of >= 3 repetitions with its range. A ratio is computed per repetition
from two measurements taken side by side (A then B, alternating which goes first), and the
report gives the median of those per-repetition ratios with their range: a drift of the machine
between repetitions moves both sides of a pair together.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    """Repeated measurements of one quantity."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def show(self, digits: int = 2) -> str:
        if not self.values:
            return "n/a"
        if len(self.values) == 1:
            return f"{self.values[0]:.{digits}f}"
        # An en dash: the range reads as one, and no minus sign is confused with it.
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}–{self.high:.{digits}f})"  # noqa: RUF001


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> Sample:
    """Per-repetition ratios numerator[i] / denominator[i]."""
    return Sample([a / b for a, b in zip(numerators, denominators, strict=True) if b])


@dataclass
class Target:
    """A target of issue 9 checked against a measured median."""

    label: str
    value: float
    limit: float
    at_least: bool  # True: value >= limit passes; False: value <= limit passes
    gated: bool = True

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def row(self) -> list[str]:
        sign = "≥" if self.at_least else "≤"
        verdict = ("**met**" if self.met else "**MISSED**") if self.gated else "reported, not gated"
        return [self.label, f"{self.value:.2f}", f"{sign} {self.limit:g}", verdict]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def targets_table(targets: Sequence[Target]) -> str:
    return table(["Target", "Measured (median)", "Limit", "Verdict"], [t.row() for t in targets])


def bar_chart(path: Path, title: str, labels: Sequence[str], samples: Sequence[Sample], ylabel: str) -> None:
    """Bars at the median, whiskers spanning the range of the repetitions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    medians = [s.median for s in samples]
    err = [[s.median - s.low for s in samples], [s.high - s.median for s in samples]]
    ax.bar(range(len(labels)), medians, yerr=err, capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels, rotation=15, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def line_chart(
    path: Path,
    title: str,
    series: dict[str, tuple[Sequence[float], Sequence[Sample]]],
    xlabel: str,
    ylabel: str,
    hlines: dict[str, float] | None = None,
) -> None:
    """One line per series (x values, samples at each x), medians with range whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (xs, samples) in series.items():
        medians = [s.median for s in samples]
        err = [[s.median - s.low for s in samples], [s.high - s.median for s in samples]]
        ax.errorbar(xs, medians, yerr=err, marker="o", capsize=3, label=name)
    for name, y in (hlines or {}).items():
        ax.axhline(y, linestyle="--", color="grey", label=name)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
