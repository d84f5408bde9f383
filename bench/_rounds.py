"""Interleaved rounds: several apps, all running, measured one at a time by wrk, round after
round, with the CPU each process used meanwhile.

The throughput of a shared or virtual machine drifts by 10-25 % over a minute; apps measured
in a single block each would be compared across that drift, while interleaved rounds spread it
over every app alike. An app's req/s is its requests over its measured seconds in all rounds,
its p50 and p99 the median of its rounds'.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench._report import cpu_seconds, cpu_used
from bench._wrk import WrkResult, combine, run_wrk
from sessiond.cluster.processes import ManagedProcess

__all__ = ("IDLE_APPS", "Rounds", "cpu_reading", "measure_once")

#: The apps not measured in a run, added up in its CPU reading.
IDLE_APPS = "idle apps"


@dataclass
class Rounds:
    """One app's (or one app's operation's) wrk runs, one per round, and the CPU used."""

    runs: list[WrkResult] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def result(self) -> WrkResult:
        """All rounds as one (:func:`~bench._wrk.combine`)."""
        return combine(self.runs)

    @property
    def rates(self) -> list[float]:
        """Each round's req/s."""
        return [run.rate for run in self.runs]

    def add(self, result: WrkResult, cpu: Mapping[str, float], elapsed: float) -> None:
        """Record one round."""
        self.runs.append(result)
        for name, seconds in cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds
        self.elapsed += elapsed


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children (wrk, once it has ended)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_reading(servers: Mapping[str, ManagedProcess]) -> dict[str, float]:
    """:func:`bench._report.cpu_seconds` with wrk apart: ``bench`` is this process (idle while
    wrk runs), ``wrk`` the load generator, ``other`` the rest of the machine."""
    used = cpu_seconds(servers)
    reading = {"bench": used.pop("client")}
    reading.update(used)
    reading["wrk"] = _children_cpu()
    if "other" in reading:
        reading["other"] -= reading["wrk"]
        reading["other"] = reading.pop("other")  # last
    return reading


def measure_once(
    argv: Sequence[str],
    seconds: int,
    into: Rounds,
    *,
    measured: str,
    apps: Sequence[str],
    servers: Mapping[str, ManagedProcess],
) -> WrkResult:
    """Run wrk (``argv``, ``seconds`` long) against the app named ``measured`` and add the run
    to ``into``, with the CPU every server used; the other ``apps`` count as :data:`IDLE_APPS`."""
    before, started = cpu_reading(servers), time.perf_counter()
    result = run_wrk(argv, seconds)
    elapsed = time.perf_counter() - started
    used = cpu_used(before, cpu_reading(servers))
    folded: dict[str, float] = {}
    for name, spent in used.items():
        key = IDLE_APPS if name in apps and name != measured else name
        folded[key] = folded.get(key, 0.0) + spent
    into.add(result, folded, elapsed)
    return result
