"""What the authority benchmark prints: per app, create and refresh req/s, p99 and the ratio to
the floor; the verdicts of sessiond as shipped on the issue's targets; errors; CPU use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Final

from bench._authority_apps import FLOOR, OPERATIONS, App, Operation
from bench._report import cores, ms, table
from bench._rounds import Rounds
from bench._wrk import WrkResult

__all__ = ("MIN_RATE", "P99_AT_MOST", "Row", "Verdict", "table_lines", "verdicts")

#: sessiond as shipped must reach this multiple of the floor's req/s, create and refresh ...
MIN_RATE: Final = 0.7
#: ... with a p99 at most this multiple of the floor's.
P99_AT_MOST: Final = 4.0
SHIPPED = "shipped"


@dataclass
class Row:
    """One app's measurement: each operation's wrk runs, one per round."""

    app: App
    runs: dict[Operation, Rounds] = field(
        default_factory=lambda: {operation: Rounds() for operation in OPERATIONS}
    )


@dataclass(frozen=True)
class Verdict:
    """One target: ``got`` over the combined rounds, ``per_round`` within each round (the app
    and the floor measured seconds apart), ``at_most`` for a latency target."""

    what: str
    wanted: float
    got: float
    per_round: tuple[float, ...]
    at_most: bool = False

    @property
    def met(self) -> bool:
        return self.got <= self.wanted if self.at_most else self.got >= self.wanted

    def __str__(self) -> str:
        spread = f"rounds {min(self.per_round):.2f}-{max(self.per_round):.2f}; "
        bound = "<=" if self.at_most else ">="
        mark = "" if self.met else ": MISSED"
        return f"{self.what} {self.got:.2f}x floor ({spread}{bound} {self.wanted:g}x{mark})"


def _ratio(mine: float, floor: float) -> float:
    return mine / floor if floor > 0 else float("inf")


def _ratios(
    mine: Rounds, floor: Rounds, figure: Callable[[WrkResult], float]
) -> tuple[float, tuple[float, ...]]:
    """``figure`` of ``mine`` over the floor's: all rounds combined, and within each round."""
    rounds = zip(mine.runs, floor.runs, strict=True)
    per_round = tuple(_ratio(figure(a), figure(b)) for a, b in rounds)
    return _ratio(figure(mine.result), figure(floor.result)), per_round


def verdicts(rows: Sequence[Row], key: str = SHIPPED) -> list[Verdict]:
    """The targets of app ``key`` (sessiond as shipped) against the floor; none without both."""
    by_key = {row.app.key: row for row in rows}
    mine, floor = by_key.get(key), by_key.get(FLOOR)
    if mine is None or floor is None:
        return []
    found = []
    for operation in OPERATIONS:
        runs, floors = mine.runs[operation], floor.runs[operation]
        rate, rates = _ratios(runs, floors, attrgetter("rate"))
        found.append(Verdict(f"{operation} req/s", MIN_RATE, rate, rates))
        p99, p99s = _ratios(runs, floors, attrgetter("p99"))
        found.append(Verdict(f"{operation} p99", P99_AT_MOST, p99, p99s, at_most=True))
    return found


def table_lines(rows: Sequence[Row]) -> list[str]:
    """The results table, the targets, errors and CPU use."""
    floor = next((row for row in rows if row.app.key == FLOOR), None)
    header = ["app"]
    for operation in OPERATIONS:
        header += [f"{operation} req/s", "rounds", "p99 ms", "vs floor"]
    body = []
    for row in rows:
        cells = [row.app.label]
        for operation in OPERATIONS:
            runs = row.runs[operation]
            result, rates = runs.result, runs.rates
            base = floor.runs[operation].result.rate if floor is not None else 0.0
            cells += [
                f"{result.rate:.0f}",
                f"{min(rates):.0f}-{max(rates):.0f}",
                ms(result.p99, 1),
                f"{result.rate / base:.2f}x" if base > 0 else "-",
            ]
        body.append(cells)
    lines = table(header, body)
    marks = verdicts(rows)
    if marks:
        lines.append(f"  targets of sessiond as shipped: {', '.join(map(str, marks))}")
    errors = [
        f"  ERROR in {row.app.label}, {operation}: {error}"
        for row in rows
        for operation, runs in row.runs.items()
        for error in runs.result.errors
    ]
    lines += errors
    if errors:
        lines.append("  INVALID RUN: an app answered errors; its figures are not comparable.")
    lines.append("CPU used while measuring, in cores (1.00: one core busy all the time):")
    for row in rows:
        for operation, runs in row.runs.items():
            lines.append(f"  {row.app.key} {operation}: {cores(runs.cpu, runs.elapsed)}")
    return lines
