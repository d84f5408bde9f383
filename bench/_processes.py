"""What the benchmarks need beyond :mod:`sessiond.cluster.processes` (which starts, watches
and stops their servers and measures each one's CPU time): their error, and the machine's CPU
time (what they print is in :mod:`bench._report`).
"""

from __future__ import annotations

import os

__all__ = ("BenchError", "busy_cpu_seconds")


class BenchError(RuntimeError):
    """A benchmark cannot go on (a server did not start or died): one message, no traceback."""


def busy_cpu_seconds() -> float | None:
    """CPU time the whole machine has spent busy so far, all cores together (Linux).

    Busy is user, nice, system, irq and softirq time from ``/proc/stat``: neither idle, I/O
    wait nor time stolen by a hypervisor.
    """
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


#: The benchmarks measure throughput, not the abuse limits: every rate limit off.
NO_RATE_LIMITS = {
    "SESSIOND_RATE_SESSIONS_PER_SUBJECT": "0",
    "SESSIOND_RATE_SESSIONS_PER_CLIENT": "0",
    "SESSIOND_RATE_REFRESH_PER_SESSION": "0",
    "SESSIOND_RATE_REVOCATIONS_PER_CLIENT": "0",
    "SESSIOND_RATE_INTROSPECTIONS_PER_CLIENT": "0",
}
