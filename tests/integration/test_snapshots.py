"""Denylist snapshots against a real nats-server: a starting replica loads the snapshot and
replays only the tail; a snapshot of another stream, a missing or a corrupt one means a full
replay; the relay's snapshot writer stores them."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import api

from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.signing import SIGNATURE_HEADER
from sessiond.broadcast.snapshots import (
    CREATED_HEADER,
    FORMAT_VERSION,
    OBJECT_NAME,
    SEQ_HEADER,
    VERSION_HEADER,
    SnapshotWriter,
    bucket_name,
    read_snapshot,
    sign_snapshot,
    stream_created,
    write_snapshot,
)
from sessiond.broadcast.stream import StreamSpec, ensure_stream
from sessiond.denylist.denylist import Denylist
from sessiond.events import (
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
    encode,
    new_event_id,
)
from support.denylists import replayed
from support.servers import ServerProcess
from support.signing import bus_signing, signed_headers, signer, verifier


@dataclass(frozen=True)
class Claims:
    sub: str
    sid: str
    jti: str
    iat: int


def events(n: int, tag: str) -> list[Revocation]:
    """``n`` revocations of every kind, keys unique to ``tag``, some with reasons (which the
    decisions compared by :func:`same_decisions` carry)."""
    now = time.time()
    out: list[Revocation] = []
    for i in range(n):
        until, key = now + 300, f"{tag}-{i}"
        match i % 7:
            case 0:
                out.append(
                    SessionRevoked(
                        id=new_event_id(), at=now, sid=key, expires_at=until, reason_code="logout"
                    )
                )
            case 1:
                nbf = int(now) - 100 + i
                sub = f"user-{i % 5}"
                out.append(
                    SubjectRevoked(
                        id=new_event_id(),
                        at=now,
                        sub=sub,
                        not_before=nbf,
                        expires_at=until,
                        reason_code="forced",
                        reason=f"case {i}",
                    )
                )
            case 6 if i == 6:
                out.append(AllRevoked(id=new_event_id(), at=now, not_before=int(now) - 1000))
            case _:
                out.append(TokenRevoked(id=new_event_id(), at=now, jti=key, expires_at=until))
    return out


def probes(tags: list[str], n: int) -> list[Claims]:
    """Claims that hit and miss every kind of entry the events of ``tags`` make."""
    now = int(time.time())
    out = []
    for tag in (*tags, "other"):
        for i in range(n):
            key = f"{tag}-{i}"
            for iat in (now - 1500, now - 150, now - 50, now):
                out.append(Claims(sub=f"user-{i % 5}", sid=key, jti=key, iat=iat))
                out.append(Claims(sub="nobody", sid="none", jti=key, iat=iat))
    return out


def same_decisions(a: Denylist, b: Denylist, claims: list[Claims]) -> None:
    assert a.sizes() == b.sizes()
    assert a.global_not_before == b.global_not_before
    assert [a.denies(c) for c in claims] == [b.denies(c) for c in claims]


@pytest.fixture
async def start_bus(
    nats_server: ServerProcess, spec: StreamSpec
) -> AsyncIterator[Callable[[], object]]:
    buses: list[JetStreamBus] = []

    async def start() -> JetStreamBus:
        bus = JetStreamBus(
            nats_server.url, spec, Denylist(), name=f"snap-{len(buses)}", **bus_signing()
        )
        buses.append(bus)
        await bus.start()
        assert await bus.follower.wait_caught_up(10)
        return bus

    yield start
    for bus in buses:
        await bus.aclose()


async def publish(nc: NATS, spec: StreamSpec, batch: list[Revocation]) -> int:
    js = nc.jetstream(timeout=5.0)
    seq = 0
    for event in batch:
        ack = await js.publish(
            spec.subject_for(event), encode(event), headers=signed_headers(event)
        )
        seq = ack.seq
    return seq


async def test_a_replica_loads_the_snapshot_and_replays_only_the_tail(
    client: NATS, spec: StreamSpec, start_bus: Callable[[], object]
) -> None:
    js = client.jetstream(timeout=5.0)
    info = await ensure_stream(js, spec)
    head, tail = events(60, "head"), events(25, "tail")
    seq = await publish(client, spec, head)
    assert seq == len(head)
    await write_snapshot(js, spec, replayed(head), seq, info.created, signer())
    last = await publish(client, spec, tail)

    bus = await start_bus()  # type: ignore[misc]
    assert bus.snapshot_seq == seq
    assert bus.follower.applied == len(tail)  # only the tail went through the follower
    assert bus.follower.last_applied == last  # and caught up means the tail is in
    assert bus.staleness(time.time()) < 1.0
    same_decisions(bus._denylist, replayed(head, tail), probes(["head", "tail"], 60))

    more = events(5, "live")  # and it follows live from there
    await publish(client, spec, more)
    assert await bus.follower.wait_applied(last + len(more), 5.0)
    same_decisions(bus._denylist, replayed(head, tail, more), probes(["head", "tail", "live"], 60))


async def test_caught_up_waits_for_the_tail(
    nats_server: ServerProcess, client: NATS, spec: StreamSpec
) -> None:
    """Staleness stays infinite until the follower reached the stream's last sequence."""
    js = client.jetstream(timeout=5.0)
    info = await ensure_stream(js, spec)
    head = events(10, "head")
    seq = await publish(client, spec, head)
    await write_snapshot(js, spec, replayed(head), seq, info.created, signer())
    tail = events(3000, "tail")
    last = await publish(client, spec, tail)
    seen: list[tuple[int, float]] = []

    def on_applied(event: Revocation, seq: int, stored_at: float) -> None:
        seen.append((seq, bus.staleness(time.time())))

    bus = JetStreamBus(
        nats_server.url, spec, Denylist(), name="snap-slow", on_applied=on_applied, **bus_signing()
    )
    try:
        await bus.start()
        assert await bus.follower.wait_caught_up(10)
        assert bus.follower.last_applied == last
        assert bus.follower.applied == len(tail)
        assert [s for s, _ in seen] == list(range(seq + 1, last + 1))
        assert all(math.isinf(staleness) for _, staleness in seen)
        assert bus.staleness(time.time()) < 1.0
    finally:
        await bus.aclose()


async def test_a_snapshot_of_a_replaced_stream_is_ignored(
    client: NATS, spec: StreamSpec, start_bus: Callable[[], object]
) -> None:
    js = client.jetstream(timeout=5.0)
    old_info = await ensure_stream(js, spec)
    old = events(5, "old")
    seq = await publish(client, spec, old)
    await write_snapshot(js, spec, replayed(old), seq, old_info.created, signer())
    await js.delete_stream(spec.name)
    new_info = await ensure_stream(js, spec)
    assert stream_created(new_info.created) != stream_created(old_info.created)
    new = events(20, "new")
    await publish(client, spec, new)  # the snapshot's sequence is within the new stream

    bus = await start_bus()  # type: ignore[misc]
    assert bus.snapshot_seq == 0
    assert bus.follower.applied == len(new)
    same_decisions(bus._denylist, replayed(new), probes(["old", "new"], 20))


async def test_no_snapshot_means_a_full_replay(
    client: NATS, spec: StreamSpec, start_bus: Callable[[], object]
) -> None:
    js = client.jetstream(timeout=5.0)
    await ensure_stream(js, spec)
    assert await read_snapshot(js, spec, verifier()) is None
    batch = events(30, "all")
    await publish(client, spec, batch)
    bus = await start_bus()  # type: ignore[misc]
    assert bus.snapshot_seq == 0
    assert bus.follower.applied == len(batch)
    same_decisions(bus._denylist, replayed(batch), probes(["all"], 30))


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        (b"\x93not a snapshot", {}),
        (None, {VERSION_HEADER: ["99"]}),
        (None, {SEQ_HEADER: ["not a number"]}),
        (None, {SEQ_HEADER: ["1000000"]}),  # beyond the stream's last sequence
        (None, {CREATED_HEADER: None}),
    ],
    ids=["bad-bytes", "bad-version", "bad-seq", "future-seq", "no-created"],
)
async def test_a_corrupt_snapshot_means_a_full_replay(
    client: NATS,
    spec: StreamSpec,
    start_bus: Callable[[], object],
    data: bytes | None,
    headers: dict[str, list[str] | None],
) -> None:
    js = client.jetstream(timeout=5.0)
    info = await ensure_stream(js, spec)
    batch = events(30, "all")
    seq = await publish(client, spec, batch)
    await write_snapshot(js, spec, replayed(batch[:10]), 10, info.created, signer())  # the bucket
    good = {
        SEQ_HEADER: [str(seq)],
        CREATED_HEADER: [stream_created(info.created)],
        VERSION_HEADER: [FORMAT_VERSION],
    }
    merged = {k: v for k, v in {**good, **headers}.items() if v}
    payload = replayed(batch[:10]).snapshot() if data is None else data
    at, created = merged[SEQ_HEADER][0], merged.get(CREATED_HEADER, [""])[0]
    if at.isdigit():  # validly signed, so that only the defect under test is wrong
        merged[SIGNATURE_HEADER] = [sign_snapshot(payload, int(at), created, signer())]
    store = await js.object_store(bucket_name(spec))
    await store.put(OBJECT_NAME, payload, meta=api.ObjectMeta(headers=merged))

    bus = await start_bus()  # type: ignore[misc]
    assert bus.snapshot_seq == 0
    assert bus.follower.applied == len(batch)
    same_decisions(bus._denylist, replayed(batch), probes(["all"], 30))


async def test_a_snapshot_with_a_wrong_digest_is_ignored(client: NATS, spec: StreamSpec) -> None:
    js = client.jetstream(timeout=5.0)
    info = await ensure_stream(js, spec)
    batch = events(10, "all")
    seq = await publish(client, spec, batch)
    await write_snapshot(js, spec, replayed(batch), seq, info.created, signer())
    assert await read_snapshot(js, spec, verifier()) is not None
    store = await js.object_store(bucket_name(spec))
    meta = await store.get_info(OBJECT_NAME)
    # Rewrite one chunk: same subject, other bytes.
    await js.purge_stream(
        f"OBJ_{bucket_name(spec)}", subject=f"$O.{bucket_name(spec)}.C.{meta.nuid}"
    )
    await js.publish(f"$O.{bucket_name(spec)}.C.{meta.nuid}", b"x" * (meta.size or 1))
    assert await read_snapshot(js, spec, verifier()) is None


async def test_the_relay_writes_snapshots(
    client: NATS, spec: StreamSpec, start_bus: Callable[[], object]
) -> None:
    js = client.jetstream(timeout=5.0)
    await ensure_stream(js, spec)
    head = events(40, "head")
    seq = await publish(client, spec, head)
    writer = SnapshotWriter(spec, signer(), verifier(), interval=60)
    assert not await writer.write_once()  # not started: nothing to write
    await writer.start(client)
    try:
        assert await writer.follower.wait_caught_up(5)
        assert await writer.write_once()
        assert not await writer.write_once()  # nothing new applied: skipped
        snapshot = await read_snapshot(js, spec, verifier())
        assert snapshot is not None
        assert snapshot.seq == seq
        tail = events(7, "tail")
        last = await publish(client, spec, tail)
        assert await writer.follower.wait_applied(last, 5)
        assert await writer.write_once()
        snapshot = await read_snapshot(js, spec, verifier())
        assert snapshot is not None
        assert snapshot.seq == last
    finally:
        await writer.aclose()

    bus = await start_bus()  # type: ignore[misc]
    assert bus.snapshot_seq == last
    assert bus.follower.applied == 0
    same_decisions(bus._denylist, replayed(head, tail), probes(["head", "tail"], 40))


async def test_snapshot_failures_do_not_stop_the_relay_writer(own_nats: ServerProcess) -> None:
    tag = uuid.uuid4().hex[:12]
    spec = StreamSpec(f"R_{tag}", f"r{tag}.revocations", max_age=600, duplicate_window=30)
    nc = await nats.connect(own_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    writer = SnapshotWriter(spec, signer(), verifier(), interval=60)
    try:
        await ensure_stream(nc.jetstream(timeout=5.0), spec)
        await publish(nc, spec, events(5, "x"))
        await writer.start(nc)
        assert await writer.follower.wait_caught_up(5)
        own_nats.stop()
        assert not await writer.write_once()  # logged, not raised
    finally:
        await writer.aclose()
        await nc.close()
