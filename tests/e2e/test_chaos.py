"""A quick run of chaos scenarios against real processes: every bounded figure within its
bound (``./dev chaos`` runs them all, at full size)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import cast

import pytest

from chaos import nats_partition, replica_pause
from chaos._frame import Options, Outcome, table

QUICK = Options(quick=True, soak_seconds=10, seed=12)


@pytest.mark.parametrize("scenario", [replica_pause, nats_partition], ids=lambda m: m.__name__)
def test_every_bounded_figure_of_a_quick_run_is_within_its_bound(scenario: ModuleType) -> None:
    run = cast(Callable[[Options], Outcome], scenario.run)
    outcome = run(QUICK)
    print(table([outcome]))
    assert any(figure.bound is not None for figure in outcome.figures)
    assert outcome.ok, table([outcome])
