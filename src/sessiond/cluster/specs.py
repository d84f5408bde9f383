"""The processes of a sessiond deployment, as :class:`~sessiond.cluster.processes.ProcessSpec`.

All listen on 127.0.0.1 only. Each one's ``{dir}`` is its own data directory.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from sessiond.cluster.processes import Probe, ProcessSpec, tcp_probe
from sessiond.cluster.tls import TestPki

__all__ = ("NATS", "REDIS", "RELAY", "SESSIOND", "asgi_app", "redis_spec")


def _http_ok(path: str) -> Probe:
    """Ready once ``GET path`` answers 200."""
    return tcp_probe(
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
        b"HTTP/1.1 200",
    )


def redis_spec(
    *,
    users: Sequence[Sequence[str]] = (),
    pki: TestPki | None = None,
    directives: Sequence[str] = (),
) -> ProcessSpec:
    """Redis with an append-only file and no RDB snapshots: an acknowledged session survives a
    crash (``appendfsync everysec``: at most about one second).

    ``users`` are ACL users besides ``default`` (the arguments of a ``user`` directive, such
    as :func:`sessiond.redis_client.acl_user`'s), written to its configuration file, never
    to its command line, as are ``directives`` (lines such as ``replicaof HOST PORT``). With
    ``pki`` it serves TLS only (``rediss://``) with that certificate, and takes a client
    certificate signed by that CA but does not require one.
    """
    listen: tuple[str, ...] = ("--port", "{port}")
    context = None
    if pki is not None:
        listen = ("--port", "0", "--tls-port", "{port}", "--tls-auth-clients", "optional")
        listen += ("--tls-cert-file", str(pki.cert_file), "--tls-key-file", str(pki.key_file))
        listen += ("--tls-ca-cert-file", str(pki.ca_file))
        context = ssl.create_default_context(cafile=pki.ca_file)
    return ProcessSpec(
        name="redis-server",
        binary="redis-server",
        args=(
            "{config}",
            *listen,
            "--bind",
            "127.0.0.1",
            "--dir",
            "{dir}",
            "--save",
            "",
            "--appendonly",
            "yes",
        ),
        scheme="rediss" if pki is not None else "redis",
        url_suffix="/0",
        config="".join(
            [*(f"user {' '.join(user)}\n" for user in users), *(f"{line}\n" for line in directives)]
        ),
        probe=tcp_probe(b"PING\r\n", b"+PONG", context),
    )


#: Redis with no ACL user but ``default`` and no TLS (see :func:`redis_spec`).
REDIS = redis_spec()

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
  # A limit, not an allocation: every stream reserves its size limit against it (1 GiB by
  # default), and a test session makes hundreds of streams on one server.
  max_file_store: 1TB
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
    probe=_http_ok("/readyz"),
)

#: The outbox relay worker (:mod:`sessiond.workers.relay`): listens on no port, ready once running.
RELAY = ProcessSpec(name="sessiond-relay", binary="sessiond-relay")


def asgi_app(
    target: str, *, working_dir: Path, readiness_path: str = "/readyz", factory: bool = False
) -> ProcessSpec:
    """An ASGI app (``module:attribute``, imported from ``working_dir``; with ``factory`` the
    attribute is called to make it) under granian with one worker; ready once
    ``readiness_path`` answers 200 (e.g. a resource backend that uses the verifier plugin with
    ``readiness_path``: its keys are fetched and its denylist current)."""
    return ProcessSpec(
        name="asgi-app",
        binary="granian",
        args=(
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
            "--working-dir",
            str(working_dir),
            *(("--factory",) if factory else ()),
            target,
        ),
        scheme="http",
        probe=_http_ok(readiness_path),
    )
