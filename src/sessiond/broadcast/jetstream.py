"""Revocations over NATS JetStream: one durable stream, a publisher, and a follower per replica.

* :class:`StreamSpec` and :func:`ensure_stream`: the stream keeps each event as long as a token
  it matches can live, on file storage, deduplicated by event id (``Nats-Msg-Id``), and refuses
  new messages when full (discard ``new``): overflow is a publish error, never a revocation
  silently dropped.
* :func:`connect`: a connection that never gives up and notices a dead link within seconds.
* :class:`JetStreamPublisher`: returns once the stream has stored the event, else raises
  :class:`~sessiond.errors.BroadcastUnavailable` within about a second.
* :class:`JetStreamFollower`: replays the stream into the local denylist, follows it live,
  repairs its consumer, and knows at all times how fresh the denylist is.
* :class:`JetStreamBus`: both, as a :class:`~sessiond.broadcast.base.RevocationBus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError
from nats.js.manager import JetStreamManager

from sessiond.broadcast.events import Revocation, decode, encode, kind_of
from sessiond.broadcast.snapshots import read_snapshot, stream_created
from sessiond.denylist.denylist import Denylist
from sessiond.errors import BroadcastUnavailable, ConfigError
from sessiond.settings import Settings

log = logging.getLogger("sessiond.broadcast")

MSG_ID_HEADER = "Nats-Msg-Id"
STREAM_MAX_BYTES = 1024**3
MAX_EVENT_BYTES = 64 * 1024
DUPLICATE_WINDOW_MAX = 120.0
PUBLISH_TIMEOUT = 1.0  # seconds to wait for the stream's acknowledgement
API_TIMEOUT = 1.0  # seconds for JetStream API requests (stream info, consumer create)
ECHO_WAIT = 0.25  # seconds a publish waits for its own event to come back to this replica
RECONNECT_WAIT = 0.25
PING_INTERVAL = 1.0  # with 2 outstanding pings: a silently dead link is noticed in ~3 s
_STREAM_NAME_IN_USE = 10058
_TRANSIENT = (nats.errors.Error, TimeoutError, OSError)

#: Called with each applied event, its stream sequence and when the stream stored it (the
#: NATS server's clock, Unix seconds).
OnApplied = Callable[[Revocation, int, float], None]


@dataclass(frozen=True)
class StreamSpec:
    """The JetStream stream of revocation events: one subject per kind under one prefix."""

    name: str
    subject_prefix: str
    max_age: float  # seconds: the longest access-token lifetime plus leeway and a margin
    duplicate_window: float
    num_replicas: int = 1
    max_bytes: int = STREAM_MAX_BYTES

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


async def ensure_stream(js: JetStreamManager, spec: StreamSpec) -> api.StreamInfo:
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


async def connect(url: str, name: str) -> NATS:
    """Connect to NATS, retrying forever; return once connected.

    The client then reconnects forever (``max_reconnect_attempts=-1``) and pings every second,
    so that a silently dead link is noticed in about 3 s. Its callbacks only log. nats-py
    itself retries a first connect with these options; the loop here is a backstop. Run it
    in a task when start-up must not wait for NATS.
    """
    events = _ConnectionLog(name, url)
    while True:
        try:
            nc: NATS = await nats.connect(
                url,
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
            )
        except _TRANSIENT as exc:
            await events.error(exc)
            await asyncio.sleep(RECONNECT_WAIT)
        else:
            events.client = nc
            log.info("connected to NATS %s as %s", events.where, name)
            return nc


class _ConnectionLog:
    """nats-py connection callbacks. They never raise: a raising callback stops reconnects."""

    def __init__(self, name: str, url: str) -> None:
        parts = urlsplit(url)  # never log credentials embedded in the URL
        self.where = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        self._name = name
        self.client: NATS | None = None
        self._quiet = False  # while disconnected, only the first error is a warning

    async def error(self, exc: Exception) -> None:
        with contextlib.suppress(Exception):
            connected = self.client is not None and self.client.is_connected
            level = logging.DEBUG if self._quiet and not connected else logging.WARNING
            log.log(level, "NATS %s (%s): %s", self.where, self._name, exc or type(exc).__name__)
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


class JetStreamPublisher:
    """Publishes events to the stream; returns once the stream has stored each one."""

    def __init__(self, nc: NATS, spec: StreamSpec, *, timeout: float = PUBLISH_TIMEOUT) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=timeout)
        self._spec = spec
        self._timeout = timeout

    async def publish(self, event: Revocation) -> api.PubAck:
        """Publish ``event`` with its id as ``Nats-Msg-Id``; a duplicate ack is a success.

        Raises :class:`BroadcastUnavailable` at once when disconnected, and after ``timeout``
        when the stream does not answer; the event may still have been stored (retry: dedup).
        """
        if not self._nc.is_connected:
            raise BroadcastUnavailable("not connected to NATS: the revocation was not published")
        try:
            return await self._js.publish(
                self._spec.subject_for(event),
                encode(event),
                timeout=self._timeout,
                # Only the id header: every stored header costs each replica parsing time at
                # catch-up. (The stream owns the prefix; no other stream can take the subject.)
                headers={MSG_ID_HEADER: event.id},
            )
        except _TRANSIENT as exc:
            raise BroadcastUnavailable(
                f"stream {self._spec.name} did not acknowledge the revocation: "
                f"{exc or type(exc).__name__}"
            ) from exc


class JetStreamFollower:
    """Feeds the stream into a denylist and knows how fresh that denylist is.

    **Delivery.** An ephemeral push consumer of our own (no acks, flow control, idle
    heartbeats, in memory) starts at ``last_applied + 1``. Each message's reply subject
    carries its stream and consumer sequences: a consumer sequence that skips, or a heartbeat
    announcing messages never received, means messages were lost (a slow consumer), and the
    consumer is recreated from ``last_applied + 1``. A stream sequence ``<= last_applied`` is
    skipped, so each event is applied at most once. A malformed event is logged, counted in
    ``malformed`` and skipped.

    **Freshness.** Every ``poll_interval`` a watermark request asks the stream for its first
    and last sequence. If every sequence up to the last one is applied (or already gone from
    the stream), the denylist holds every event acknowledged before the request was *sent*,
    and that send time is confirmed. :meth:`staleness` is the time since the last
    confirmation (``inf`` before the first), measured on both the wall clock and the
    monotonic clock, whichever is larger, so a clock step back never makes it look fresher.
    When NATS is unreachable, requests fail, nothing is confirmed, and staleness passes any
    budget within budget + ``poll_interval``.

    **Repair.** The consumer is recreated after every reconnect (an ephemeral consumer does
    not survive a server restart), on a gap, after three missed heartbeats, and when the
    follower is behind the stream and has applied nothing for ``stall_after`` seconds while
    connected. A missing stream is created again; a replaced one (new creation time, or a
    last sequence below what was applied before the request) is replayed from its start.
    """

    def __init__(
        self,
        spec: StreamSpec,
        denylist: Denylist,
        *,
        on_applied: OnApplied | None = None,
        poll_interval: float = 0.1,
        heartbeat: float = 0.5,
        stall_after: float = 1.0,
    ) -> None:
        self._spec = spec
        self._denylist = denylist
        self._on_applied = on_applied
        self._poll = poll_interval
        self._heartbeat = heartbeat
        self._stall_after = stall_after
        self.last_applied = 0  # stream sequence of the last event applied (or skipped)
        self.applied = 0  # events applied
        self.malformed = 0  # events skipped as malformed
        self.resyncs = 0  # consumers created
        self._confirmed: tuple[float, float] | None = None  # (wall, monotonic) of a watermark
        self._caught_up = asyncio.Event()
        self._wake = asyncio.Event()
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._consumer: str | None = None
        self._generation = 0  # messages from an older consumer are ignored
        self._expected = 1  # next consumer sequence
        self._activity = 0.0  # monotonic time of the last message or heartbeat
        self._resync: str | None = "start"  # why the consumer must be (re)created, if it must
        self._reconnects = 0
        self._stream_created: object = None
        self._lag: tuple[int, float] | None = None  # (last_applied, since) while behind
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (sequence, wake-up)

    async def start(self, nc: NATS, *, after: int = 0, stream_created: object = None) -> None:
        """Start following on ``nc`` (connected) in a background task.

        ``after``: the denylist already holds every event up to this stream sequence (a
        snapshot was loaded), of the stream created at ``stream_created`` (its
        ``StreamInfo.created``); following starts at ``after + 1``. If the stream turns out to
        be another one, or shorter than ``after``, it is replayed from its start.
        """
        if after < 0:
            raise ValueError("after must be >= 0")
        self.last_applied = after
        self._stream_created = stream_created
        self._nc, self._js = nc, nc.jetstream(timeout=API_TIMEOUT)
        self._reconnects = nc.stats["reconnects"]
        self._task = asyncio.create_task(self._run(), name="sessiond-revocation-follower")

    @property
    def stream_created(self) -> object:
        """``StreamInfo.created`` of the stream ``last_applied`` belongs to (``None`` until
        known): a snapshot taken at ``last_applied`` is of that stream."""
        return self._stream_created

    def staleness(self, now: float) -> float:
        """Seconds since the denylist was last known to hold everything; ``now`` is wall time."""
        if self._confirmed is None:
            return math.inf
        wall, mono = self._confirmed
        return max(now - wall, time.monotonic() - mono, 0.0)

    async def wait_caught_up(self, within: float | None = None) -> bool:
        """Wait for the first catch-up; ``False`` if ``within`` seconds passed first."""
        try:
            async with asyncio.timeout(within):
                await self._caught_up.wait()
        except TimeoutError:
            return False
        return True

    async def wait_applied(self, seq: int, within: float) -> bool:
        """Wait until stream sequence ``seq`` is applied; ``False`` if ``within`` passed first."""
        if self.last_applied >= seq:
            return True
        waiter = (seq, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(within):
                await waiter[1]
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        return True

    async def aclose(self) -> None:
        await _cancel(self._task)
        consumer = self._consumer
        await self._drop_consumer()
        if consumer is not None and self._js is not None and self._nc and self._nc.is_connected:
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(self._spec.name, consumer)

    async def _run(self) -> None:
        failing = False
        while True:
            self._wake.clear()
            try:
                await self._tick()
                failing = False
            except Exception as exc:  # never let the follower die; staleness tells the rest
                level = logging.DEBUG if failing else logging.WARNING
                log.log(level, "revocation follower: %s (retrying)", exc or type(exc).__name__)
                failing = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()

    async def _tick(self) -> None:
        assert self._nc is not None
        assert self._js is not None
        nc, js = self._nc, self._js
        if not nc.is_connected:
            self._lag = None
            return
        if nc.stats["reconnects"] != self._reconnects:
            self._reconnects = nc.stats["reconnects"]
            self._invalidate("reconnected")
        if time.monotonic() - self._activity > 3 * self._heartbeat:
            self._invalidate("missed heartbeats")
        if self._resync is not None:
            await self._resubscribe()
        sent, applied = (time.time(), time.monotonic()), self.last_applied
        try:
            info = await js.stream_info(self._spec.name)
        except NotFoundError:
            log.warning("stream %s not found: creating it", self._spec.name)
            await ensure_stream(js, self._spec)
            return
        first, last = info.state.first_seq, info.state.last_seq
        # The answer is as of the request: only a last sequence below what was applied before
        # it was sent means the stream went backwards (deleted and created again).
        if last < applied or self._stream_created not in (None, info.created):
            log.warning("stream %s was replaced: replaying it from its start", self._spec.name)
            self.last_applied = 0
            self._invalidate("stream replaced")
        self._stream_created = info.created
        if max(self.last_applied, first - 1) >= last:
            self._confirm(sent, last)
        elif self._lag is None or self._lag[0] != self.last_applied:
            self._lag = (self.last_applied, sent[1])
        elif sent[1] - self._lag[1] > self._stall_after:
            self._invalidate(f"no progress at sequence {self.last_applied} of {last}")

    def _confirm(self, sent: tuple[float, float], last: int) -> None:
        self._lag = None
        if self._confirmed is None or sent[1] > self._confirmed[1]:
            self._confirmed = sent
        if time.monotonic() - sent[1] > self._poll:
            self._wake.set()  # the answer came late (a busy replay): confirm a fresher time
        if not self._caught_up.is_set():
            log.info("caught up with stream %s at sequence %d", self._spec.name, last)
            self._caught_up.set()

    def _invalidate(self, reason: str) -> None:
        self._generation += 1
        if self._resync is None:
            self._resync = reason
        self._wake.set()

    async def _resubscribe(self) -> None:
        assert self._nc is not None
        assert self._js is not None
        reason, self._resync = self._resync, None
        self._generation += 1
        generation = self._generation
        await self._drop_consumer()

        async def deliver(msg: Msg) -> None:
            await self._deliver(msg, generation)

        inbox = self._nc.new_inbox()
        start = self.last_applied + 1
        self._expected, self._activity, self._lag = 1, time.monotonic(), None
        try:
            self._sub = await self._nc.subscribe(
                inbox, cb=deliver, pending_msgs_limit=1 << 20, pending_bytes_limit=1 << 30
            )
            info = await self._js.add_consumer(
                self._spec.name,
                api.ConsumerConfig(
                    deliver_subject=inbox,
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=start,
                    filter_subject=self._spec.filter_subject,
                    ack_policy=api.AckPolicy.NONE,
                    max_deliver=1,
                    flow_control=True,
                    idle_heartbeat=self._heartbeat,
                    mem_storage=True,
                    num_replicas=1,
                    inactive_threshold=5.0,
                ),
            )
        except BaseException:
            self._invalidate(reason or "retry")
            raise
        self._consumer = info.name
        self.resyncs += 1
        log.info("following stream %s from sequence %d (%s)", self._spec.name, start, reason)

    async def _drop_consumer(self) -> None:
        sub, self._sub, self._consumer = self._sub, None, None
        if sub is not None:
            with contextlib.suppress(Exception):  # the server drops the consumer when idle
                await sub.unsubscribe()

    async def _deliver(self, msg: Msg, generation: int) -> None:
        if generation != self._generation:
            return
        self._activity = time.monotonic()
        headers = msg.headers
        if headers is not None and headers.get("Status") == "100" and not msg.data:
            await self._control(msg, headers)
            return
        position = _position(msg.reply)
        if position is None:
            return
        seq, consumer_seq, stored_at, pending = position
        if consumer_seq != self._expected:
            self._invalidate(f"consumer sequence {consumer_seq}, expected {self._expected}")
            return
        self._expected += 1
        if seq > self.last_applied:
            self._apply(msg.data, seq, stored_at)
        if pending == 0 and self.staleness(time.time()) > self._poll:
            self._wake.set()  # the server had nothing more: confirm now, not at the next poll

    async def _control(self, msg: Msg, headers: dict[str, str]) -> None:
        assert self._nc is not None
        if msg.reply:  # flow control: everything sent before it has been applied
            await self._nc.publish(msg.reply)
            return
        stalled = headers.get("Nats-Consumer-Stalled")
        if stalled:
            await self._nc.publish(stalled)
        last = headers.get("Nats-Last-Consumer", "")
        if last.isdigit() and int(last) >= self._expected:
            self._invalidate(f"heartbeat: {last} sent, {self._expected - 1} received")

    def _apply(self, payload: bytes, seq: int, stored_at: float) -> None:
        self.last_applied = seq  # applied or skipped, this sequence is done
        for at, waiter in self._waiters:
            if at <= seq and not waiter.done():
                waiter.set_result(None)
        try:
            event = decode(payload)
            self._denylist.apply(event)
        except Exception as exc:
            self.malformed += 1
            bug = not isinstance(exc, msgspec.MsgspecError)
            log.error("skipping event at sequence %d: %s", seq, exc, exc_info=bug)  # noqa: TRY400
            return
        self.applied += 1
        if self._on_applied is not None:
            try:
                self._on_applied(event, seq, stored_at)
            except Exception:
                log.exception("on_applied hook failed at sequence %d", seq)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it to end.

    Insists: on Python 3.11 ``asyncio.wait_for`` (used inside nats-py's requests) swallows a
    cancellation that arrives just as its future completes.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if task is not None and not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())


def _position(reply: str) -> tuple[int, int, float, int] | None:
    """(stream sequence, consumer sequence, time stored in the stream, pending) from a
    JetStream message's reply subject."""
    tokens = reply.split(".")
    if len(tokens) < 9 or tokens[0] != "$JS" or tokens[1] != "ACK":
        return None
    at = 5 if len(tokens) == 9 else 7  # v1: $JS.ACK.<stream>...; v2 adds domain and hash
    try:
        return int(tokens[at]), int(tokens[at + 1]), int(tokens[at + 2]) / 1e9, int(tokens[at + 3])
    except (ValueError, IndexError):
        return None


class JetStreamBus:
    """:class:`~sessiond.broadcast.base.RevocationBus` over JetStream, on one connection.

    :meth:`start` waits up to ``connect_wait`` seconds for NATS, then goes on connecting,
    creating the stream and catching up in the background; until then :meth:`publish`
    raises :class:`BroadcastUnavailable` and :meth:`staleness` is ``inf``.
    """

    def __init__(
        self,
        url: str,
        spec: StreamSpec,
        denylist: Denylist,
        *,
        name: str = "sessiond",
        budget: float = 1.0,
        on_applied: OnApplied | None = None,
        connect_wait: float = 1.0,
    ) -> None:
        self.url, self.spec, self.name = url, spec, name
        self._denylist = denylist
        self.snapshot_seq = 0  # the stream sequence of the snapshot loaded at start, if any
        self.follower = JetStreamFollower(
            spec, denylist, on_applied=on_applied, stall_after=max(0.2, budget / 2)
        )
        self.nc: NATS | None = None
        self._publisher: JetStreamPublisher | None = None
        self._connect_wait = connect_wait
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        denylist: Denylist,
        *,
        name: str = "sessiond",
        on_applied: OnApplied | None = None,
    ) -> JetStreamBus:
        if not settings.nats_url:
            raise ConfigError("SESSIOND_NATS_URL: required for the JetStream bus")
        return cls(
            settings.nats_url,
            StreamSpec.from_settings(settings),
            denylist,
            name=name,
            budget=settings.staleness_budget,
            on_applied=on_applied,
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="sessiond-nats-connect")
        await asyncio.wait({self._task}, timeout=self._connect_wait)
        if self._task.done():
            self._task.result()  # a bug, not an outage: surface it
        else:
            log.warning("NATS not ready yet: connecting in the background (not ready until then)")

    async def _connect(self) -> None:
        self.nc = nc = await connect(self.url, self.name)
        js = nc.jetstream(timeout=API_TIMEOUT)
        failing = False
        while True:
            try:
                info = await ensure_stream(js, self.spec)
                break
            except _TRANSIENT as exc:  # a config the server refuses too: log it and retry
                level = logging.DEBUG if failing else logging.ERROR
                log.log(level, "cannot set up stream %s: %s (retrying)", self.spec.name, exc)
                failing = True
                await asyncio.sleep(0.5)
        self._publisher = JetStreamPublisher(nc, self.spec)
        after = await self._load_snapshot(js, info)
        await self.follower.start(nc, after=after, stream_created=info.created if after else None)

    async def _load_snapshot(self, js: JetStreamContext, info: api.StreamInfo) -> int:
        """Load the stream's snapshot if it fits this stream; the sequence it covers, else 0.

        Never raises: without a usable snapshot the follower replays the whole stream.
        """
        snapshot = await read_snapshot(js, self.spec)
        if snapshot is None:
            return 0
        last = info.state.last_seq
        if snapshot.stream_created != stream_created(info.created) or snapshot.seq > last:
            log.warning(
                "ignoring the denylist snapshot of stream %s: it is of another stream "
                "(created %s, sequence %d; the stream: created %s, last sequence %d)",
                self.spec.name,
                snapshot.stream_created,
                snapshot.seq,
                stream_created(info.created),
                last,
            )
            return 0
        start = time.perf_counter()
        try:
            self._denylist.load_snapshot(snapshot.data)  # decodes fully before merging
        except Exception as exc:
            log.warning(
                "cannot load the denylist snapshot of stream %s: %s (replaying it all)",
                self.spec.name,
                exc,
            )
            return 0
        log.info(
            "loaded the denylist snapshot of stream %s at sequence %d in %.2f s",
            self.spec.name,
            snapshot.seq,
            time.perf_counter() - start,
        )
        self.snapshot_seq = snapshot.seq
        return snapshot.seq

    async def publish(self, event: Revocation) -> None:
        """Publish; once the stream acknowledged, wait (briefly) until the event is back here.

        This replica receives its own event through the same server fan-out as every other
        replica, so answering after that makes "rejected everywhere right after the revoke
        call returns" hold in practice, not only within the measured bound. The wait is
        capped: durability was settled by the acknowledgement.
        """
        ack = await self.publish_ack(event)
        await self.follower.wait_applied(ack.seq, ECHO_WAIT)

    async def publish_ack(self, event: Revocation) -> api.PubAck:
        """:meth:`publish`, returning the stream's acknowledgement (``duplicate``, ``seq``)."""
        if self._publisher is None:
            raise BroadcastUnavailable("not connected to NATS yet: the revocation is not published")
        return await self._publisher.publish(event)

    def staleness(self, now: float) -> float:
        return self.follower.staleness(now)

    async def aclose(self) -> None:
        await _cancel(self._task)
        await self.follower.aclose()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
