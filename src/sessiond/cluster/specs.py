"""The processes of a sessiond deployment, as :class:`~sessiond.cluster.processes.ProcessSpec`.

All listen on 127.0.0.1 only. Each one's ``{dir}`` is its own data directory.
"""

from __future__ import annotations

from sessiond.cluster.processes import ProcessSpec, tcp_probe

__all__ = ("NATS", "REDIS", "RELAY", "SESSIOND")

#: Redis with an append-only file and no RDB snapshots: an acknowledged session survives a
#: crash (``appendfsync everysec``: at most about one second).
REDIS = ProcessSpec(
    name="redis-server",
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
    url_suffix="/0",
    probe=tcp_probe(b"PING\r\n", b"+PONG"),
)

#: NATS with JetStream on file storage that fsyncs every write before acknowledging it
#: (``sync_interval: always``): an acknowledged revocation survives a SIGKILL (I4).
NATS = ProcessSpec(
    name="nats-server",
    binary="nats-server",
    args=("-a", "127.0.0.1", "-p", "{port}", "-c", "{config}"),
    scheme="nats",
    config="""\
jetstream {
  store_dir: "{dir}"
  sync_interval: always
}
""",
    probe=tcp_probe(b"", b"INFO "),
)

#: One replica of the session authority; ready once ``/readyz`` answers 200 (the session
#: store answers and the denylist has caught up with the revocation stream).
SESSIOND = ProcessSpec(
    name="sessiond",
    binary="sessiond",
    args=("serve", "--host", "127.0.0.1", "--port", "{port}"),
    scheme="http",
    probe=tcp_probe(
        b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200"
    ),
)

#: The outbox relay worker (``workers/relay.py``): listens on no port, ready once running.
RELAY = ProcessSpec(name="sessiond-relay", binary="sessiond-relay")
