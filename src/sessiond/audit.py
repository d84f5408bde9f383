"""The audit trail: who created, refreshed or revoked which session, when, why, from where.

Each action is one :class:`AuditEvent`, written as ONE log line on the logger
``sessiond.audit`` (level INFO) whose message is the event as compact JSON (control characters
escaped, so a hostile reason or user agent cannot split the line); the decoded dict is also
attached to the record as ``record.audit`` for structured handlers. Example message::

    {"action":"session.revoked","at":1700000000.5,"actor":{"type":"service","id":"c1",
    "name":"tests"},"source":{"ip":"10.0.0.7","user_agent":"curl/8"},"session_id":"…",
    "reason":"offboarded","reason_code":"forced","event_id":"…"}

A revocation's ``reason_code`` is its event's (see :data:`sessiond.events.ReasonCode`), the
machine-readable why that the 401 of a token it rejects also carries.

When the process has a NATS connection (``SESSIOND_NATS_URL``), the same JSON is published,
core NATS, fire-and-forget, on the subject ``<SESSIOND_NATS_SUBJECT>-audit`` (by default
``sessiond.revocations-audit``), gathered for :data:`PUBLISH_DELAY` so that the events of a
busy moment leave in one write (events still waiting when the process stops are not sent).
That subject is deliberately *outside* the revocation stream's ``<SESSIOND_NATS_SUBJECT>.>``:
audit events are not revocations and must not be
stored in, replayed from or fill that stream. Subscribe to it (or capture it in a stream of
your own) to ship the trail elsewhere; publishing is best effort and never fails a request;
the log line is the record of authority.

An event never carries a secret: no access or refresh token, no credential secret or hash,
only identifiers (subject, session id, token ``jti``, credential id and name, revocation id).
``actor`` is the service credential for service routes, ``{"type": "client", "session_id"}``
for actions taken with a session's own tokens (refresh, logout, RFC 7009 revoke), and
``{"type": "system"}`` when the service is driven without a request. ``source.ip`` is the
peer address of the connection (the ASGI ``client``); ``X-Forwarded-For`` is not trusted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

import msgspec
from nats.aio.client import Client as NATS

from sessiond.events import ReasonCode

log = logging.getLogger("sessiond.audit")

Action = Literal[
    "session.created",
    "session.refreshed",
    "session.authenticated",
    "session.data_updated",
    "session.revoked",
    "subject.revoked",
    "token.revoked",
    "all.revoked",
    "refresh.reused",
    "receiver.created",
    "receiver.deleted",
]

MAX_USER_AGENT = 256
MAX_REQUEST_ID = 64
PUBLISH_TIMEOUT = 0.5
#: Seconds an audit event waits for others to be published with it, in one NATS write.
PUBLISH_DELAY = 0.01
_encode = msgspec.json.Encoder().encode


class Actor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who acted: a service credential (id and name, never its secret), a client, the system."""

    type: Literal["service", "client", "system"]
    id: str | None = None
    name: str | None = None
    session_id: str | None = None

    @classmethod
    def service(cls, credential_id: str, name: str) -> Actor:
        return cls(type="service", id=credential_id, name=name)

    @classmethod
    def client(cls, session_id: str) -> Actor:
        return cls(type="client", session_id=session_id)


SYSTEM = Actor(type="system")


class Source(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where the request came from: peer IP, user agent and request id (both truncated)."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def of(
        cls, ip: str | None, user_agent: str | None = None, request_id: str | None = None
    ) -> Source:
        return cls(
            ip=ip,
            user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
            request_id=request_id[:MAX_REQUEST_ID] if request_id else None,
        )


class AuditContext(msgspec.Struct, frozen=True, kw_only=True):
    """The who and where of one request, handed by the API layer to the session service."""

    actor: Actor = SYSTEM
    source: Source = Source()


NO_CONTEXT = AuditContext()


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One audited action; ``event_id`` is the id of the revocation event it stored, if any."""

    action: Action
    at: float
    actor: Actor
    source: Source = Source()
    subject: str | None = None
    session_id: str | None = None
    jti: str | None = None
    reason: str | None = None
    reason_code: ReasonCode | None = None
    event_id: str | None = None
    #: The receiver registered or removed (``receiver.*`` actions; never its secret).
    receiver: str | None = None


class Auditor:
    """Writes audit events to the ``sessiond.audit`` log and, if connected, to NATS.

    ``connection`` returns the current NATS connection or ``None``; without it (embedded mode,
    tests) the auditor only logs.
    """

    def __init__(
        self,
        subject: str | None = None,
        connection: Callable[[], NATS | None] | None = None,
    ) -> None:
        self.subject = subject
        self._connection = connection
        self._waiting: list[bytes] = []
        self._publishing: set[asyncio.Task[None]] = set()

    async def record(self, event: AuditEvent) -> None:
        """Log ``event`` and publish it soon, best effort: this never raises."""
        data = _encode(event)
        log.info(data.decode(), extra={"audit": msgspec.to_builtins(event)})
        if self.subject is None or self._connection is None:
            return
        self._waiting.append(data)
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_later(PUBLISH_DELAY, self._publish_waiting)

    def _publish_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        nc = self._connection() if self._connection is not None else None
        if nc is None or self.subject is None or not nc.is_connected:
            return
        task = asyncio.create_task(self._publish(nc, self.subject, waiting))
        self._publishing.add(task)  # a reference until it is done, so it is not collected
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, nc: NATS, subject: str, events: list[bytes]) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                for data in events:
                    await nc.publish(subject, data)
        except Exception as exc:  # best effort: the log line is the record
            log.debug("audit events not published on %s: %r", subject, exc)


def audit_subject(nats_subject: str) -> str:
    """The NATS subject of audit events: ``<nats_subject>-audit``, outside the stream."""
    return f"{nats_subject}-audit"


def event(action: Action, at: float, by: AuditContext, **fields: Any) -> AuditEvent:
    """An event of ``action`` taken by ``by``."""
    return AuditEvent(action=action, at=at, actor=by.actor, source=by.source, **fields)
