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

from sessiond.cluster.processes import ManagedProcess as ServerProcess
from sessiond.cluster.processes import ProcessFailed, ProcessSpec, free_port
from sessiond.cluster.specs import NATS, REDIS, SESSIOND

__all__ = (
    "NATS",
    "REDIS",
    "SESSIOND",
    "ProcessFailed",
    "ProcessSpec",
    "ServerProcess",
    "free_port",
)
