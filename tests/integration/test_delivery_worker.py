"""The delivery worker in this process, on a real NATS server and a real Redis, delivering to
real HTTP receivers: ordering, retries, dead letters, a receiver that is down, a receiver or
a worker down for longer than the revocation stream keeps events, a forged event, a removed
receiver, a worker restart, a NATS restart. (Real worker processes:
tests/e2e/test_receivers_delivery.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from sessiond.broadcast.stream import (
    MAX_EVENT_BYTES,
    MSG_ID_HEADER,
    JetStreamPublisher,
    StreamSpec,
    connect,
    ensure_stream,
)
from sessiond.events import Revocation, SessionRevoked, SubjectRevoked, encode, new_event_id
from sessiond.receivers.config import Catalog
from sessiond.receivers.models import Receiver, new_secret
from sessiond.receivers.redis import RedisReceiverRegistry
from sessiond.receivers.stream import DeliveryStream
from sessiond.workers.delivery import (
    Context,
    DeliveryMetrics,
    DeliveryWorker,
    RetryPolicy,
    Sender,
    consumer_name,
    replay_dead_letters,
)
from support.polling import eventually
from support.receivers import ReceiverServer
from support.secrets import register
from support.servers import ServerProcess
from support.signing import KEYSET, signer, verifier

FAST = RetryPolicy(budget=1.0, base=0.05, cap=0.2)
#: Retries for longer than any test keeps a receiver down.
PATIENT = RetryPolicy(budget=60.0, base=0.05, cap=0.3)


def session(n: int = 0, **fields: object) -> SessionRevoked:
    now = time.time()
    return SessionRevoked(
        id=new_event_id(),
        at=now,
        sid=f"sid{n:06d}",
        expires_at=now + 300,
        **fields,  # type: ignore[arg-type]
    )


def webhook(receiver_id: str, server: ReceiverServer, **fields: object) -> Receiver:
    secret = new_secret()
    register("webhook secret", secret)
    return Receiver(
        id=receiver_id,
        kind="webhook",
        endpoint=server.url,
        secret=secret,
        created_at=time.time() - 1,
        **fields,  # type: ignore[arg-type]
    )


def sids(server: ReceiverServer) -> list[str]:
    """The session ids a webhook receiver got, in arrival order, repeats dropped by
    ``webhook-id`` (as a receiver following Standard Webhooks does)."""
    seen: set[str] = set()
    out = []
    for received in list(server.received):
        if received.headers["webhook-id"] not in seen:
            seen.add(received.headers["webhook-id"])
            out.append(json.loads(received.body)["data"]["sid"])
    return out


@dataclass
class Worker:
    """A delivery worker running in this process until :meth:`stop`."""

    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.stop_event.set()
        await self.task


@dataclass
class Setup:
    nc: NATS
    spec: StreamSpec
    registry: RedisReceiverRegistry
    publisher: JetStreamPublisher
    metrics: DeliveryMetrics

    def context(self, policy: RetryPolicy = FAST, catalog: Catalog | None = None) -> Context:
        return Context(
            stream=DeliveryStream(self.spec, max_age=3600.0),
            verifier=verifier(),
            keyset=lambda: KEYSET,
            issuer="https://auth.test",
            catalog=catalog or Catalog(self.registry),
            sender=Sender(),
            policy=policy,
            metrics=self.metrics,
            ack_wait=2.0,
        )

    def worker(self, policy: RetryPolicy = FAST, catalog: Catalog | None = None) -> Worker:
        """A worker delivering (its catalog re-read every 50 ms)."""
        stop = asyncio.Event()
        worker = DeliveryWorker(self.context(policy, catalog), refresh=0.05)
        return Worker(stop, asyncio.create_task(worker.run(self.nc, stop)))

    async def publish(self, *events: Revocation) -> None:
        for event in events:
            await self.publisher.publish(event)

    async def forgotten(self) -> None:
        """Wait until the revocation stream has dropped every event (its max age passed)."""
        js = self.nc.jetstream()
        for _ in range(100):
            if (await js.stream_info(self.spec.name)).state.messages == 0:
                return
            await asyncio.sleep(0.1)
        pytest.fail(f"the revocation stream {self.spec.name} still holds events")

    def count(self, metric: str, receiver: str) -> float:
        value = self.metrics.registry.get_sample_value(
            f"sessiond_delivery_{metric}_total", {"receiver": receiver}
        )
        return value or 0.0


@contextlib.asynccontextmanager
async def deployment(nats_url: str, redis_url: str, spec: StreamSpec) -> AsyncIterator[Setup]:
    """The revocation stream of ``spec`` on ``nats_url``, its publisher, a receivers' registry."""
    nc = await connect(nats_url, "test-delivery")
    await ensure_stream(nc.jetstream(), spec)
    registry = RedisReceiverRegistry.from_url(redis_url)
    try:
        yield Setup(nc, spec, registry, JetStreamPublisher(nc, spec, signer()), DeliveryMetrics())
    finally:
        await registry.aclose()
        await nc.close()


@pytest.fixture
async def setup(
    nats_server: ServerProcess, redis_url: str, spec: StreamSpec
) -> AsyncIterator[Setup]:
    async with deployment(nats_server.url, redis_url, spec) as setup:
        yield setup


@pytest.fixture
async def forgetful(
    nats_server: ServerProcess, redis_url: str, spec: StreamSpec
) -> AsyncIterator[Setup]:
    """``setup`` with a revocation stream that keeps events only one second."""
    short = replace(spec, max_age=1.0, duplicate_window=1.0)
    async with deployment(nats_server.url, redis_url, short) as setup:
        yield setup


@pytest.fixture
async def running(setup: Setup) -> AsyncIterator[Setup]:
    """``setup`` with a worker delivering."""
    worker = setup.worker()
    yield setup
    await worker.stop()


async def test_each_receiver_gets_every_event_in_order(running: Setup) -> None:
    with ReceiverServer() as one, ReceiverServer() as two:
        await running.registry.add(webhook("one", one))
        await running.registry.add(webhook("two", two))
        await asyncio.sleep(0.3)  # the worker has made both consumers
        events = [session(n) for n in range(20)]
        await running.publish(*events)
        await eventually(
            lambda: len(one.received) >= 20 and len(two.received) >= 20, 10, "delivered"
        )
        assert sids(one) == sids(two) == [e.sid for e in events]
        await eventually(lambda: running.count("delivered", "one") == 20, 1, "counted")


async def test_a_receiver_down_for_longer_than_the_revocation_stream_keeps_events_gets_them(
    forgetful: Setup,
) -> None:
    """It gets every event once back, each once and in order, and never holds up another."""
    with ReceiverServer() as down, ReceiverServer() as up:
        await forgetful.registry.add(webhook("down", down))
        await forgetful.registry.add(webhook("up", up))
        worker = forgetful.worker(PATIENT)
        await asyncio.sleep(0.3)
        down.stop()
        events = [session(n) for n in range(10)]
        await forgetful.publish(*events)
        await eventually(lambda: len(up.received) == 10, 5, "the other receiver got everything")
        await forgetful.forgotten()
        await asyncio.sleep(1)  # down for a while: the worker keeps retrying
        assert forgetful.count("retried", "down") > 0
        down.start()
        await eventually(lambda: len(down.received) >= 10, 10, "the receiver caught up once back")
        await asyncio.sleep(0.3)
        assert [json.loads(r.body)["data"]["sid"] for r in down.received] == [e.sid for e in events]
        assert forgetful.count("failed", "down") == 0
        await worker.stop()


async def test_a_worker_down_for_longer_than_the_revocation_stream_keeps_events_loses_none(
    forgetful: Setup,
) -> None:
    with ReceiverServer() as receiver:
        await forgetful.registry.add(webhook("crm", receiver))
        worker = forgetful.worker()
        await forgetful.publish(session(0))
        await eventually(lambda: len(receiver.received) == 1, 5, "delivered before the stop")
        await worker.stop()
        events = [session(n) for n in range(1, 11)]
        await forgetful.publish(*events)
        await forgetful.forgotten()
        worker = forgetful.worker()
        await eventually(lambda: len(receiver.received) >= 11, 10, "every event after a restart")
        await asyncio.sleep(0.3)
        assert sids(receiver) == ["sid000000", *(e.sid for e in events)]
        await worker.stop()


async def test_a_refused_event_is_dead_lettered_at_once_and_the_next_ones_go(
    running: Setup,
) -> None:
    with ReceiverServer(status=400) as receiver:
        await running.registry.add(webhook("picky", receiver))
        await asyncio.sleep(0.3)
        refused = session(0)
        await running.publish(refused)
        await eventually(lambda: running.count("failed", "picky") == 1, 5, "dead-lettered")
        receiver.status = 200
        await running.publish(session(1))
        await eventually(lambda: sids(receiver) == ["sid000001"], 5, "the next one delivered")
        (letter,) = await running.registry.dead_letters("picky")
        assert (letter.event_id, letter.attempts, letter.kind) == (refused.id, 1, "session")
        assert letter.error.startswith("HTTP 400")
        assert receiver.answered.count(400) == 1


async def test_an_event_failing_until_its_budget_is_spent_is_dead_lettered(
    running: Setup,
) -> None:
    with ReceiverServer(status=503) as receiver:
        await running.registry.add(webhook("flaky", receiver))
        await asyncio.sleep(0.3)
        published = time.time()
        await running.publish(session(0))
        await eventually(lambda: running.count("failed", "flaky") == 1, 5, "dead-lettered")
        (letter,) = await running.registry.dead_letters("flaky")
        assert letter.at - published == pytest.approx(FAST.budget, abs=0.5)
        assert len(receiver.answered) == letter.attempts > 2
        assert set(receiver.answered) == {503}
        assert running.count("retried", "flaky") == letter.attempts - 1


async def test_a_forged_event_is_never_passed_on(running: Setup) -> None:
    with ReceiverServer() as receiver:
        await running.registry.add(webhook("crm", receiver))
        await asyncio.sleep(0.3)
        forged = session(666)
        await running.nc.jetstream().publish(
            running.spec.subject_for(forged), encode(forged), headers={MSG_ID_HEADER: forged.id}
        )
        await running.publish(session(1))
        await eventually(lambda: sids(receiver) == ["sid000001"], 5, "the genuine event")
        assert running.count("rejected", "crm") == 1


async def test_a_receiver_gets_only_what_it_asked_for_and_what_came_after_it(
    running: Setup,
) -> None:
    await running.publish(session(0))  # before the receiver existed
    with ReceiverServer() as receiver:
        await running.registry.add(webhook("subjects", receiver, events=("subject",)))
        await asyncio.sleep(0.3)
        now = time.time()
        subject = SubjectRevoked(
            id=new_event_id(), at=now, sub="alice", not_before=int(now), expires_at=now + 300
        )
        await running.publish(session(1), subject)
        await eventually(lambda: len(receiver.received) == 1, 5, "the subject event")
        await asyncio.sleep(0.3)
        assert [json.loads(r.body)["data"]["sub"] for r in receiver.received] == ["alice"]


async def test_a_removed_receivers_consumer_is_deleted(running: Setup) -> None:
    with ReceiverServer() as receiver:
        await running.registry.add(webhook("gone", receiver))
        js = running.nc.jetstream()
        stream = running.context().stream.name

        async def consumers() -> list[str]:
            with contextlib.suppress(NotFoundError):  # the worker has not made its stream yet
                return [c.name for c in await js.consumers_info(stream)]
            return []

        for _ in range(100):
            if consumer_name("gone") in await consumers():
                break
            await asyncio.sleep(0.05)
        assert consumer_name("gone") in await consumers()
        await running.registry.remove("gone")
        for _ in range(100):
            if consumer_name("gone") not in await consumers():
                break
            await asyncio.sleep(0.05)
        assert consumer_name("gone") not in await consumers()


async def test_a_new_worker_resumes_where_the_last_one_stopped(setup: Setup) -> None:
    with ReceiverServer() as receiver:
        await setup.registry.add(webhook("crm", receiver))
        first = [session(n) for n in range(5)]
        worker = setup.worker()
        await setup.publish(*first)
        await eventually(lambda: len(receiver.received) == 5, 5, "the first worker delivered")
        await worker.stop()
        later = [session(n) for n in range(5, 10)]
        await setup.publish(*later)
        worker = setup.worker()
        await eventually(lambda: len(sids(receiver)) == 10, 5, "the second worker delivered")
        await worker.stop()
        assert sids(receiver) == [e.sid for e in first + later]
        # At least once: the POST in flight when the first worker stopped may come again; what
        # was acknowledged never does.
        assert len(receiver.received) <= 11


async def test_delivery_resumes_after_a_nats_restart(
    own_nats: ServerProcess, redis_url: str, spec: StreamSpec
) -> None:
    async with deployment(own_nats.url, redis_url, spec) as setup:
        worker = setup.worker()
        try:
            with ReceiverServer() as receiver:
                await setup.registry.add(webhook("crm", receiver))
                await asyncio.sleep(0.3)
                await setup.publish(session(0))
                await eventually(lambda: sids(receiver) == ["sid000000"], 5, "before the restart")
                own_nats.stop()
                own_nats.start()  # same port and directory: the streams and consumer survive
                await eventually(lambda: setup.nc.is_connected, 10, "reconnected")
                await setup.publish(session(1), session(2))
                await eventually(lambda: len(sids(receiver)) == 3, 15, "after the restart")
                assert sids(receiver) == ["sid000000", "sid000001", "sid000002"]
        finally:
            await worker.stop()


async def test_dead_letters_replayed_once_the_receiver_accepts_are_delivered_and_forgotten(
    running: Setup,
) -> None:
    with ReceiverServer(status=400) as receiver:
        await running.registry.add(webhook("picky", receiver))
        await asyncio.sleep(0.3)
        refused = [session(n) for n in range(3)]
        await running.publish(*refused)
        await eventually(lambda: running.count("failed", "picky") == 3, 5, "dead-lettered")
        receiver.status = 200
        outcomes = await replay_dead_letters(running.context(), running.nc, "picky")
        assert [outcome for _, outcome in outcomes] == ["delivered"] * 3
        assert sids(receiver) == [e.sid for e in refused]  # oldest first
        assert await running.registry.dead_letters("picky") == []
        assert await replay_dead_letters(running.context(), running.nc, "picky") == []


async def test_a_replay_that_fails_again_keeps_the_dead_letter(running: Setup) -> None:
    with ReceiverServer(status=400) as receiver:
        await running.registry.add(webhook("picky", receiver))
        await asyncio.sleep(0.3)
        await running.publish(session(0))
        await eventually(lambda: running.count("failed", "picky") == 1, 5, "dead-lettered")
        receiver.status = 410
        ((letter, outcome),) = await replay_dead_letters(running.context(), running.nc, "picky")
        assert outcome.startswith("failed again: HTTP 410")
        assert await running.registry.dead_letters("picky") == [letter]


async def test_a_receiver_of_the_file_starts_at_what_the_revocation_stream_holds(
    forgetful: Setup,
) -> None:
    """Not at the days of events in the copy: a new receiver is not flooded with history."""
    worker = forgetful.worker()  # makes the copy
    await asyncio.sleep(0.3)
    await forgetful.publish(session(0))
    await forgetful.forgotten()  # in the copy, no longer in the revocation stream
    await worker.stop()
    with ReceiverServer() as receiver:
        fixed = msgspec.structs.replace(webhook("from-git", receiver), created_at=None)
        worker = forgetful.worker(catalog=Catalog(forgetful.registry, (fixed,)))
        await asyncio.sleep(0.3)
        await forgetful.publish(session(1))
        await eventually(lambda: len(receiver.received) == 1, 5, "the new event")
        await asyncio.sleep(0.3)
        assert sids(receiver) == ["sid000001"]
        await worker.stop()


async def test_the_largest_message_the_revocation_stream_takes_does_not_stall_the_copy(
    running: Setup,
) -> None:
    with ReceiverServer() as receiver:
        await running.registry.add(webhook("crm", receiver))
        await asyncio.sleep(0.3)
        headers = {MSG_ID_HEADER: new_event_id()}
        js = running.nc.jetstream()
        size = MAX_EVENT_BYTES - len(f"{MSG_ID_HEADER}: {headers[MSG_ID_HEADER]}") - 64
        await js.publish(f"{running.spec.subject_prefix}.session", b"x" * size, headers=headers)
        await running.publish(session(1))
        await eventually(lambda: sids(receiver) == ["sid000001"], 5, "the event behind it")
        assert running.count("rejected", "crm") == 1  # unsigned: not passed on


async def test_a_failing_copy_is_logged_once_and_its_recovery_too(
    nats_server: ServerProcess, redis_url: str, spec: StreamSpec, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker starts before the revocation stream exists: the copy has nothing to copy
    from, and says so; once the stream exists, the copy works and events go out."""
    nc = await connect(nats_server.url, "test-delivery")
    registry = RedisReceiverRegistry.from_url(redis_url)
    setup = Setup(nc, spec, registry, JetStreamPublisher(nc, spec, signer()), DeliveryMetrics())
    worker = setup.worker()
    try:
        with ReceiverServer() as receiver:
            await registry.add(webhook("crm", receiver))
            failing = f"the copy of {spec.name} for delivery fails: stream not found"
            await eventually(lambda: failing in caplog.text, 5, "the failing copy logged")
            await asyncio.sleep(0.5)
            assert caplog.text.count(failing) == 1
            await ensure_stream(nc.jetstream(), spec)
            await setup.publish(session(0))
            await eventually(lambda: sids(receiver) == ["sid000000"], 30, "copied and delivered")
            working = f"the copy of {spec.name} for delivery works again"
            await eventually(lambda: working in caplog.text, 1, "the recovery logged")
    finally:
        await worker.stop()
        await registry.aclose()
        await nc.close()
