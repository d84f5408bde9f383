"""The delivery worker: tells every receiver about every revocation, in its wire format.

::

    sessiond-delivery     # needs SESSIOND_REDIS_URL, SESSIOND_NATS_URL, SESSIOND_KEYSET_FILE

It reads the revocation events from the deliveries' own copy of the revocation stream
(``<stream>_DELIVERIES``, :mod:`sessiond.receivers.stream`: the NATS server copies every event
into it, whether a worker runs or not, and keeps it ``SESSIOND_DELIVERY_RETENTION`` seconds,
3 days by default), which the worker creates at start. There it has one **durable JetStream
pull consumer per receiver** (``deliver-<receiver id>``), so each receiver has its own
position, kept by the NATS server: a slow or unreachable receiver holds back only its own
consumer, never another receiver, and never a revocation (the worker only reads).

**Per receiver**, events go out one at a time in stream order (so in order for each session
and subject too): its consumer hands out one message at a time. Each event's signature is
checked first (``broadcast/signing.py``, like every follower: a forged event is never passed
on). Then the receiver's request is made (``receivers/formats.py``) and POSTed:

- an accepted answer: delivered, the stream message is acknowledged;
- no answer, a timeout, a 408, 425, 429 or 5xx: retried after an exponential backoff with
  jitter, capped (:class:`RetryPolicy`), until the event is ``SESSIOND_DELIVERY_RETRY_BUDGET``
  seconds old (a day by default), the last attempt at that age;
- any other answer (the receiver refuses this event for good), or the budget is spent: a
  :class:`~sessiond.receivers.models.DeadLetter` is written to the registry, then the message
  is acknowledged and the next event goes.

The budget counts from when the event was stored, not from its first attempt: events queued
behind a failing one spend it meanwhile, so a receiver dead for longer than the budget has its
backlog dead-lettered in turn instead of one budget per event, and every event is done with
(delivered or dead-lettered) well before the copy drops it (retention exceeds the budget).

**At least once.** A message is acknowledged only once it was delivered or dead-lettered; while
it is worked on the worker tells the server so (``in_progress``) every third of ``ack_wait``.
A worker killed meanwhile loses nothing: the server hands the unacknowledged message out
again ``ack_wait`` seconds later to the restarted worker, before any after it. A receiver
may therefore get an event twice; the ``jti`` of a token, and the ``webhook-id`` of a
webhook, are the same each time, so it drops repeats by them. Run one worker: two would
share each consumer and could reorder its messages.

**Catalog.** Receivers come from the registry (the API) and the receivers file; the worker
looks at them every ``refresh`` seconds, starts delivering to new ones, and deletes the
consumer of a removed one. A receiver registered through the API gets the events from its
``created_at`` on; one from the file gets the events of the last ``Settings.stream_max_age``
seconds (what the revocation stream holds) when the worker first sees it, then every later one.

**Metrics** (``--metrics-port``, on ``--metrics-host``, default 127.0.0.1), by receiver:
``sessiond_delivery_delivered``, ``_retried``, ``_failed`` (dead-lettered), ``_rejected``
(bad signatures); ``sessiond_delivery_lag_seconds`` (how long ago the event being delivered
was stored; 0 when the receiver is caught up) and ``sessiond_delivery_pending``
(events waiting); ``sessiond_delivery_copy_behind`` (events of the revocation stream not yet
in the copy: normally 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import itertools
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import httpx
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from sessiond.broadcast.access import NatsAccess
from sessiond.broadcast.signing import SIGNATURE_HEADER, EventVerifier, Rejected
from sessiond.broadcast.stream import API_TIMEOUT, cancel_task, connect, ensure_stream
from sessiond.errors import ConfigError, ReceiverNotFound, StoreUnavailable
from sessiond.events import Revocation, kind_of
from sessiond.receivers.base import DEAD_LETTERS_KEPT
from sessiond.receivers.config import Catalog, load_receivers
from sessiond.receivers.formats import outgoing
from sessiond.receivers.models import DeadLetter, Receiver
from sessiond.receivers.outgoing import Outgoing
from sessiond.receivers.redis import RedisReceiverRegistry
from sessiond.receivers.stream import DeliveryStream
from sessiond.redis_client import RedisTarget
from sessiond.settings import Settings
from sessiond.tokens.keys import Keyset
from sessiond.verifier.keys import LocalKeys

__all__ = (
    "DeliveryMetrics",
    "DeliveryWorker",
    "RetryPolicy",
    "Sender",
    "consumer_name",
    "main",
    "replay_dead_letters",
)

log = logging.getLogger("sessiond.delivery")
T = TypeVar("T")

#: Seconds one POST may take (connect, send, answer).
REQUEST_TIMEOUT = 5.0
#: Seconds the server waits for an acknowledgement before handing a message out again.
ACK_WAIT = 10.0
#: Seconds a fetch waits for new messages.
FETCH_WAIT = 1.0
EXIT_ERROR = 2
#: Seconds ``--replay`` waits for NATS.
REPLAY_CONNECT_WAIT = 30.0
#: Answers after which the same request may succeed later.
_TRANSIENT_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of an event until it is ``budget`` seconds old; before attempt ``n + 1`` a wait
    of between half and all of ``min(cap, base * 2**(n-1))`` seconds (the jitter keeps
    retries from marching in step).

    The defaults (a day; 0.5 s doubling to an hour) try about 45 times, where Svix's
    Standard Webhooks schedule tries 8 times over a day; a receiver back after an outage has
    its events within the wait in course (about as long as it was down, up to an hour)."""

    budget: float = 86400.0
    base: float = 0.5
    cap: float = 3600.0

    def __post_init__(self) -> None:
        if self.budget <= 0 or self.base <= 0 or self.cap < self.base:
            raise ValueError("budget > 0, base > 0 and cap >= base")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        ceiling = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not secrets


class DeliveryMetrics:
    """The worker's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, text: str) -> Counter:
            return Counter(f"sessiond_delivery_{name}", text, ["receiver"], registry=registry)

        self.delivered = counter("delivered", "Events a receiver accepted.")
        self.retried = counter("retried", "Attempts that failed and were tried again.")
        self.failed = counter("failed", "Events dead-lettered: refused, or out of attempts.")
        self.rejected = counter("rejected", "Stream events not passed on: bad signature.")
        self.lag = Gauge(
            "sessiond_delivery_lag_seconds",
            "Seconds since the event being delivered was stored (0: caught up).",
            ["receiver"],
            registry=registry,
        )
        self.pending = Gauge(
            "sessiond_delivery_pending",
            "Events in the stream not yet handed to the receiver's delivery.",
            ["receiver"],
            registry=registry,
        )
        self.copy_behind = Gauge(
            "sessiond_delivery_copy_behind",
            "Events of the revocation stream the NATS server has not yet copied for delivery.",
            registry=registry,
        )


Verdict = Literal["delivered", "retry", "refused"]


@dataclass(frozen=True)
class Answer:
    """What became of one POST, and a short reason for the log and the dead letter."""

    verdict: Verdict
    detail: str


class Sender:
    """POSTs requests: no redirects followed (the endpoint is the one registered)."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT, follow_redirects=False, trust_env=False
        )

    async def post(self, endpoint: str, request: Outgoing) -> Answer:
        try:
            response = await self._client.post(
                endpoint, content=request.body, headers=request.headers
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return Answer("retry", f"{type(exc).__name__}: {exc}"[:200])
        status = response.status_code
        if status in request.accepted:
            return Answer("delivered", str(status))
        detail = f"HTTP {status}: {response.text[:200]}"
        transient = status >= 500 or status in _TRANSIENT_STATUSES
        return Answer("retry" if transient else "refused", detail)

    async def aclose(self) -> None:
        await self._client.aclose()


def consumer_name(receiver_id: str) -> str:
    """The durable consumer of ``receiver_id`` on the deliveries' stream."""
    return f"deliver-{receiver_id}"


@dataclass(frozen=True)
class Context:
    """What every receiver's delivery shares."""

    stream: DeliveryStream
    verifier: EventVerifier
    keyset: Callable[[], Keyset]
    issuer: str
    catalog: Catalog
    sender: Sender
    policy: RetryPolicy
    metrics: DeliveryMetrics
    ack_wait: float


class ReceiverDelivery:
    """Delivers the stream to one receiver through its durable consumer."""

    def __init__(self, receiver: Receiver, context: Context) -> None:
        self.receiver = receiver
        self._context = context
        self._name = consumer_name(receiver.id)
        self._label = receiver.id
        self._problem: str | None = None

    def config(self) -> api.ConsumerConfig:
        """The durable consumer: explicit acknowledgements, every redelivery allowed (the
        worker itself gives up, with a dead letter), one message out at a time: the next is
        handed out only once this one is acknowledged, so a message handed out again after a
        crash still comes before the ones behind it.

        It starts at the receiver's registration, or for a receiver of the file at what the
        revocation stream holds now (not the days of the copy)."""
        origin = self._context.stream.origin
        start = self.receiver.created_at or time.time() - origin.max_age
        return api.ConsumerConfig(
            durable_name=self._name,
            description=f"sessiond delivery to receiver {self.receiver.id}",
            deliver_policy=api.DeliverPolicy.BY_START_TIME,
            opt_start_time=_utc(start),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._context.ack_wait,
            max_deliver=-1,
            max_ack_pending=1,
            filter_subject=origin.filter_subject,
        )

    async def run(self, nc: NATS) -> None:
        """Deliver until cancelled; NATS trouble is logged and retried every second."""
        js = nc.jetstream(timeout=API_TIMEOUT)
        while True:
            try:
                await self._follow(js)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._report(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)

    async def _follow(self, js: JetStreamContext) -> None:
        stream = self._context.stream.name
        try:
            await js.consumer_info(stream, self._name)
        except NotFoundError:
            await js.add_consumer(stream, self.config())
            log.info("receiver %s: delivering from consumer %s", self.receiver.id, self._name)
        sub = await js.pull_subscribe_bind(durable=self._name, stream=stream)
        try:
            while True:
                try:
                    (message,) = await sub.fetch(1, timeout=FETCH_WAIT)
                except TimeoutError:
                    self._context.metrics.lag.labels(self._label).set(0)
                    self._context.metrics.pending.labels(self._label).set(0)
                    continue
                await self._handle(message)
                self._report(None)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _handle(self, message: Msg) -> None:
        """Deliver ``message`` and acknowledge it; on an error, hand it back (``nak``)."""
        keepalive = asyncio.create_task(self._keep_alive(message))
        try:
            await self._one(message)
            # Delivered: a stop arriving now must not cost the receiver a repeat.
            await asyncio.shield(message.ack())
        except Exception:
            with contextlib.suppress(Exception):
                await message.nak()
            raise
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive

    async def _keep_alive(self, message: Msg) -> None:
        """Tell the server the message is being worked on, so it is not handed out again."""
        while True:
            await asyncio.sleep(self._context.ack_wait / 3)
            with contextlib.suppress(Exception):
                await message.in_progress()

    async def _one(self, message: Msg) -> None:
        context, metrics = self._context, self._context.metrics
        meta = message.metadata
        stored_at = meta.timestamp.timestamp()
        metrics.pending.labels(self._label).set(meta.num_pending)
        event = await self._event(message.data, message.headers, stored_at, meta.sequence.stream)
        if event is None:
            return
        for attempt in itertools.count(1):
            metrics.lag.labels(self._label).set(max(0.0, time.time() - stored_at))
            answer = await self._attempt(event)
            if answer is None:
                return
            if answer.verdict == "delivered":
                metrics.delivered.labels(self._label).inc()
                return
            left = context.policy.budget - (time.time() - stored_at)
            if answer.verdict == "refused" or left <= 0:
                await self._dead_letter(event, meta.sequence.stream, attempt, answer.detail)
                return
            metrics.retried.labels(self._label).inc()
            self._report(answer.detail)
            await asyncio.sleep(min(context.policy.delay(attempt), left))

    async def _event(
        self, data: bytes, headers: dict[str, str] | None, stored_at: float, seq: int
    ) -> Revocation | None:
        """The event of a message of the copy; ``None`` (logged, counted) if its signature
        does not check out."""
        signature = headers.get(SIGNATURE_HEADER) if headers else None
        event = await self._context.verifier.event(data, signature, stored_at)
        if not isinstance(event, Rejected):
            return event
        self._context.metrics.rejected.labels(self._label).inc()
        log.warning(
            "receiver %s: not passing on the event at sequence %d (%s): %s",
            self.receiver.id,
            seq,
            event.reason,
            event.detail,
        )
        return None

    async def _attempt(self, event: Revocation) -> Answer | None:
        """POST ``event`` in the receiver's format once; ``None`` if that format has nothing
        to say about it."""
        context = self._context
        request = outgoing(event, self.receiver, context.keyset(), context.issuer, time.time())
        if request is None:
            return None
        return await context.sender.post(self.receiver.endpoint, request)

    async def replay(self, js: JetStreamContext, letter: DeadLetter) -> str:
        """Send the event of ``letter`` once more, from the copy; what became of it. Delivered,
        it is no longer a dead letter."""
        try:
            message = await js.get_msg(self._context.stream.name, letter.seq)
        except NotFoundError:
            return "not sent: no longer in the copy of the stream"
        stored_at = message.time.timestamp() if message.time else 0.0
        event = await self._event(message.data or b"", message.headers, stored_at, letter.seq)
        if event is None or event.id != letter.event_id:
            return "not sent: the copy's event at its sequence does not check out"
        answer = await self._attempt(event)
        if answer is not None and answer.verdict != "delivered":
            return f"failed again: {answer.detail}"
        await self._context.catalog.registry.forget(letter)
        return "delivered"

    async def _dead_letter(self, event: Revocation, seq: int, attempts: int, error: str) -> None:
        letter = DeadLetter(
            receiver=self.receiver.id,
            event_id=event.id,
            kind=kind_of(event),
            seq=seq,
            attempts=attempts,
            error=error,
            at=time.time(),
        )
        await _until_stored(lambda: self._context.catalog.registry.dead_letter(letter))
        self._context.metrics.failed.labels(self._label).inc()
        log.error(
            "receiver %s: gave up on event %s (sequence %d) after %d attempt(s): %s",
            self.receiver.id,
            event.id,
            seq,
            attempts,
            error,
        )

    def _report(self, problem: str | None) -> None:
        """One line when deliveries to the receiver start failing or change why, one when
        they work again."""
        if problem is None and self._problem is not None:
            log.info("receiver %s: delivering again", self.receiver.id)
        elif problem is not None and problem != self._problem:
            log.warning("receiver %s: %s (retrying)", self.receiver.id, problem)
        self._problem = problem


async def _until_stored(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, again every second while the registry's store is unreachable."""
    warned = False
    while True:
        try:
            return await call()
        except StoreUnavailable as exc:
            if not warned:
                log.warning("cannot write a dead letter: %s (retrying)", exc.detail)
                warned = True
            await asyncio.sleep(1.0)


def _utc(at: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(at, datetime.UTC)


class DeliveryWorker:
    """Runs a :class:`ReceiverDelivery` for every receiver of the catalog."""

    def __init__(self, context: Context, *, refresh: float = 1.0) -> None:
        self.context = context
        self._refresh = refresh
        self._running: dict[str, tuple[Receiver, asyncio.Task[None]]] = {}
        self._stream_ready = False
        self._copy_problem: str | None = None

    async def run(self, nc: NATS, stop: asyncio.Event) -> None:
        """Deliver on ``nc`` (connected) until ``stop`` is set."""
        js = nc.jetstream(timeout=API_TIMEOUT)
        first = True
        try:
            while not stop.is_set():
                try:
                    await self._sync(nc, js, drop_unknown=first)
                    first = False
                    await self._check_copy(js)
                except (StoreUnavailable, *_NATS_TROUBLE) as exc:
                    log.warning("cannot update the receivers: %s", exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._refresh):
                        await stop.wait()
        finally:
            for _, task in self._running.values():
                await cancel_task(task)

    async def _sync(self, nc: NATS, js: JetStreamContext, *, drop_unknown: bool) -> None:
        if not self._stream_ready:
            await ensure_stream(js, self.context.stream)
            self._stream_ready = True
        wanted = {receiver.id: receiver for receiver in await self.context.catalog.all()}
        for receiver_id, (receiver, task) in list(self._running.items()):
            if wanted.get(receiver_id) != receiver:
                await cancel_task(task)
                del self._running[receiver_id]
                await self._drop(js, receiver_id)
                log.info("receiver %s removed or changed: its delivery stopped", receiver_id)
        if drop_unknown:
            await self._drop_unknown(js, set(wanted))
        for receiver_id, receiver in wanted.items():
            if receiver_id not in self._running:
                delivery = ReceiverDelivery(receiver, self.context)
                task = asyncio.create_task(delivery.run(nc), name=f"deliver-{receiver_id}")
                self._running[receiver_id] = (receiver, task)

    async def _check_copy(self, js: JetStreamContext) -> None:
        """How far the server's copy into the deliveries' stream is behind; one line when it
        reports an error, one when it copies again (the events wait in the revocation
        stream meanwhile, for its minutes only)."""
        info = await js.stream_info(self.context.stream.name)
        for source in info.sources or ():
            self.context.metrics.copy_behind.set(source.lag or 0)
            problem = str(source.error.get("description", source.error)) if source.error else None
            if problem is not None and problem != self._copy_problem:
                log.error("the copy of %s for delivery fails: %s", source.name, problem)
            elif problem is None and self._copy_problem is not None:
                log.info("the copy of %s for delivery works again", source.name)
            self._copy_problem = problem

    async def _drop(self, js: JetStreamContext, receiver_id: str) -> None:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(self.context.stream.name, consumer_name(receiver_id))

    async def _drop_unknown(self, js: JetStreamContext, known: set[str]) -> None:
        """Delete the consumers of receivers removed while no worker ran."""
        prefix = consumer_name("")
        try:
            consumers = await js.consumers_info(self.context.stream.name)
        except NotFoundError:
            return
        for info in consumers:
            name = info.name or ""
            if name.startswith(prefix) and name.removeprefix(prefix) not in known:
                await self._drop(js, name.removeprefix(prefix))


_NATS_TROUBLE = (TimeoutError, OSError, APIError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessiond-delivery",
        description="Deliver revocations to the registered receivers (settings: SESSIOND_*).",
    )
    defaults = RetryPolicy()
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="and this address")
    parser.add_argument("--backoff", type=float, default=defaults.base, help="first wait, s")
    parser.add_argument("--max-backoff", type=float, default=defaults.cap, help="longest wait, s")
    parser.add_argument("--ack-wait", type=float, default=ACK_WAIT, help=argparse.SUPPRESS)
    parser.add_argument(
        "--replay",
        metavar="RECEIVER",
        help="send RECEIVER's dead letters once more, oldest first, print what became of "
        "each and exit (1 if any is left); the delivered ones are no longer dead letters",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """``sessiond-delivery``: deliver until SIGTERM or SIGINT; with ``--replay``, replay a
    receiver's dead letters and exit."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load(os.environ)
        nats_url = _nats_url(settings)
        fixed = load_receivers(settings.receivers_file)
        keys = LocalKeys.load(settings.keyset_file)
        policy = RetryPolicy(settings.delivery_retry_budget, args.backoff, args.max_backoff)
    except (ConfigError, ValueError) as exc:
        text = exc.detail if isinstance(exc, ConfigError) else str(exc)
        print(f"sessiond-delivery: error: {' '.join(text.split())}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per POST: failures are ours
    metrics = DeliveryMetrics()
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, args.metrics_host, registry=metrics.registry)
    registry = RedisReceiverRegistry.from_url(RedisTarget.from_settings(settings))
    context = Context(
        stream=DeliveryStream.from_settings(settings),
        verifier=EventVerifier.from_settings(settings, keys),
        keyset=keys.current,
        issuer=settings.issuer,
        catalog=Catalog(registry, fixed),
        sender=Sender(),
        policy=policy,
        metrics=metrics,
        ack_wait=args.ack_wait,
    )
    access = NatsAccess.from_settings(settings)
    if args.replay is None:
        asyncio.run(_serve(context, nats_url, access, keys))
    elif not asyncio.run(_replay(context, nats_url, access, keys, args.replay)):
        sys.exit(1)


def _nats_url(settings: Settings) -> str:
    """The NATS URL of a worker that also has its Redis; else :class:`ConfigError`."""
    if not (settings.redis_url and settings.nats_url):
        raise ConfigError(
            "SESSIOND_REDIS_URL and SESSIOND_NATS_URL are required: the worker reads the "
            "receivers from Redis and the revocations from the NATS stream"
        )
    return settings.nats_url


async def replay_dead_letters(
    context: Context, nc: NATS, receiver_id: str
) -> list[tuple[DeadLetter, str]]:
    """Send each dead letter of ``receiver_id`` once more, oldest first, from the copy of the
    stream (it keeps them ``SESSIOND_DELIVERY_RETENTION`` seconds); each letter and what
    became of it (``delivered``, or why not). Raises
    :class:`~sessiond.errors.ReceiverNotFound`.

    The receiver may get them after later events: a revocation's meaning does not depend
    on its order with others (none undoes another)."""
    delivery = ReceiverDelivery(await context.catalog.get(receiver_id), context)
    js = nc.jetstream(timeout=API_TIMEOUT)
    letters = await context.catalog.registry.dead_letters(receiver_id, DEAD_LETTERS_KEPT)
    return [(letter, await delivery.replay(js, letter)) for letter in reversed(letters)]


async def _replay(
    context: Context, nats_url: str, access: NatsAccess, keys: LocalKeys, receiver_id: str
) -> bool:
    """``--replay``: print what became of each dead letter; ``True`` if all were delivered."""
    await keys.start()
    nc = None
    try:
        async with asyncio.timeout(REPLAY_CONNECT_WAIT):
            nc = await connect(nats_url, "sessiond-delivery-replay", access)
        outcomes = await replay_dead_letters(context, nc, receiver_id)
    except (ReceiverNotFound, TimeoutError) as exc:
        print(f"sessiond-delivery: error: {exc}", file=sys.stderr)
        return False
    finally:
        if nc is not None:
            await nc.close()
        await context.sender.aclose()
        await context.catalog.registry.aclose()
        await keys.aclose()
    for letter, outcome in outcomes:
        print(f"{letter.event_id} ({letter.kind}, sequence {letter.seq}): {outcome}")
    print(f"{sum(outcome == 'delivered' for _, outcome in outcomes)} of {len(outcomes)} delivered")
    return all(outcome == "delivered" for _, outcome in outcomes)


async def _serve(context: Context, nats_url: str, access: NatsAccess, keys: LocalKeys) -> None:
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await keys.start()
    connecting = asyncio.create_task(connect(nats_url, "sessiond-delivery", access))
    try:
        waiting = asyncio.create_task(stop.wait())
        await asyncio.wait({connecting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if connecting.done():
            log.info(
                "delivery started: stream %s -> %s -> receivers",
                context.stream.origin.name,
                context.stream.name,
            )
            await DeliveryWorker(context).run(connecting.result(), stop)
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await (await connecting).close()
        await context.sender.aclose()
        await context.catalog.registry.aclose()
        await keys.aclose()
    log.info("delivery stopped")


if __name__ == "__main__":
    main()
