"""What every chaos scenario returns and how ``python -m chaos`` judges and prints it.

A scenario measures :class:`Figure` values, each with a bound it must stay within (or none:
reported only), and returns them as one :class:`Outcome`; :func:`table` renders outcomes as the
markdown table of ``chaos/README.md`` and :func:`exit_code` says whether a run passed.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ("Figure", "Options", "Outcome", "exit_code", "table")

HEADER = ("scenario", "injected", "figure", "value", "bound", "verdict")


@dataclass(frozen=True)
class Figure:
    """One measured number of a scenario."""

    what: str  #: e.g. "acknowledged revocations lost"
    value: float
    bound: float | None  #: the value must be <= bound; None: reported, no bound
    unit: str = ""  #: "", "ms", "s", "MiB", ...

    @property
    def ok(self) -> bool:
        """Within its bound (always, for a figure without one)."""
        return self.bound is None or self.value <= self.bound

    @property
    def verdict(self) -> str:
        if self.bound is None:
            return "reported"
        return "ok" if self.ok else "OVER"


@dataclass(frozen=True)
class Outcome:
    """What one scenario injected and measured."""

    scenario: str  #: its module name
    injected: str  #: e.g. "kill -9 the stream leader after 80 of 300 revocations"
    figures: tuple[Figure, ...]
    note: str = ""  #: e.g. why a bound cannot be 0 by design

    @property
    def ok(self) -> bool:
        """Every figure within its bound."""
        return all(figure.ok for figure in self.figures)

    @classmethod
    def failed(cls, scenario: str, error: BaseException) -> Outcome:
        """The row of a scenario that raised: a failure whatever it measured before."""
        where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
        place = f" (at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
        return cls(
            scenario,
            "(did not complete)",
            (Figure("scenario errors", 1, 0),),
            note=f"{type(error).__name__}: {error}{place}",
        )


@dataclass(frozen=True)
class Options:
    """How a run of the scenarios is sized."""

    quick: bool  #: smaller counts, for a test run
    soak_seconds: float  #: ``--soak`` (default 180)
    seed: int  #: for every random choice of a scenario, so a run can be repeated


def number(value: float, unit: str = "") -> str:
    """``value`` as a short text: integers as such, others with three significant digits."""
    text = str(int(value)) if float(value).is_integer() else f"{value:.3g}"
    return f"{text} {unit}".strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(outcomes: Sequence[Outcome]) -> str:
    """A markdown table, one row per figure (scenario and injection on its first), then each
    outcome's note as a list item."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for outcome in outcomes:
        for n, figure in enumerate(outcome.figures):
            bound = "" if figure.bound is None else "<= " + number(figure.bound, figure.unit)
            cells = (
                outcome.scenario if n == 0 else "",
                outcome.injected if n == 0 else "",
                figure.what,
                number(figure.value, figure.unit),
                bound,
                figure.verdict,
            )
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    notes = [f"- {o.scenario}: {_cell(o.note)}" for o in outcomes if o.note]
    return "\n".join([*lines, *(["", *notes] if notes else [])])


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """1 if any bounded figure is over its bound (a scenario that raised included), else 0."""
    return 0 if all(outcome.ok for outcome in outcomes) else 1
