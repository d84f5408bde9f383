"""The delivery worker in this process, on a real NATS server and a real Redis, delivering to
real HTTP receivers: ordering, retries, dead letters, a receiver that is down, a forged
event, a removed receiver, a worker restart, a NATS restart. (Real worker processes:
tests/e2e/test_receivers_delivery.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import nats
import pytest
from nats.aio.client import Client as NATS

from sessiond.broadcast.stream import (
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
from sessiond.workers.delivery import (
    Context,
    DeliveryMetrics,
    DeliveryWorker,
    RetryPolicy,
    Sender,
    consumer_name,
)
from support.polling import eventually
from support.receivers import ReceiverServer
from support.secrets import register
from support.servers import ServerProcess
from support.signing import KEYSET, signer, verifier

FAST = RetryPolicy(attempts=4, base=0.05, cap=0.2)


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
class Setup:
    nc: NATS
    spec: StreamSpec
    registry: RedisReceiverRegistry
    publisher: JetStreamPublisher
    metrics: DeliveryMetrics

    def context(self, policy: RetryPolicy = FAST) -> Context:
        return Context(
            spec=self.spec,
            verifier=verifier(),
            keyset=lambda: KEYSET,
            issuer="https://auth.test",
            catalog=Catalog(self.registry),
            sender=Sender(),
            policy=policy,
            metrics=self.metrics,
            ack_wait=2.0,
        )

    async def publish(self, *events: Revocation) -> None:
        for event in events:
            await self.publisher.publish(event)

    def count(self, metric: str, receiver: str) -> float:
        value = self.metrics.registry.get_sample_value(
            f"sessiond_delivery_{metric}_total", {"receiver": receiver}
        )
        return value or 0.0


@pytest.fixture
async def setup(
    nats_server: ServerProcess, redis_url: str, spec: StreamSpec
) -> AsyncIterator[Setup]:
    nc = await nats.connect(nats_server.url)
    await ensure_stream(nc.jetstream(), spec)
    registry = RedisReceiverRegistry.from_url(redis_url)
    yield Setup(nc, spec, registry, JetStreamPublisher(nc, spec, signer()), DeliveryMetrics())
    await registry.aclose()
    await nc.close()


@pytest.fixture
async def running(setup: Setup) -> AsyncIterator[Setup]:
    """``setup`` with a worker delivering (its catalog re-read every 50 ms)."""
    stop = asyncio.Event()
    task = asyncio.create_task(DeliveryWorker(setup.context(), refresh=0.05).run(setup.nc, stop))
    yield setup
    stop.set()
    await task


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


async def test_a_receiver_that_is_down_gets_everything_after_and_never_holds_up_another(
    setup: Setup,
) -> None:
    running = setup
    patient = replace(FAST, attempts=50, cap=0.3)
    stop = asyncio.Event()
    worker = DeliveryWorker(running.context(patient), refresh=0.05)
    with ReceiverServer() as down, ReceiverServer() as up:
        await running.registry.add(webhook("down", down))
        await running.registry.add(webhook("up", up))
        task = asyncio.create_task(worker.run(running.nc, stop))
        await asyncio.sleep(0.3)
        down.stop()
        events = [session(n) for n in range(10)]
        await running.publish(*events)
        await eventually(lambda: len(up.received) == 10, 5, "the other receiver got everything")
        await asyncio.sleep(2)  # down for a while: the worker keeps retrying
        assert running.count("retried", "down") > 0
        down.start()
        await eventually(lambda: len(sids(down)) == 10, 10, "the receiver caught up once back")
        assert sids(down) == [e.sid for e in events]
        assert running.count("failed", "down") == 0
        stop.set()
        await task


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


async def test_an_event_failing_every_attempt_is_dead_lettered_after_them(running: Setup) -> None:
    with ReceiverServer(status=503) as receiver:
        await running.registry.add(webhook("flaky", receiver))
        await asyncio.sleep(0.3)
        await running.publish(session(0))
        await eventually(lambda: running.count("failed", "flaky") == 1, 5, "dead-lettered")
        assert receiver.answered == [503] * FAST.attempts
        assert running.count("retried", "flaky") == FAST.attempts - 1
        (letter,) = await running.registry.dead_letters("flaky")
        assert letter.attempts == FAST.attempts


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
        name = consumer_name(running.spec, "gone")

        async def consumers() -> list[str]:
            return [c.name for c in await js.consumers_info(running.spec.name)]

        await eventually(lambda: True)
        for _ in range(100):
            if name in await consumers():
                break
            await asyncio.sleep(0.05)
        assert name in await consumers()
        await running.registry.remove("gone")
        for _ in range(100):
            if name not in await consumers():
                break
            await asyncio.sleep(0.05)
        assert name not in await consumers()


async def test_a_new_worker_resumes_where_the_last_one_stopped(setup: Setup) -> None:
    with ReceiverServer() as receiver:
        await setup.registry.add(webhook("crm", receiver))
        first = [session(n) for n in range(5)]
        stop = asyncio.Event()
        task = asyncio.create_task(
            DeliveryWorker(setup.context(), refresh=0.05).run(setup.nc, stop)
        )
        await setup.publish(*first)
        await eventually(lambda: len(receiver.received) == 5, 5, "the first worker delivered")
        stop.set()
        await task
        later = [session(n) for n in range(5, 10)]
        await setup.publish(*later)
        stop = asyncio.Event()
        task = asyncio.create_task(
            DeliveryWorker(setup.context(), refresh=0.05).run(setup.nc, stop)
        )
        await eventually(lambda: len(receiver.received) == 10, 5, "the second worker delivered")
        stop.set()
        await task
        assert sids(receiver) == [e.sid for e in first + later]
        assert len(receiver.received) == 10  # nothing again


async def test_delivery_resumes_after_a_nats_restart(
    own_nats: ServerProcess, redis_url: str, spec: StreamSpec
) -> None:
    nc = await connect(own_nats.url, "test-delivery")
    await ensure_stream(nc.jetstream(), spec)
    registry = RedisReceiverRegistry.from_url(redis_url)
    setup = Setup(nc, spec, registry, JetStreamPublisher(nc, spec, signer()), DeliveryMetrics())
    stop = asyncio.Event()
    task = asyncio.create_task(DeliveryWorker(setup.context(), refresh=0.05).run(nc, stop))
    try:
        with ReceiverServer() as receiver:
            await registry.add(webhook("crm", receiver))
            await asyncio.sleep(0.3)
            await setup.publish(session(0))
            await eventually(lambda: sids(receiver) == ["sid000000"], 5, "before the restart")
            own_nats.stop()
            own_nats.start()  # same port, same directory: the stream and the consumer survive
            await eventually(lambda: nc.is_connected, 10, "reconnected")
            await setup.publish(session(1), session(2))
            await eventually(lambda: len(sids(receiver)) == 3, 15, "after the restart")
            assert sids(receiver) == ["sid000000", "sid000001", "sid000002"]
    finally:
        stop.set()
        await task
        await registry.aclose()
        await nc.close()
