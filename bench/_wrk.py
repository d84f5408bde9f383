"""wrk, the load generator of every HTTP throughput benchmark: its command line, a run to the
end, and its ``--latency`` output read into a :class:`WrkResult`.

wrk is a separate C process (one thread, keep-alive connections); it costs far less CPU per
request than the Python servers it measures, unlike a Python client, so the figures are the
servers'. A Lua script (``-s``) makes each request when the requests differ (POST bodies,
tokens carried forward from the previous answer).
"""

from __future__ import annotations

import re
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bench._processes import BenchError
from sessiond.cluster.processes import which

__all__ = ("WrkResult", "combine", "parse_wrk", "run_wrk", "wrk_command", "wrk_version")

#: A request without an answer after this long counts as a timeout error.
WRK_TIMEOUT = "5s"
#: How much longer than its duration a wrk run may take before it is given up.
OVERRUN = 30


@dataclass(frozen=True)
class WrkResult:
    """What one ``wrk --latency`` run printed."""

    requests: int
    seconds: float
    rate: float
    p50: float
    p99: float
    non_2xx: int = 0
    socket_errors: Mapping[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        """Every kind of error, e.g. ``12 non-2xx/3xx responses``; empty if none."""
        found = [f"{n} socket {kind} errors" for kind, n in self.socket_errors.items() if n]
        if self.non_2xx:
            found.insert(0, f"{self.non_2xx} non-2xx/3xx responses")
        return found


_UNITS: Final = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"
_REQUESTS = re.compile(r"^\s*(\d+) requests in " + _DURATION + ",", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s*([\d.]+)", re.MULTILINE)
_PERCENTILE = r"^\s*{p}%\s+" + _DURATION + r"\s*$"
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses: (\d+)", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures of ``wrk --latency`` output; :class:`BenchError` if one is missing."""
    requests, rate = _REQUESTS.search(output), _RATE.search(output)
    p50 = re.search(_PERCENTILE.format(p=50), output, re.MULTILINE)
    p99 = re.search(_PERCENTILE.format(p=99), output, re.MULTILINE)
    if requests is None or rate is None or p50 is None or p99 is None:
        raise BenchError(f"cannot read wrk's output (was --latency given?):\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET.search(output)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {}
    )
    return WrkResult(
        requests=int(requests.group(1)),
        seconds=_seconds(requests.group(2), requests.group(3)),
        rate=float(rate.group(1)),
        p50=_seconds(*p50.groups()),
        p99=_seconds(*p99.groups()),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def combine(results: Sequence[WrkResult]) -> WrkResult:
    """Several runs as one: requests and seconds added up, the rate their quotient, p50 and
    p99 the median of the runs', errors added up."""
    requests = sum(r.requests for r in results)
    seconds = sum(r.seconds for r in results)
    sockets: dict[str, int] = {}
    for result in results:
        for kind, n in result.socket_errors.items():
            sockets[kind] = sockets.get(kind, 0) + n
    return WrkResult(
        requests=requests,
        seconds=seconds,
        rate=requests / seconds if seconds > 0 else 0.0,
        p50=statistics.median(r.p50 for r in results),
        p99=statistics.median(r.p99 for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sockets,
    )


def wrk_command(
    url: str,
    headers: Mapping[str, str],
    seconds: int,
    connections: int,
    *,
    script: Path | None = None,
    script_args: Sequence[str] = (),
) -> list[str]:
    """The one wrk command line every app is measured with: one thread, ``connections``
    keep-alive connections, ``headers`` on every request, and with ``script`` a Lua script
    that is given ``script_args``. The program is named, not resolved (:func:`run_wrk` finds
    it), so that making a command line needs no wrk installed."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["--timeout", WRK_TIMEOUT]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    return argv


def run_wrk(argv: Sequence[str], seconds: int) -> WrkResult:
    """Run wrk to the end (``seconds``: how long it was told to run); its parsed figures."""
    try:
        done = subprocess.run(
            [which(argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=seconds + OVERRUN,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + OVERRUN} s") from None
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def wrk_version() -> str:
    """What ``wrk -v`` says its version is, e.g. ``debian/4.1.0-3+b2``; ``?`` if nothing."""
    words = subprocess.run(
        [which("wrk"), "-v"], capture_output=True, text=True, check=False
    ).stdout.split()
    return words[1] if len(words) > 1 else "?"
