"""Server processes for the benchmarks: start, wait until ready, stop, never leave one behind.

Each server runs in its own session and process group, so a Ctrl-C in the terminal reaches
only the benchmark, which then stops the servers in order; stopping signals the whole group
(``sessiond serve`` forks a granian worker). On Linux the direct child also gets SIGTERM if
the benchmark dies without cleaning up, even by SIGKILL (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = (
    "BenchError",
    "ServerProcess",
    "busy_cpu_seconds",
    "free_port",
    "group_cpu_seconds",
    "which",
)


class BenchError(RuntimeError):
    """A benchmark cannot go on (a server did not start or died): one message, no traceback."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def which(binary: str) -> str:
    """The path of ``binary``, looked up in the venv's ``bin`` first, then on ``PATH``."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    found = shutil.which(binary, path=path)
    if found is None:
        raise BenchError(f"{binary!r} not found on PATH: install it to run the benchmarks")
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # SIGTERM, not SIGKILL: granian then stops its worker process before it exits.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess:
    """One server process with its output in a log file; a context manager that stops it.

    ``port`` is where it listens, kept for the caller.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        port: int = 0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = dict(env) if env is not None else None
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id of the server's main process."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._proc.pid

    def start(self) -> None:
        """Start the server in a new session; output goes to the log file."""
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def check_alive(self) -> None:
        """Raise with the server's output if it has exited (without reaping it)."""
        if self._proc is not None and (status := _exit_status(self._proc)) is not None:
            raise BenchError(f"{self.name} exited with {status}; its output:\n{self.output()}")

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Poll ``probe`` until it returns true; fail if the server exits or time runs out."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if probe():
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise BenchError(
            f"{self.name} not ready after {timeout} s (last error: {last!r}); "
            f"its output:\n{self.output()}"
        )

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group; SIGKILL whatever is left of it after ``grace`` seconds.

        The leader is reaped only at the end, so until then its group id cannot be reused and
        the final SIGKILL reaches only processes this server started.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:  # not reaped: the group id is still this server's
            _signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while _exit_status(proc) is None and time.monotonic() < deadline:
                time.sleep(0.02)
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()

    def output(self, limit: int = 4000) -> str:
        """The tail of the server's stdout and stderr."""
        try:
            return self.log.read_bytes()[-limit:].decode(errors="replace")
        except FileNotFoundError:
            return ""

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


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exit_status(proc: subprocess.Popen[bytes]) -> int | None:
    """The exit status of ``proc`` if it has exited, else ``None``.

    On Linux the process is left unreaped (a zombie), so its group id cannot be reused before
    :meth:`ServerProcess.stop` has signalled the group; elsewhere it is reaped.
    """
    if proc.returncode is not None or sys.platform != "linux":
        return proc.poll()
    info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return None if info is None else info.si_status


def group_cpu_seconds(pgid: int) -> float | None:
    """CPU time (user + system) used so far by the live processes of group ``pgid``.

    Linux only (``/proc``); ``None`` elsewhere.
    """
    proc = Path("/proc")
    if sys.platform != "linux" or not proc.is_dir():
        return None
    ticks = 0
    for stat in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # fields[0] is field 3 of proc(5), the state
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


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
