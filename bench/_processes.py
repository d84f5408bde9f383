"""Server processes for the benchmarks: start, wait until ready, stop, never leave one behind.

Each server runs in its own session and process group, so a Ctrl-C in the terminal reaches
only the benchmark, which then stops the servers in order; stopping signals the whole group
(``sessiond serve`` forks a granian worker). On Linux the direct child also gets SIGKILL if
the benchmark dies without cleaning up (``PR_SET_PDEATHSIG``).
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

__all__ = ("ServerProcess", "free_port", "which")


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
        raise RuntimeError(f"{binary!r} not found on PATH: install it to run the benchmarks")
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ServerProcess:
    """One server process with its output in a log file; a context manager that stops it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = dict(env) if env is not None else None
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
        """Raise with the server's output if it has exited."""
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self._proc.returncode}; its output:\n{self.output()}"
            )

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
        raise RuntimeError(
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
        _signal_group(proc.pid, signal.SIGTERM)
        _wait_unreaped(proc, grace)
        if proc.returncode is None:  # not reaped yet: the group id is still this server's
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


def _wait_unreaped(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``proc`` to exit, leaving it unreaped (a zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sys.platform == "linux":
            flags = os.WEXITED | os.WNOWAIT | os.WNOHANG
            if os.waitid(os.P_PID, proc.pid, flags) is not None:
                return
        elif proc.poll() is not None:  # elsewhere: reaped, so the group may be gone already
            return
        time.sleep(0.02)
