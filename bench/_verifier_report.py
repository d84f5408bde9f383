"""What the verifier benchmark prints: the results table with each sessiond
app's verdict on the issue's targets, errors and the CPU footer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from bench._report import cores, ms, table
from bench._rounds import Rounds
from bench._verifier_apps import App

__all__ = ("TARGETS", "Row", "Verdict", "table_lines", "verdicts")

#: (b) must reach this multiple of each app's req/s.
TARGETS: Final = {"a": 0.9, "d": 3.0, "e": 4.0, "f": 4.0}


@dataclass
class Row:
    """One app's measurement: one wrk run per round, and the CPU used while they ran."""

    app: App
    runs: Rounds = field(default_factory=Rounds)


def _ratio(row: Row, ceiling: Row | None) -> str:
    if ceiling is None or ceiling.runs.result.rate <= 0:
        return "-"
    return f"{row.runs.result.rate / ceiling.runs.result.rate:.2f}x"


@dataclass(frozen=True)
class Verdict:
    """One target of a sessiond app: ``got`` is the ratio of the combined rates, ``per_round``
    the ratio within each round (both apps measured a few seconds apart)."""

    peer: str
    wanted: float
    got: float
    per_round: tuple[float, ...]

    @property
    def met(self) -> bool:
        return self.got >= self.wanted

    def __str__(self) -> str:
        spread = f"rounds {min(self.per_round):.2f}-{max(self.per_round):.2f}; "
        mark = "" if self.met else ": MISSED"
        return f"{self.got:.2f}x {self.peer} ({spread}>= {self.wanted:g}x{mark})"


def verdicts(rows: Sequence[Row]) -> dict[str, list[Verdict]]:
    """Per sessiond app (b, c): a verdict on each target of the issue."""
    by_letter = {row.app.letter: row for row in rows}
    found: dict[str, list[Verdict]] = {}
    for letter in "bc":
        row = by_letter.get(letter)
        if row is None:
            continue
        for other, wanted in TARGETS.items():
            peer = by_letter.get(other)
            if peer is None or peer.runs.result.rate <= 0:
                continue
            per_round = tuple(
                mine.rate / theirs.rate
                for mine, theirs in zip(row.runs.runs, peer.runs.runs, strict=True)
                if theirs.rate > 0
            )
            got = row.runs.result.rate / peer.runs.result.rate
            found.setdefault(letter, []).append(Verdict(other, wanted, got, per_round))
    return found


def _verdict(marks: Sequence[Verdict]) -> str:
    missed = [mark.peer for mark in marks if not mark.met]
    if not marks:
        return ""
    return f"missed vs {','.join(missed)}" if missed else "all met"


def table_lines(rows: Sequence[Row]) -> list[str]:
    """The results table, targets, errors and CPU use."""
    ceiling = next((row for row in rows if row.app.letter == "a"), None)
    marks = verdicts(rows)
    body = []
    for row in rows:
        r, rates = row.runs.result, row.runs.rates
        body.append(
            (
                row.app.label,
                str(r.requests),
                f"{r.rate:.0f}",
                f"{min(rates):.0f}-{max(rates):.0f}",
                ms(r.p50),
                ms(r.p99),
                _ratio(row, ceiling),
                _verdict(marks.get(row.app.letter, [])),
            )
        )
    header = ("app", "requests", "req/s", "rounds", "p50 ms", "p99 ms", "vs (a)", "targets")
    lines = table(header, body, left=1)
    for letter, found in marks.items():
        lines.append(f"  targets of ({letter}): {', '.join(map(str, found))}")
    errors = [(row, e) for row in rows for e in row.runs.result.errors]
    for row, error in errors:
        lines.append(f"  ERROR in {row.app.label}: {error}")
    if errors:
        lines.append("  INVALID RUN: an app answered errors; its figures are not comparable.")
    lines.append("CPU used while measuring, in cores (1.00: one core busy all the time):")
    for row in rows:
        lines.append(f"  {row.app.letter}  {cores(row.runs.cpu, row.runs.elapsed)}")
    return lines
