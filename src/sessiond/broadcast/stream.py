"""The JetStream stream of revocations: its settings, the connection, and the publisher.

* :class:`StreamSpec` and :func:`ensure_stream`: the stream keeps each event as long as a token
  it matches can live, on file storage, deduplicated by event id (``Nats-Msg-Id``), and refuses
  new messages when full (discard ``new``): overflow is a publish error, never a revocation
  silently dropped.
* :func:`connect`: a connection that never gives up and notices a dead link within seconds.
* :class:`JetStreamPublisher`: signs each event (``signing.py``), returns once the stream has
  stored it, retrying through a leader election or a reconnect to another node for up to its
  budget (``SESSIOND_PUBLISH_BUDGET``), else raises :class:`~sessiond.errors.BroadcastUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import APIError, ServiceUnavailableError
from nats.js.manager import JetStreamManager

from sessiond.broadcast.access import VERIFY_FAILED_HINT, NatsAccess
from sessiond.broadcast.signing import SIGNATURE_HEADER, EventSigner
from sessiond.errors import BroadcastUnavailable
from sessiond.events import Revocation, encode, kind_of
from sessiond.settings import Settings

log = logging.getLogger("sessiond.broadcast")

MSG_ID_HEADER = "Nats-Msg-Id"
STREAM_MAX_BYTES = 1024**3
MAX_EVENT_BYTES = 64 * 1024
DUPLICATE_WINDOW_MAX = 120.0
PUBLISH_TIMEOUT = 1.0  # seconds one attempt waits for the stream's acknowledgement
#: Seconds a publish keeps retrying: longer than a JetStream leader election (up to ~5 s
#: measured with a SIGKILLed stream leader on a loaded machine).
PUBLISH_BUDGET = 10.0
RETRY_WAIT = 0.1  # seconds between attempts: no responders during an election come at once
API_TIMEOUT = 1.0  # seconds for JetStream API requests (stream info, consumer create)
CONFIRM_WAIT = 0.25  # seconds a publish waits for the followers' receipts (receipts.py)
RECONNECT_WAIT = 0.25
PING_INTERVAL = 1.0  # with 2 outstanding pings: a silently dead link is noticed in ~3 s
_STREAM_NAME_IN_USE = 10058
TRANSIENT = (nats.errors.Error, TimeoutError, OSError)
REFUSED = (
    ssl.SSLCertVerificationError,
    nats.errors.AuthorizationError,
    nats.errors.InvalidUserCredentialsError,
    nats.errors.SecureConnRequiredError,
    nats.errors.SecureConnWantedError,
    nats.errors.SecureConnFailedError,
)


@dataclass(frozen=True)
class StreamSpec:
    """The JetStream stream of revocation events: one subject per kind under one prefix."""

    name: str
    subject_prefix: str
    max_age: float  # seconds: the longest access-token lifetime plus leeway and a margin
    duplicate_window: float
    num_replicas: int = 1
    max_bytes: int = STREAM_MAX_BYTES
    #: Whether this process creates and updates the stream (the authority and the relay do);
    #: a verifier in a backend only reads it, and waits for it to exist.
    managed: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamSpec:
        max_age = float(settings.stream_max_age)
        return cls(
            name=settings.nats_stream,
            subject_prefix=settings.nats_subject,
            max_age=max_age,
            duplicate_window=min(DUPLICATE_WINDOW_MAX, max_age),
            num_replicas=settings.nats_replicas,
        )

    @property
    def filter_subject(self) -> str:
        """Every subject of the stream: ``<prefix>.>``."""
        return f"{self.subject_prefix}.>"

    @property
    def receipts_filter(self) -> str:
        """``<prefix>-applied.>``: every follower's receipts, outside the stream."""
        return f"{self.subject_prefix}-applied.>"

    def receipts_subject(self, identity: str) -> str:
        """``<prefix>-applied.<identity>``: where the follower of NATS identity ``identity``
        publishes its receipts (and, with least privilege, only it may)."""
        return f"{self.subject_prefix}-applied.{identity}"

    def subject_for(self, event: Revocation) -> str:
        """``<prefix>.<kind>``."""
        return f"{self.subject_prefix}.{kind_of(event)}"

    def config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.name,
            description="sessiond revocation events (managed by sessiond: do not edit)",
            subjects=[self.filter_subject],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            num_replicas=self.num_replicas,
            max_age=self.max_age,
            duplicate_window=self.duplicate_window,
            discard=api.DiscardPolicy.NEW,
            max_bytes=self.max_bytes,
            max_msgs=-1,
            max_msg_size=MAX_EVENT_BYTES,
            deny_delete=True,  # sequences stay contiguous: the follower's watermark relies on it
        )


class Configured(Protocol):
    """A stream sessiond creates and keeps to its configuration."""

    def config(self) -> api.StreamConfig: ...


async def ensure_stream(js: JetStreamManager, spec: Configured) -> api.StreamInfo:
    """Create the stream, or bring an existing one to ``spec``; replicas may race to do it.

    Creating with an identical configuration succeeds on the server, and a differing one is
    updated; a setting the server cannot change (storage) raises its ``APIError``.
    """
    config = spec.config()
    try:
        return await js.add_stream(config)
    except APIError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
    return await js.update_stream(config)


async def open_stream(js: JetStreamManager, spec: StreamSpec) -> api.StreamInfo:
    """The stream's info; created or updated first if ``spec.managed``. Raises
    ``NotFoundError`` for a stream that is not ours to create and does not exist yet."""
    if spec.managed:
        return await ensure_stream(js, spec)
    return await js.stream_info(spec.name)


def nats_servers(url: str) -> list[str]:
    """The servers of ``SESSIOND_NATS_URL``: one URL, or a comma-separated list of the nodes of
    a cluster (``nats://a:4222,nats://b:4222``)."""
    return [server.strip() for server in url.split(",") if server.strip()]


async def connect(url: str, name: str, access: NatsAccess | None = None) -> NATS:
    """Connect to NATS (``url``: one server or a comma-separated list, see
    :func:`nats_servers`) with ``access``'s credentials and TLS, retrying forever; return once
    connected to one of them.

    The client then reconnects forever (``max_reconnect_attempts=-1``) and pings every second,
    so that a silently dead link is noticed in about 3 s. Its callbacks only log. nats-py
    itself retries a first connect with these options; the loop here is a backstop. Run it
    in a task when start-up must not wait for NATS.
    """
    events = _ConnectionLog(name, url)
    while True:
        try:
            nc: NATS = await nats.connect(
                nats_servers(url),
                name=name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT,
                connect_timeout=2.0,
                ping_interval=PING_INTERVAL,
                max_outstanding_pings=2,
                error_cb=events.error,
                disconnected_cb=events.disconnected,
                reconnected_cb=events.reconnected,
                closed_cb=events.closed,
                **(access or NatsAccess()).options,
            )
        except TRANSIENT as exc:
            await events.error(exc)
            await asyncio.sleep(RECONNECT_WAIT)
        else:
            events.client = nc
            log.info("connected to NATS %s as %s", events.where, name)
            events.refused = None
            return nc


class _ConnectionLog:
    """nats-py connection callbacks. They never raise: a raising callback stops reconnects."""

    def __init__(self, name: str, url: str) -> None:
        self.where = ",".join(_without_credentials(server) for server in nats_servers(url))
        self._name = name
        self.client: NATS | None = None
        self._quiet = False  # while disconnected, only the first error is a warning
        self.refused: str | None = None  # the last refusal logged as an error

    async def error(self, exc: Exception) -> None:
        with contextlib.suppress(Exception):
            connected = self.client is not None and self.client.is_connected
            text = _explain(exc)
            if _refused(exc):  # configuration, not an outage: an error, once
                level = logging.DEBUG if text == self.refused else logging.ERROR
                self.refused = text
            else:
                level = logging.DEBUG if self._quiet and not connected else logging.WARNING
            log.log(level, "NATS %s (%s): %s", self.where, self._name, text)
            self._quiet = not connected

    async def disconnected(self) -> None:
        with contextlib.suppress(Exception):
            if self.client is None or not self.client.is_closed:
                log.warning("disconnected from NATS %s; reconnecting", self.where)

    async def reconnected(self) -> None:
        with contextlib.suppress(Exception):
            log.info("reconnected to NATS %s", self.where)
            self._quiet = False

    async def closed(self) -> None:
        with contextlib.suppress(Exception):
            log.info("NATS connection to %s closed", self.where)


def _without_credentials(url: str) -> str:
    """``url`` without a user or password in it: the URL is logged."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _refused(exc: Exception) -> bool:
    """The server refused us (certificate, credentials, permissions): retrying will not help.

    nats-py raises a plain ``Error`` when the server refuses the credentials of a first
    connect, and ``AuthorizationError`` only on a reconnect."""
    text = str(exc).lower()
    return isinstance(exc, REFUSED) or any(
        refusal in text for refusal in ("permissions violation", "authorization violation")
    )


def _explain(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{VERIFY_FAILED_HINT} ({exc.verify_message})"
    return str(exc) or type(exc).__name__


class JetStreamPublisher:
    """Publishes events, signed by ``signer``, to the stream; returns once the stream has
    stored each one.

    An attempt waits ``timeout`` seconds for the acknowledgement; a failed attempt that may
    succeed later (no responders or no answer while the stream elects a leader, JetStream
    temporarily unavailable, a connection moving to another node) is retried, with the same
    ``Nats-Msg-Id``, until ``budget`` seconds have passed since the first one.
    """

    def __init__(
        self,
        nc: NATS,
        spec: StreamSpec,
        signer: EventSigner,
        *,
        timeout: float = PUBLISH_TIMEOUT,
        budget: float = PUBLISH_BUDGET,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=timeout)
        self._spec = spec
        self._signer = signer
        self._timeout = timeout
        self._budget = budget

    async def publish(self, event: Revocation) -> api.PubAck:
        """Publish ``event`` with its id as ``Nats-Msg-Id`` and its signature as
        ``Sessiond-Signature``; a duplicate ack is a success (a retry after a lost ack).

        Raises :class:`BroadcastUnavailable` once the budget has passed without an
        acknowledgement (the event may still have been stored: retry, it is deduplicated),
        and at once when the stream refuses the event (an API error other than 503).
        """
        payload = encode(event)
        signature = self._signer.sign(payload, time.time())
        # Only these headers: every stored header costs each replica parsing time at catch-up.
        # (The stream owns the prefix; no other stream can take the subject.)
        headers = {MSG_ID_HEADER: event.id, SIGNATURE_HEADER: signature}
        deadline = time.monotonic() + self._budget
        while True:
            left = deadline - time.monotonic()
            try:
                return await self._attempt(event, payload, headers, min(self._timeout, left))
            except (*TRANSIENT, BroadcastUnavailable) as exc:
                if _final(exc) or deadline - time.monotonic() <= RETRY_WAIT:
                    raise BroadcastUnavailable(
                        f"stream {self._spec.name} did not acknowledge the revocation: "
                        f"{exc or type(exc).__name__}"
                    ) from exc
            await asyncio.sleep(RETRY_WAIT)

    async def _attempt(
        self, event: Revocation, payload: bytes, headers: dict[str, str], wait: float
    ) -> api.PubAck:
        if not self._nc.is_connected:  # reconnecting, perhaps to another node of the cluster
            raise BroadcastUnavailable("not connected to NATS")
        subject = self._spec.subject_for(event)
        return await self._js.publish(subject, payload, timeout=max(0.05, wait), headers=headers)


def _final(exc: Exception) -> bool:
    """The stream's own answer (full, message too large, ...): retrying does not change it.

    A 503 (JetStream temporarily unavailable, e.g. no quorum) passes, like a timeout."""
    return isinstance(exc, APIError) and not isinstance(exc, ServiceUnavailableError)


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it to end.

    Insists: on Python 3.11 ``asyncio.wait_for`` (used inside nats-py's requests) swallows a
    cancellation that arrives just as its future completes.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if task is not None and not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
