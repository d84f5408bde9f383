"""``python -m bench [NAME] [options]``: run one benchmark (``authority`` when no name is given).

A benchmark is a public module ``bench/<name>.py`` with ``main(args) -> int``; it parses the
arguments that follow its name, so ``python -m bench --seconds 3`` runs the default one.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType, ModuleType
from typing import NoReturn, cast

import bench
from bench._processes import BenchError

DEFAULT = "authority"
HELP = ("-h", "--help")


def benchmark_names() -> list[str]:
    """Every benchmark module in the package (helpers start with an underscore; packages such
    as ``apps`` hold what the benchmarks run)."""
    modules = pkgutil.iter_modules(bench.__path__)
    return sorted(m.name for m in modules if not m.name.startswith("_") and not m.ispkg)


def _summary(module: ModuleType) -> str:
    return module.__doc__.strip().splitlines()[0] if module.__doc__ else ""


def _parser(names: Sequence[str]) -> argparse.ArgumentParser:
    listing = "\n".join(
        f"  {name:<12} {_summary(importlib.import_module(f'bench.{name}'))}" for name in names
    )
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of sessiond against real servers on 127.0.0.1.",
        epilog=f"benchmarks:\n{listing}\n\n'python -m bench NAME -h' lists a benchmark's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("benchmark", nargs="?", choices=names, default=DEFAULT)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="options of the benchmark")
    return parser


def split(argv: Sequence[str], names: Sequence[str]) -> tuple[str, list[str]]:
    """The benchmark to run and its arguments; exits with help or a usage error."""
    if argv and argv[0] in names:
        return argv[0], list(argv[1:])
    if not argv or (argv[0].startswith("-") and argv[0] not in HELP):
        return DEFAULT, list(argv)
    _parser(names).parse_args(argv)  # prints the help or the unknown name, and exits
    raise SystemExit(2)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    """Turn SIGTERM into SystemExit so that every server is stopped on the way out."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    """Run the benchmark named by ``argv`` (the default one if none)."""
    name, args = split(argv, benchmark_names())
    module = importlib.import_module(f"bench.{name}")
    run = cast(Callable[[Sequence[str]], int], module.main)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
