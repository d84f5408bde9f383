"""Real server processes for tests: the names the tests use for sessiond's own supervisor.

There is one process supervisor in the repository, :mod:`sessiond.cluster.processes`, and one
description of each server, :mod:`sessiond.cluster.specs`; this module only names them for
the tests::

    with ServerProcess(REDIS) as redis:      # free loopback port, private data dir
        url = redis.url                      # redis://127.0.0.1:PORT/0
        redis.stop()                         # SIGTERM, then SIGKILL after a grace period
        redis.start()                        # same port, same dir: an outage ends
        redis.kill()                         # SIGKILL: a crash
        redis.pause(); redis.resume()        # SIGSTOP / SIGCONT: a hang
        redis.output()                       # the tail of its stdout and stderr

    ServerProcess(SESSIOND, env={"SESSIOND_REDIS_URL": url})   # this environment, plus env

``NATS`` is JetStream on file storage with ``sync_interval: always``. A server that does not
answer its readiness probe in time fails with :class:`ProcessFailed`, its output attached.
Servers get SIGTERM when the thread that started them ends (Linux: start them from the main
thread) and are stopped at exit, so none is left behind even if a fixture finaliser never
runs or pytest is killed.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

from sessiond.cluster.processes import ManagedProcess as ServerProcess
from sessiond.cluster.processes import ProcessFailed, ProcessSpec, free_port
from sessiond.cluster.specs import NATS, REDIS, SESSIOND

__all__ = (
    "NATS",
    "REDIS",
    "SESSIOND",
    "JsonServer",
    "ProcessFailed",
    "ProcessSpec",
    "ServerProcess",
    "free_port",
)


class JsonServer:
    """A loopback HTTP server (a thread) answering every GET with ``document`` as JSON, and
    keeping the path of each request in ``hits``::

        with JsonServer({"keys": []}) as server:
            server.url; server.document = {...}; server.hits
    """

    def __init__(self, document: Any) -> None:
        self.document = document
        self.hits: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits.append(self.path)
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> JsonServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
