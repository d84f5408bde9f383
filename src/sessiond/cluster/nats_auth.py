"""The NATS users of a sessiond deployment and what each may do: least privilege, one place.

Each role gets a user whose permissions allow what its code does and nothing else (the
subjects were taken from a ``nats-server -DV`` trace of each role at work):

* ``authority`` (``sessiond serve``): publishes revocations on the stream's subjects, the
  audit trail and its own receipts; manages the stream; reads the snapshot; reads every
  follower's receipts.
* ``relay`` (``sessiond-relay``): publishes revocations; manages the stream; writes the
  snapshot object store.
* ``verifier`` (a backend): reads the stream and the snapshot; publishes only its own
  receipts (``<prefix>-applied.<user>``), so it cannot forge another follower's; neither
  publishes revocations nor reads the audit trail.
* ``audit``: reads the audit subject, nothing else.
* ``delivery`` (``sessiond-delivery``): creates, updates and looks at the deliveries' copy of
  the stream (``<stream>_DELIVERIES``, which the server fills from the stream) and keeps a
  durable consumer per receiver on it (creates, reads, acknowledges, deletes consumers), reads
  one of its messages (a dead letter's event, to replay it); nothing on the revocation stream
  itself, publishes nothing else.

Every client also subscribes ``_INBOX.>`` (JetStream API replies and push deliveries), except
the audit reader. :func:`authorization` renders the ``authorization`` block of a nats-server
configuration, passwords read from environment variables (:func:`password_variable`); the local
cluster and ``deploy/k8s/base/nats.conf`` are both rendered from it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from sessiond.audit import audit_subject
from sessiond.broadcast.snapshots import bucket_name
from sessiond.broadcast.stream import StreamSpec
from sessiond.cluster.processes import LOOPBACK, ProcessSpec, free_port
from sessiond.cluster.specs import NATS
from sessiond.cluster.tls import TestPki
from sessiond.receivers.stream import delivery_stream_name

Role = Literal["authority", "relay", "verifier", "audit", "delivery"]
ROLES: tuple[Role, ...] = ("authority", "relay", "verifier", "audit", "delivery")
#: One user per role, named after it: the users of the local cluster and of ``deploy/k8s``.
ROLE_USERS: tuple[tuple[str, Role], ...] = tuple((role, role) for role in ROLES)
INBOX = "_INBOX.>"


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish on and subscribe to (nothing else)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def permissions(role: Role, spec: StreamSpec, user: str) -> Permissions:
    """What ``user``, of ``role``, may do with the stream of ``spec``."""
    stream, objects = spec.name, f"OBJ_{bucket_name(spec)}"
    follow = (
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.FC.{stream}.>",  # flow-control replies of the push consumer
    )
    manage = (f"$JS.API.STREAM.CREATE.{stream}", f"$JS.API.STREAM.UPDATE.{stream}")
    read_snapshot = (
        f"$JS.API.STREAM.INFO.{objects}",
        f"$JS.API.STREAM.MSG.GET.{objects}",
        f"$JS.API.CONSUMER.CREATE.{objects}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{objects}.>",
        f"$JS.API.CONSUMER.DELETE.{objects}.>",
    )
    write_snapshot = (
        f"$JS.API.STREAM.CREATE.{objects}",
        f"$JS.API.STREAM.UPDATE.{objects}",
        f"$JS.API.STREAM.PURGE.{objects}",
        f"$O.{bucket_name(spec)}.>",
    )
    receipts = spec.receipts_subject(user)
    match role:
        case "authority":
            own = (audit_subject(spec.subject_prefix), receipts)
            publish = (spec.filter_subject, *manage, *follow, *read_snapshot, *own)
            return Permissions(publish, (spec.receipts_filter, INBOX))
        case "relay":
            writes = (spec.filter_subject, *manage, *follow, *read_snapshot, *write_snapshot)
            return Permissions(writes, (INBOX,))
        case "verifier":
            return Permissions((*follow, *read_snapshot, receipts), (INBOX,))
        case "audit":
            return Permissions((), (audit_subject(spec.subject_prefix),))
        case "delivery":
            copy = delivery_stream_name(spec)
            durable = (
                f"$JS.API.STREAM.CREATE.{copy}",
                f"$JS.API.STREAM.UPDATE.{copy}",
                f"$JS.API.STREAM.INFO.{copy}",  # is the server's copy working?
                f"$JS.API.STREAM.MSG.GET.{copy}",  # --replay reads a dead letter's event
                f"$JS.API.CONSUMER.DURABLE.CREATE.{copy}.*",
                f"$JS.API.CONSUMER.INFO.{copy}.*",
                f"$JS.API.CONSUMER.LIST.{copy}",
                f"$JS.API.CONSUMER.MSG.NEXT.{copy}.*",
                f"$JS.API.CONSUMER.DELETE.{copy}.*",
                f"$JS.ACK.{copy}.>",  # acknowledgements, in-progress and naks
            )
            return Permissions(durable, (INBOX,))


def new_password() -> str:
    """A random password that nats-server reads from its environment as a plain string (it
    parses a variable's value like a configuration value: one starting with a digit fails)."""
    return f"p{secrets.token_hex(24)}"


def password_variable(user: str) -> str:
    """The environment variable of nats-server that holds ``user``'s password."""
    return f"NATS_{user.upper().replace('-', '_')}_PASSWORD"


def authorization(spec: StreamSpec, users: Iterable[tuple[str, Role]]) -> str:
    """The ``authorization`` block for ``users`` (name, role); no other client gets in."""
    lines = ["authorization {", "  users = ["]
    for user, role in users:
        allowed = permissions(role, spec, user)
        lines += [
            "    {",
            f"      user: {user}",
            f"      password: ${password_variable(user)}",
            "      permissions: {",
            f"        publish: {_subjects(allowed.publish)}",
            f"        subscribe: {_subjects(allowed.subscribe)}",
            "      }",
            "    }",
        ]
    return "\n".join([*lines, "  ]", "}", ""])


@dataclass(frozen=True)
class NatsNode:
    """One node of a local NATS cluster: its name and the loopback ports of the routes, its
    own (``route_port``) and the other nodes' (``peers``)."""

    name: str
    route_port: int
    peers: tuple[int, ...]


def cluster_nodes(count: int) -> list[NatsNode]:
    """``count`` nodes routed to each other, on free loopback ports (none for one node)."""
    if count == 1:
        return []
    ports = [free_port() for _ in range(count)]
    return [
        NatsNode(f"nats-{n}", port, tuple(p for p in ports if p != port))
        for n, port in enumerate(ports, 1)
    ]


def nats_spec(
    stream: StreamSpec,
    users: Iterable[tuple[str, Role]],
    pki: TestPki | None = None,
    node: NatsNode | None = None,
) -> ProcessSpec:
    """:data:`~sessiond.cluster.specs.NATS` that lets in only ``users``, each with its role's
    permissions, reading their passwords from its environment (:func:`password_variable`).

    With ``pki`` it serves TLS only (``tls://``) with that certificate and requires a client
    certificate signed by that CA. With ``node`` it is that node of a cluster: routes to the
    other nodes (with ``pki``, mutual TLS with the same CA), JetStream replicated among them.
    """
    config = (NATS.config or "") + authorization(stream, users)
    if node is not None:
        routes = ", ".join(f'"nats-route://{LOOPBACK}:{port}"' for port in node.peers)
        route_lines = [
            f"server_name: {node.name}",
            "cluster {",
            "  name: sessiond",
            f'  listen: "{LOOPBACK}:{node.route_port}"',
            f"  routes: [{routes}]",
            *(f"  {line}" for line in _tls_block(pki)),
            "}",
        ]
        config += "\n".join([*route_lines, ""])
    if pki is None:
        return replace(NATS, config=config)
    return replace(NATS, config=config + "\n".join([*_tls_block(pki), ""]), scheme="tls")


def _tls_block(pki: TestPki | None) -> list[str]:
    """A ``tls`` block with ``pki``'s certificate that requires a peer certificate of its CA."""
    if pki is None:
        return []
    return [
        "tls {",
        f'  cert_file: "{pki.cert_file}"',
        f'  key_file: "{pki.key_file}"',
        f'  ca_file: "{pki.ca_file}"',
        "  verify: true",
        "}",
    ]


def _subjects(subjects: tuple[str, ...]) -> str:
    if not subjects:
        return '{ deny: [">"] }'
    items = "".join(f'            "{subject}"\n' for subject in subjects)
    return f"{{\n          allow: [\n{items}          ]\n        }}"
