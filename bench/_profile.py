"""``--profile DIR``: py-spy samples of an app's workers under wrk's load, taken apart from
the measured rounds (sampling costs the app CPU)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench._processes import BenchError
from sessiond.cluster.processes import which

__all__ = ("profile",)

#: Samples per second: enough for a profile, few enough not to distort it much.
RATE = 200


def py_spy() -> str:
    """The py-spy of this virtual environment (``./dev bench`` installs it), or on the PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else which("py-spy")


def profile(pid: int, argv: Sequence[str], seconds: int, output: Path) -> Path:
    """Run wrk (``argv``, ``seconds`` long) and meanwhile record process ``pid`` and its
    children (granian's workers) with py-spy; the samples written to ``output`` as collapsed
    stacks (one line per stack and its count: flamegraph.pl and speedscope read them)."""
    spy = py_spy()
    with subprocess.Popen(
        [which(argv[0]), *argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as wrk:
        record = [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
        record += ["--rate", str(RATE), "--duration", str(max(1, seconds - 1))]
        record += ["--format", "raw", "--output", str(output)]
        done = subprocess.run(record, capture_output=True, text=True, check=False)
        wrk.wait(timeout=seconds + 30)
    if done.returncode != 0:
        raise BenchError(f"py-spy failed ({done.returncode}): {done.stderr.strip()}")
    return output
