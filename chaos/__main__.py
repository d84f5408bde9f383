"""``python -m chaos [--only NAME ...] [options]``: run the chaos scenarios and print their
figures as one table; exit 1 if any bounded figure is over its bound."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType, ModuleType
from typing import NoReturn, cast

import chaos
from chaos._frame import Options, Outcome, exit_code, table

Scenario = Callable[[Options], Outcome]


def scenario_names() -> list[str]:
    """Every scenario module in the package (helpers start with an underscore)."""
    modules = pkgutil.iter_modules(chaos.__path__)
    return sorted(m.name for m in modules if not m.name.startswith("_") and not m.ispkg)


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"chaos.{name}")


def _scenario(name: str) -> Scenario:
    return cast(Scenario, _module(name).run)


def _summary(name: str) -> str:
    doc = _module(name).__doc__
    return doc.strip().splitlines()[0] if doc else ""


def parse(argv: Sequence[str], names: Sequence[str]) -> tuple[list[str], Options]:
    """The scenarios to run, in order, and the options they get; exits on a usage error."""
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Chaos scenarios of sessiond against real processes on 127.0.0.1.",
        epilog="scenarios:\n" + "\n".join(f"  {n:<18} {_summary(n)}" for n in names),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", nargs="+", choices=names, metavar="NAME", help="run these, in this order"
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (as the tests)")
    parser.add_argument(
        "--soak", type=float, default=180.0, metavar="SECONDS", help="the soak's length"
    )
    parser.add_argument("--seed", type=int, help="for the random choices (default: new)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    options = Options(quick=args.quick, soak_seconds=args.soak, seed=seed)
    return list(args.only or names), options


def run_one(name: str, options: Options) -> Outcome:
    """Run scenario ``name``; one that raises is a failed outcome carrying the error."""
    try:
        return _scenario(name)(options)
    except Exception as exc:
        return Outcome.failed(name, exc)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    """Turn SIGTERM into SystemExit so that every scenario's processes are stopped."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    """Run the chosen scenarios one after the other, print each outcome as it ends and the
    whole table at the end."""
    names, options = parse(argv, scenario_names())
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    print(f"chaos: {len(names)} scenarios, seed {options.seed}", flush=True)
    outcomes = []
    try:
        for name in names:
            started = time.monotonic()
            print(f"\n== {name}: {_summary(name)}", flush=True)
            outcome = run_one(name, options)
            outcomes.append(outcome)
            print(table([outcome]), f"({time.monotonic() - started:.0f} s)", sep="\n", flush=True)
    except KeyboardInterrupt:
        print("interrupted: processes stopped", file=sys.stderr)
        return 130
    print("\n" + table(outcomes))
    return exit_code(outcomes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
