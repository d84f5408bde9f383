"""The JetStream revocation bus against a real nats-server: propagation, dedup, catch-up,
outages (stop, SIGKILL, SIGSTOP), a lost consumer, and the stream's settings."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from sessiond.broadcast.follower import JetStreamFollower
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.signing import SIGNATURE_HEADER
from sessiond.broadcast.stream import CONFIRM_WAIT, MSG_ID_HEADER, StreamSpec, ensure_stream
from sessiond.denylist.denylist import Denial, Denylist
from sessiond.errors import BroadcastUnavailable
from sessiond.events import (
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
    encode,
    new_event_id,
)
from support.polling import eventually
from support.servers import ServerProcess
from support.signing import bus_signing, signed_headers

BUDGET = 0.5  # staleness budget of these tests' buses, seconds
PUBLISH_BUDGET = 1.0  # how long a publish retries in the outage tests, seconds

MakeBus = Callable[..., Awaitable[JetStreamBus]]


@dataclass(frozen=True)
class Claims:
    sub: str = "alice"
    sid: str = "sid-0"
    jti: str = "jti-0"
    iat: int = 1000


def token(jti: str) -> TokenRevoked:
    return TokenRevoked(id=new_event_id(), at=time.time(), jti=jti, expires_at=time.time() + 60)


@pytest.fixture
async def make_bus(spec: StreamSpec) -> AsyncIterator[MakeBus]:
    """Start buses ("replicas") on a server with ``spec``; close them all after the test."""
    buses: list[JetStreamBus] = []

    async def make(server: ServerProcess, **options: object) -> JetStreamBus:
        options = {"budget": BUDGET, **bus_signing(), **options}
        bus = JetStreamBus(server.url, spec, Denylist(), name=f"test-{len(buses)}", **options)  # type: ignore[arg-type]
        buses.append(bus)
        await bus.start()
        return bus

    yield make
    for bus in buses:
        await bus.aclose()


async def publish_until_acked(bus: JetStreamBus, event: Revocation, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await bus.publish(event)
        except BroadcastUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            return


async def test_a_revocation_reaches_another_replica_at_once(
    nats_server: ServerProcess, make_bus: MakeBus
) -> None:
    authority = await make_bus(nats_server)
    applied: list[tuple[Revocation, int]] = []
    replica = await make_bus(
        nats_server, on_applied=lambda e, seq, stored_at: applied.append((e, seq))
    )
    assert await replica.follower.wait_caught_up(5)
    deny = replica.follower._denylist.denies
    now, until = time.time(), time.time() + 60
    cases: list[tuple[Revocation, Claims]] = [
        (token("j1"), Claims(jti="j1")),
        (SessionRevoked(id=new_event_id(), at=now, sid="s1", expires_at=until), Claims(sid="s1")),
        (
            SubjectRevoked(id=new_event_id(), at=now, sub="bob", not_before=10, expires_at=until),
            Claims(sub="bob", iat=10),
        ),
        (AllRevoked(id=new_event_id(), at=now, not_before=5), Claims(iat=5)),
    ]
    lags = []
    for event, claims in cases:

        def denied(claims: Claims = claims) -> bool:
            return deny(claims) is not None

        assert not denied()
        await authority.publish(event)
        lags.append(await eventually(denied, 0.5, f"{event} applied"))
    assert max(lags) < 0.1
    assert [e for e, _ in applied] == [e for e, _ in cases]
    assert [seq for _, seq in applied] == [1, 2, 3, 4]
    assert replica.follower.last_applied == 4
    assert replica.staleness(time.time()) < BUDGET


async def test_publish_returns_once_the_event_is_back_at_the_publisher(
    nats_server: ServerProcess, make_bus: MakeBus
) -> None:
    authority = await make_bus(nats_server)
    assert await authority.follower.wait_caught_up(5)
    for n in range(1, 21):
        await authority.publish(token(f"echo-{n}"))
        assert authority.follower.last_applied == n, "publish returned before its echo"


async def test_publish_returns_once_every_following_replica_has_applied_the_event(
    nats_server: ServerProcess, make_bus: MakeBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend slow to apply (50 ms per message, here) holds the revoke call until it has
    the event; once it stops, it is no longer waited for."""
    authority = await make_bus(nats_server)
    backend = await make_bus(nats_server, confirm=False)
    for bus in (authority, backend):
        assert await bus.follower.wait_caught_up(5)
    deliver = JetStreamFollower._deliver

    async def slow(self: JetStreamFollower, msg: Msg, generation: int) -> None:
        if self is backend.follower:
            await asyncio.sleep(0.05)
        await deliver(self, msg, generation)

    monkeypatch.setattr(JetStreamFollower, "_deliver", slow)
    receipts = authority.receipts
    assert receipts is not None
    await eventually(lambda: len(receipts.present()) == 2, 2, "both followers present")
    for n in range(5):
        start = time.monotonic()
        await authority.publish(token(f"slow-{n}"))
        assert backend.follower._denylist.denies(Claims(jti=f"slow-{n}")) is not None
        assert time.monotonic() - start >= 0.05
    await backend.aclose()
    start = time.monotonic()
    await authority.publish(token("gone"))
    assert time.monotonic() - start < CONFIRM_WAIT / 2


async def test_the_same_event_twice_is_stored_once(
    nats_server: ServerProcess, make_bus: MakeBus, client: NATS, spec: StreamSpec
) -> None:
    bus = await make_bus(nats_server)
    event = token("twice")
    first = await bus.publish_ack(event)
    second = await bus.publish_ack(event)
    assert not first.duplicate
    assert second.duplicate
    assert second.seq == first.seq
    await bus.publish(event)  # a duplicate is a success
    info = await client.jetstream().stream_info(spec.name)
    assert info.state.messages == 1
    await eventually(lambda: bus.follower.last_applied == 1, 2, "own event applied")
    assert bus.follower.applied == 1


async def test_a_new_replica_replays_everything_before_it_reports_fresh(
    nats_server: ServerProcess, make_bus: MakeBus
) -> None:
    authority = await make_bus(nats_server)
    sent = [token(f"catch-up-{i}") for i in range(1000)]
    for at in range(0, len(sent), 200):
        await asyncio.gather(*(authority.publish(event) for event in sent[at : at + 200]))

    seen_staleness: list[float] = []
    replica: JetStreamBus | None = None

    def during_replay(event: Revocation, seq: int, stored_at: float) -> None:
        assert replica is not None
        seen_staleness.append(replica.staleness(time.time()))
        time.sleep(0.001)  # a slow replay: the watermark polls many times meanwhile

    replica = await make_bus(nats_server, on_applied=during_replay)
    assert await replica.follower.wait_caught_up(5)
    assert replica.follower.applied == len(sent)
    assert replica.follower._denylist.sizes()["token"] == len(sent)
    assert seen_staleness == [math.inf] * len(sent)  # never fresh before the last one
    await eventually(lambda: replica.staleness(time.time()) < BUDGET, 0.5, "fresh")


async def test_events_gone_from_the_stream_do_not_block_catch_up(
    nats_server: ServerProcess, make_bus: MakeBus, client: NATS, spec: StreamSpec
) -> None:
    short = dataclasses.replace(spec, max_age=1.0, duplicate_window=1.0)
    await ensure_stream(client.jetstream(), short)
    for i in range(3):
        event = token(f"old-{i}")
        await client.jetstream().publish(
            short.subject_for(event), encode(event), headers=signed_headers(event)
        )
    deadline = time.monotonic() + 5
    while (await client.jetstream().stream_info(short.name)).state.messages:
        assert time.monotonic() < deadline, "events did not age out"
        await asyncio.sleep(0.1)
    replica = JetStreamBus(nats_server.url, short, Denylist(), budget=BUDGET, **bus_signing())
    try:
        await replica.start()
        assert await replica.follower.wait_caught_up(3)
        assert replica.follower.applied == 0
    finally:
        await replica.aclose()


async def test_unsigned_and_malformed_events_are_counted_and_skipped(
    nats_server: ServerProcess, make_bus: MakeBus, client: NATS, spec: StreamSpec
) -> None:
    replica = await make_bus(nats_server)
    assert await replica.follower.wait_caught_up(5)
    js = client.jetstream()
    signature = bus_signing()["signer"].sign(b"not json", time.time())
    garbage = {MSG_ID_HEADER: "bad1", SIGNATURE_HEADER: signature}
    await js.publish(f"{spec.subject_prefix}.token", b"not json", headers=garbage)
    await js.publish(f"{spec.subject_prefix}.token", encode(token("unsigned")))
    good = token("after-garbage")
    await replica.publish(good)
    await eventually(lambda: replica.follower.last_applied == 3, 2, "good event applied")
    assert replica.follower.rejected == {"malformed": 1, "unsigned": 1}
    assert replica.follower._denylist.denies(Claims(jti="unsigned", iat=1)) is None
    assert replica.follower.applied == 1
    assert replica.follower._denylist.denies(Claims(jti="after-garbage", iat=1)) == Denial("token")
    await eventually(lambda: replica.staleness(time.time()) < BUDGET, 1, "fresh")


async def test_a_lost_consumer_is_recreated(
    nats_server: ServerProcess, make_bus: MakeBus, client: NATS, spec: StreamSpec
) -> None:
    authority = await make_bus(nats_server)
    replica = await make_bus(nats_server)
    assert await replica.follower.wait_caught_up(5)
    js = client.jetstream()
    for consumer in await js.consumers_info(spec.name):  # a consumer that silently vanished
        await js.delete_consumer(spec.name, consumer.name)
    await authority.publish(token("after-loss"))
    deny = replica.follower._denylist.denies
    await eventually(lambda: deny(Claims(jti="after-loss")) is not None, 2 * BUDGET + 1, "applied")
    # (The server may still deliver that one through the consumer it is deleting.)
    await eventually(lambda: replica.follower.resyncs >= 2, 3, "consumer recreated")
    await authority.publish(token("after-recreate"))
    await eventually(lambda: deny(Claims(jti="after-recreate")) is not None, 0.5, "applied")
    await eventually(lambda: replica.staleness(time.time()) < BUDGET, 1, "fresh again")


async def test_nats_outage_makes_replicas_stale_and_publish_fail_then_recovers(
    own_nats: ServerProcess, make_bus: MakeBus, spec: StreamSpec
) -> None:
    authority = await make_bus(own_nats, publish_budget=PUBLISH_BUDGET)
    replica = await make_bus(own_nats)
    assert await replica.follower.wait_caught_up(5)
    before = token("before-outage")
    await authority.publish(before)

    own_nats.stop()
    took = await eventually(lambda: replica.staleness(time.time()) > BUDGET, 3, "stale")
    assert took <= BUDGET + 0.5
    start = time.monotonic()
    with pytest.raises(BroadcastUnavailable):
        await authority.publish(token("during-outage"))
    assert PUBLISH_BUDGET - 0.2 <= time.monotonic() - start < PUBLISH_BUDGET + 0.5

    own_nats.start()  # same port, same directory
    after = token("after-outage")
    await publish_until_acked(authority, after, within=5)
    deny = replica.follower._denylist.denies
    await eventually(lambda: deny(Claims(jti="after-outage")) is not None, 5, "resumed")
    await eventually(lambda: replica.staleness(time.time()) < BUDGET, 2, "fresh again")
    assert replica.follower.applied == 2  # resumed after its last sequence: no replay
    late = await make_bus(own_nats)  # a replica that starts now sees both events
    assert await late.follower.wait_caught_up(5)
    assert late.follower._denylist.denies(Claims(jti="before-outage")) == Denial("token")
    assert late.follower._denylist.denies(Claims(jti="after-outage")) == Denial("token")


async def test_a_hung_nats_makes_replicas_stale_and_publish_fail_fast(
    own_nats: ServerProcess, make_bus: MakeBus
) -> None:
    authority = await make_bus(own_nats, publish_budget=PUBLISH_BUDGET)
    replica = await make_bus(own_nats)
    assert await replica.follower.wait_caught_up(5)
    own_nats.pause()  # SIGSTOP: connections stay open, nothing answers
    try:
        start = time.monotonic()
        with pytest.raises(BroadcastUnavailable):
            await authority.publish(token("during-hang"))
        assert PUBLISH_BUDGET - 0.2 <= time.monotonic() - start < PUBLISH_BUDGET + 0.5
        took = await eventually(lambda: replica.staleness(time.time()) > BUDGET, 3, "stale")
        assert took <= BUDGET + 0.5
    finally:
        own_nats.resume()
    await publish_until_acked(authority, token("after-hang"), within=8)
    deny = replica.follower._denylist.denies
    await eventually(lambda: deny(Claims(jti="after-hang")) is not None, 5, "resumed")
    # The event published during the hang may or may not have been stored (its ack was lost):
    # either way the outbox retries it, and the stream deduplicates.


async def test_acknowledged_events_survive_a_sigkill_of_nats(
    own_nats: ServerProcess, make_bus: MakeBus
) -> None:
    authority = await make_bus(own_nats)
    sent = [token(f"crash-{i}") for i in range(50)]
    for event in sent:
        await authority.publish(event)
    own_nats.kill()
    own_nats.start()
    replica = await make_bus(own_nats)
    assert await replica.follower.wait_caught_up(5)
    assert replica.follower.applied == len(sent)
    assert all(replica.follower._denylist.denies(Claims(jti=e.jti)) for e in sent)


async def test_start_with_nats_down_connects_in_the_background(
    own_nats: ServerProcess, make_bus: MakeBus
) -> None:
    own_nats.stop()
    start = time.monotonic()
    bus = await make_bus(own_nats, connect_wait=0.2)
    assert time.monotonic() - start < 1
    assert bus.staleness(time.time()) == math.inf
    with pytest.raises(BroadcastUnavailable):
        await bus.publish(token("too-early"))
    own_nats.start()
    assert await bus.follower.wait_caught_up(5)
    await bus.publish(token("in-time"))


async def test_stream_settings_and_idempotent_creation(
    nats_server: ServerProcess, client: NATS, spec: StreamSpec
) -> None:
    others = [await nats.connect(nats_server.url) for _ in range(4)]
    try:  # replicas racing to create it: all succeed
        infos = await asyncio.gather(*(ensure_stream(nc.jetstream(), spec) for nc in others))
    finally:
        for nc in others:
            await nc.close()
    config = infos[0].config
    assert config.storage == api.StorageType.FILE
    assert config.retention == api.RetentionPolicy.LIMITS
    assert config.max_age == spec.max_age
    assert config.duplicate_window == spec.duplicate_window
    assert config.discard == api.DiscardPolicy.NEW
    assert config.max_bytes == spec.max_bytes
    assert config.num_replicas == 1
    assert config.subjects == [f"{spec.subject_prefix}.>"]
    assert config.deny_delete
    again = await ensure_stream(client.jetstream(), spec)
    assert again.created == infos[0].created
    longer = dataclasses.replace(spec, max_age=120)
    updated = await ensure_stream(client.jetstream(), longer)
    assert updated.config.max_age == 120
    assert updated.created == infos[0].created


async def test_a_full_stream_refuses_new_events_and_keeps_old_ones(
    nats_server: ServerProcess, make_bus: MakeBus, client: NATS, spec: StreamSpec
) -> None:
    small = dataclasses.replace(spec, max_bytes=4096)
    bus = JetStreamBus(nats_server.url, small, Denylist(), budget=BUDGET, **bus_signing())
    try:
        await bus.start()
        stored = 0
        while stored < 100:
            try:
                await bus.publish(token(f"fill-{stored}"))
            except BroadcastUnavailable as exc:
                assert "maximum bytes" in str(exc)  # noqa: PT017
                break
            stored += 1
        info = await client.jetstream().stream_info(small.name)
        assert 0 < stored < 100
        assert info.state.messages == stored
        assert info.state.first_seq == 1  # nothing old was discarded
    finally:
        await bus.aclose()
