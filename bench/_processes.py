"""What the benchmarks need beyond :mod:`sessiond.cluster.processes`, which starts, watches
and stops their servers and measures each one's CPU time: their error and the machine's CPU
time (what they print is in :mod:`bench._report`).

:class:`ServerProcess` (and the re-exported ``free_port`` and ``which``) is a transitional
adapter, the argv-shaped front of a :class:`ManagedProcess`, kept only because
``bench/denylist.py`` still uses it. New code runs a
:class:`~sessiond.cluster.processes.ProcessSpec` from :mod:`sessiond.cluster.specs` (e.g.
``ManagedProcess(NATS, directory=...)``, or ``dataclasses.replace(NATS, config=...)`` for
another configuration); delete the adapter once nothing imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from sessiond.cluster import processes
from sessiond.cluster.processes import ManagedProcess, ProcessFailed, ProcessSpec, free_port
from sessiond.errors import ConfigError

__all__ = ("BenchError", "ServerProcess", "busy_cpu_seconds", "free_port", "which")


class BenchError(RuntimeError):
    """A benchmark cannot go on (a server did not start or died): one message, no traceback."""


def which(binary: str) -> str:
    """:func:`sessiond.cluster.processes.which`, failing with :class:`BenchError`."""
    try:
        return processes.which(binary)
    except ConfigError as exc:
        raise BenchError(exc.detail) from None


class ServerProcess:
    """A server given as an ``argv`` (ready-made, ``argv[0]`` a path) with its output in
    ``log``; a context manager that starts and stops it. ``port`` is kept for the caller.
    ``env``, if given, is the whole environment. Failures raise :class:`BenchError`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        port: int = 0,
    ) -> None:
        literal = tuple(arg.replace("{", "{{").replace("}", "}}") for arg in argv[1:])
        spec = ProcessSpec(name=name, binary=argv[0], args=literal)
        self.name, self.port, self.log = name, port, log
        self.process = ManagedProcess(spec, directory=log.parent, base_env=env, log=log)

    @property
    def pid(self) -> int:
        """The process id of the server's main process (its process group id too)."""
        return self.process.pid

    def start(self) -> None:
        """Start the server in a new session; output goes to the log file."""
        self.process.start(wait=False)

    def check_alive(self) -> None:
        """Raise with the server's output if it has exited."""
        try:
            self.process.check_alive()
        except ProcessFailed as exc:
            raise BenchError(f"{exc.detail}; its output:\n{exc.output}") from None

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Poll ``probe`` until it returns true; fail if the server exits or time runs out."""
        try:
            self.process.wait_ready(timeout, probe=lambda _: probe())
        except ProcessFailed as exc:
            raise BenchError(f"{exc.detail}; its output:\n{exc.output}") from None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group; SIGKILL whatever is left of it after ``grace`` seconds."""
        self.process.stop(grace)

    def output(self, limit: int = 4000) -> str:
        """The tail of the server's stdout and stderr."""
        return self.process.output(limit)

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the server's process group (Linux)."""
        return self.process.cpu_seconds()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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
