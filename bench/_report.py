"""What the benchmarks print, shared: percentiles, aligned tables, the machine's settings lines
and the CPU footer (how busy the client, each server and the rest of the machine were)."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from bench._processes import busy_cpu_seconds
from sessiond.cluster.processes import ManagedProcess, which

__all__ = (
    "cores",
    "cpu_seconds",
    "cpu_used",
    "machine_lines",
    "ms",
    "percentile",
    "server_version",
    "table",
)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of ``values`` (``None`` if there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float | None, digits: int = 2) -> str:
    """Seconds as milliseconds for a table cell; ``-`` for no value."""
    return "-" if seconds is None else f"{seconds * 1000:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> list[str]:
    """An aligned plain-text table: the first ``left`` columns to the left, the others to the
    right, a rule of dashes under the header."""
    cells = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def machine_lines() -> list[str]:
    """The settings lines every benchmark prints: Python and the number of CPUs."""
    return [
        f"  python       {platform.python_version()} ({platform.python_implementation()})",
        f"  cpus         {os.cpu_count()}",
    ]


def server_version(binary: str) -> str:
    """The version a server binary reports (``redis-server``, ``nats-server``), e.g. ``7.0.15``
    or ``v2.11.4``; ``unknown`` if it says nothing useful."""
    out = subprocess.run(
        [which(binary), "--version"], capture_output=True, text=True, check=False
    ).stdout
    fields = dict(part.split("=", 1) for part in out.split() if "=" in part)
    if "v" in fields:  # redis-server: "Redis server v=7.0.15 sha=..."
        return fields["v"]
    words = out.split()  # nats-server: "nats-server: v2.11.4"
    return words[-1] if words else "unknown"


def cpu_seconds(servers: Mapping[str, ManagedProcess]) -> dict[str, float]:
    """CPU seconds used so far by this process (``client``), each server's process group and
    everything else on the machine (``other``: a disturbance if it is not near 0). Take it
    before and after a measurement and pass both to :func:`cpu_used`."""
    used = {"client": time.process_time()}
    for name, process in servers.items():
        seconds = process.cpu_seconds()
        if seconds is not None:
            used[name] = seconds
    busy = busy_cpu_seconds()
    if busy is not None and len(used) == len(servers) + 1:
        used["other"] = busy - sum(used.values())
    return used


def cpu_used(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each side used between two :func:`cpu_seconds` readings."""
    return {name: max(0.0, after[name] - spent) for name, spent in before.items() if name in after}


def cores(used: Mapping[str, float], elapsed: float) -> str:
    """How many cores each side of :func:`cpu_used` kept busy over ``elapsed`` seconds, e.g.
    ``client 0.95, sessiond 0.80, redis 0.05, other 0.02`` (1.00: one core all the time)."""
    if elapsed <= 0:
        return "-"
    return ", ".join(f"{name} {seconds / elapsed:.2f}" for name, seconds in used.items())


def progress(message: str) -> None:
    """A progress line on stderr, apart from the table on stdout."""
    print(message, file=sys.stderr, flush=True)
