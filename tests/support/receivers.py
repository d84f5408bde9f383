"""A receiver of revocations for tests: a real HTTP server on a free loopback port that
records every POST and answers a status of the test's choosing; it can go down (its port
then refuses connections) and come back on the same port."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass

from support.servers import free_port


@dataclass(frozen=True)
class Received:
    """One POST the receiver got: path, headers (lower-case names), body, arrival time."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False


class ReceiverServer:
    """``with ReceiverServer() as receiver:`` ``receiver.url``, ``receiver.received``;
    ``receiver.status`` is what it answers, after ``receiver.delay`` seconds; ``stop()`` and
    ``start()`` take it down and back."""

    def __init__(self, status: int = 200) -> None:
        self.port = free_port()
        self.status = status
        self.delay = 0.0
        self.received: list[Received] = []
        self.answered: list[int] = []  # the status of every POST, accepted or not
        self._server: http.server.ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/receiver"

    def start(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                time.sleep(owner.delay)
                status = owner.status
                with owner._lock:
                    owner.answered.append(status)
                    if status < 300:
                        headers = {k.lower(): v for k, v in self.headers.items()}
                        owner.received.append(Received(self.path, headers, body, time.time()))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ReceiverServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
