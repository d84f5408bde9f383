"""The follower: replays the revocation stream into the local denylist and follows it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from sessiond.broadcast.receipts import Receipt, follower_id
from sessiond.broadcast.receipts import encode as encode_receipt
from sessiond.broadcast.signing import SIGNATURE_HEADER, EventVerifier, Rejected, RejectReason
from sessiond.broadcast.stream import API_TIMEOUT, StreamSpec, cancel_task, ensure_stream
from sessiond.denylist.denylist import Denylist
from sessiond.events import Revocation
from sessiond.settings import ANONYMOUS

log = logging.getLogger("sessiond.broadcast")

#: Called with each applied event, its stream sequence and when the stream stored it (the
#: NATS server's clock, Unix seconds).
OnApplied = Callable[[Revocation, int, float], None]
#: Called with the reason of each event rejected (not applied): a metric label.
OnRejected = Callable[[RejectReason], None]

#: Seconds between the server's idle heartbeats, and between a caught-up follower's receipts.
HEARTBEAT = 0.5
#: While a burst of events is applied, seconds between receipts (the last one always goes).
RECEIPT_INTERVAL = 0.001


class JetStreamFollower:
    """Feeds the stream into a denylist and knows how fresh that denylist is.

    **Delivery.** An ephemeral push consumer of our own (no acks, flow control, idle
    heartbeats, in memory) starts at ``last_applied + 1``. Each message's reply subject
    carries its stream and consumer sequences: a consumer sequence that skips, or a heartbeat
    announcing messages never received, means messages were lost (a slow consumer), and the
    consumer is recreated from ``last_applied + 1``. A stream sequence ``<= last_applied`` is
    skipped, so each event is applied at most once.

    **Signatures.** ``verifier`` checks each event's signature before it is applied
    (``signing.py``): an event that is unsigned, badly signed, signed by an unknown key or
    malformed is logged (its sequence and the reason, never the payload), counted in
    ``rejected`` by reason and skipped, and the follower moves past it.

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

    **Receipts.** Once caught up, and unless ``receipts`` is false, it publishes a
    :class:`~sessiond.broadcast.receipts.Receipt` (on the receipts subject of its NATS
    ``identity``) of ``last_applied`` after applying events and
    every ``heartbeat``, and one with ``leaving`` set from :meth:`aclose`, so that the
    authority answers a revocation only once this follower has applied it.
    """

    def __init__(
        self,
        spec: StreamSpec,
        denylist: Denylist,
        *,
        verifier: EventVerifier,
        on_applied: OnApplied | None = None,
        on_rejected: OnRejected | None = None,
        poll_interval: float = 0.1,
        heartbeat: float = HEARTBEAT,
        stall_after: float = 1.0,
        receipts: bool = True,
        identity: str = ANONYMOUS,
    ) -> None:
        self._spec = spec
        self._denylist = denylist
        self._verifier = verifier
        self._on_applied = on_applied
        self._on_rejected = on_rejected
        self._poll = poll_interval
        self._heartbeat = heartbeat
        self._stall_after = stall_after
        self._receipts = receipts
        self.id = follower_id(identity)
        self._receipts_subject = spec.receipts_subject(identity)
        self._receipt_at = -math.inf  # monotonic time of the last receipt
        self.last_applied = 0  # stream sequence of the last event applied (or skipped)
        self.applied = 0  # events applied
        self.rejected: Counter[RejectReason] = Counter()  # events skipped, by reason
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
        await cancel_task(self._task)
        consumer = self._consumer
        await self._drop_consumer()
        if self._nc is None or not self._nc.is_connected:
            return
        with contextlib.suppress(Exception):
            await self._receipt(leaving=True)
            await self._nc.flush(timeout=1)
        if consumer is not None and self._js is not None:
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
            managed = self._spec.managed
            log.warning(
                "stream %s not found%s", self._spec.name, ": creating it" if managed else ""
            )
            if managed:
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
        if time.monotonic() - self._receipt_at >= self._heartbeat:
            await self._receipt()

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
            signature = headers.get(SIGNATURE_HEADER) if headers is not None else None
            await self._apply(msg.data, signature, seq, stored_at)
            if pending == 0 or time.monotonic() - self._receipt_at > RECEIPT_INTERVAL:
                await self._receipt()
        if pending == 0 and self.staleness(time.time()) > self._poll:
            self._wake.set()  # the server had nothing more: confirm now, not at the next poll

    async def _receipt(self, *, leaving: bool = False) -> None:
        """Tell the authority how far this follower is (buffered: sent by nats-py's flusher)."""
        if not self._receipts or not self._caught_up.is_set() or self._nc is None:
            return
        self._receipt_at = time.monotonic()
        receipt = Receipt(follower=self.id, seq=self.last_applied, leaving=leaving)
        try:
            await self._nc.publish(self._receipts_subject, encode_receipt(receipt))
        except Exception as exc:  # best effort: the authority stops waiting for us after a while
            log.debug("cannot send a receipt: %s", exc)

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

    async def _apply(
        self, payload: bytes, signature: str | None, seq: int, stored_at: float
    ) -> None:
        try:
            event = await self._verifier.event(payload, signature, stored_at)
            if not isinstance(event, Rejected):
                self._denylist.apply(event)
        except Exception as exc:  # a bug: never let one event stop the follower
            log.exception("skipping event at sequence %d", seq)
            event = Rejected("malformed", str(exc))
        self.last_applied = seq  # applied or rejected, this sequence is done
        for at, waiter in self._waiters:
            if at <= seq and not waiter.done():
                waiter.set_result(None)
        if isinstance(event, Rejected):
            self._reject(event, seq)
            return
        self.applied += 1
        if self._on_applied is not None:
            try:
                self._on_applied(event, seq, stored_at)
            except Exception:
                log.exception("on_applied hook failed at sequence %d", seq)

    def _reject(self, rejected: Rejected, seq: int) -> None:
        self.rejected[rejected.reason] += 1
        log.warning(
            "rejected the event at sequence %d of stream %s (%s): %s",
            seq,
            self._spec.name,
            rejected.reason,
            rejected.detail,
        )
        if self._on_rejected is not None:
            try:
                self._on_rejected(rejected.reason)
            except Exception:
                log.exception("on_rejected hook failed at sequence %d", seq)


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
