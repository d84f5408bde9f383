"""Argument types and options the benchmarks' command lines share."""

from __future__ import annotations

import argparse
import math


def seconds(text: str) -> float:
    """A duration of 0 or more seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected seconds (0 or more), not {text!r}")
    return value


def positive(text: str) -> float:
    """A duration of more than 0 seconds."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected more than 0 seconds")
    return value


def count(text: str) -> int:
    """A whole number of 1 or more."""
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, not {text!r}")
    return value


def count_or_zero(text: str) -> int:
    """A whole number of 0 or more."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected 0 or more, not {text!r}")
    return int(text)


def add_round_options(parser: argparse.ArgumentParser, unit: str) -> None:
    """``--seconds``, ``--rounds``, ``--connections`` and ``--warmup`` of a benchmark that wrk
    measures in interleaved rounds (:mod:`bench._rounds`); ``unit`` is what each round measures
    once, e.g. ``app``. Defaults: 3 s, 3 rounds, 32 connections, 1 s."""
    parser.add_argument(
        "--seconds",
        type=count,
        default=3,
        help=f"whole seconds measured per {unit} in each round (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=count,
        default=3,
        help=f"rounds, each measuring every {unit} once (default: %(default)s)",
    )
    parser.add_argument(
        "--connections",
        type=count,
        default=32,
        help="wrk's keep-alive connections, one thread (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=count_or_zero,
        default=1,
        help=f"whole unmeasured seconds of load per {unit} first (default: %(default)s)",
    )


def add_revocation_options(parser: argparse.ArgumentParser, revocations: int, warmup: int) -> None:
    """``--revocations`` and ``--warmup`` of a benchmark that revokes one session at a time,
    with these defaults."""
    parser.add_argument(
        "--revocations",
        type=count,
        default=revocations,
        help="measured revocations, one session each (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=count_or_zero,
        default=warmup,
        help="unmeasured revocations first (default: %(default)s)",
    )
