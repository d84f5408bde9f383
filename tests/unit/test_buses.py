"""Buses without a server: the protocol, the stream spec, and the follower's bookkeeping
(watermark, gaps, duplicates, heartbeats, stalls) driven by hand through a fake connection."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js import api

from sessiond.broadcast.base import RevocationBus
from sessiond.broadcast.follower import JetStreamFollower, _position
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.memory import MemoryBus
from sessiond.broadcast.receipts import Receipt, Receipts
from sessiond.broadcast.stream import StreamSpec
from sessiond.denylist.denylist import Denylist
from sessiond.events import TokenRevoked, encode, kind_of
from sessiond.settings import Settings
from support.signing import verifier

SPEC = StreamSpec(name="S", subject_prefix="p.rev", max_age=365, duplicate_window=120)


def event(n: int) -> TokenRevoked:
    return TokenRevoked(id=f"{n:032d}", at=1000.0, jti=f"j{n}", expires_at=time.time() + 60)


async def test_both_buses_satisfy_the_protocol() -> None:
    denylist = Denylist()
    local: RevocationBus = MemoryBus(denylist)
    await local.start()
    await local.publish(event(1))
    assert denylist.sizes()["token"] == 1
    assert local.staleness(time.time()) == 0.0
    await local.aclose()
    remote: RevocationBus = JetStreamBus("nats://127.0.0.1:1", SPEC, denylist, verifier=verifier())
    assert remote.staleness(time.time()) == math.inf  # never started: never fresh


def test_stream_spec_follows_the_settings() -> None:
    settings = Settings(access_ttl=30, leeway=5, nats_replicas=3, nats_subject="a.b")
    spec = StreamSpec.from_settings(settings)
    assert spec.name == settings.nats_stream
    assert spec.max_age == settings.stream_max_age == 95
    assert spec.duplicate_window == 95  # never longer than the stream keeps events
    assert StreamSpec.from_settings(Settings()).duplicate_window == 120
    assert spec.num_replicas == 3
    assert spec.subject_for(event(1)) == "a.b.token"
    config = spec.config()
    assert config.subjects == ["a.b.>"]
    assert config.storage == api.StorageType.FILE
    assert config.discard == api.DiscardPolicy.NEW
    assert config.max_bytes == 1024**3


def test_reply_subjects_give_stream_and_consumer_sequences() -> None:
    assert _position("$JS.ACK.S.C.1.42.7.1700000000000000000.3") == (42, 7, 1.7e9, 3)
    assert _position("$JS.ACK.dom.hash.S.C.1.42.7.1700000000000000000.0.tok") == (42, 7, 1.7e9, 0)
    assert _position("$JS.ACK.dom.hash.S.C.1.42.7.1700000000000000000.0") == (42, 7, 1.7e9, 0)
    assert _position("_INBOX.abc") is None
    assert _position("$JS.ACK.S.C.1.x.7.1.3") is None


# --- the follower, by hand ------------------------------------------------------------------


@dataclass
class FakeStream:
    first: int = 1
    last: int = 0
    created: str = "2026-01-01"
    down: bool = False
    consumers: list[api.ConsumerConfig] = field(default_factory=list)
    meanwhile: Callable[[], Awaitable[None]] | None = None  # runs while a request is in flight

    async def stream_info(self, name: str) -> Any:
        if self.down:
            raise nats.errors.TimeoutError
        state = SimpleNamespace(first_seq=self.first, last_seq=self.last)
        if self.meanwhile is not None:
            await self.meanwhile()
        return SimpleNamespace(state=state, created=self.created)

    async def add_consumer(self, stream: str, config: api.ConsumerConfig) -> Any:
        self.consumers.append(config)
        return SimpleNamespace(name=f"c{len(self.consumers)}")


@dataclass
class FakeConnection:
    stream: FakeStream = field(default_factory=FakeStream)
    is_connected: bool = True
    stats: dict[str, int] = field(default_factory=lambda: {"reconnects": 0})
    published: list[str] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)  # on SPEC's receipts subject
    callbacks: list[Any] = field(default_factory=list)

    def new_inbox(self) -> str:
        return f"_INBOX.{len(self.callbacks)}"

    async def subscribe(self, subject: str, cb: Any, **limits: int) -> Any:
        self.callbacks.append(cb)
        return SimpleNamespace(unsubscribe=_nothing)

    async def publish(self, subject: str, payload: bytes = b"") -> None:
        if subject == SPEC.receipts_subject("anonymous"):
            self.receipts.append(msgspec.json.decode(payload, type=Receipt))
        else:
            self.published.append(subject)

    async def flush(self, timeout: int) -> None:  # noqa: ASYNC109 - nats-py's signature
        return None

    async def deliver(
        self, seq: int, consumer_seq: int, pending: int = 0, data: bytes = b"", to: int = -1
    ) -> None:
        """A data message to the newest subscription (or the one at index ``to``)."""
        reply = f"$JS.ACK.S.c.1.{seq}.{consumer_seq}.1700000000000000000.{pending}"
        msg = Msg(cast(Any, None), "p.rev.token", reply, data or encode(event(seq)))
        await self.callbacks[to](msg)


async def _nothing() -> None:
    return None


def follower(stall_after: float = 10.0, **options: Any) -> tuple[JetStreamFollower, FakeConnection]:
    # The fake stream's events are unsigned: applied as if stored before an upgrade.
    trusting = verifier(unsigned_before=math.inf)
    f = JetStreamFollower(SPEC, Denylist(), verifier=trusting, stall_after=stall_after, **options)
    nc = FakeConnection()
    f._nc, f._js = cast(Any, nc), cast(Any, nc.stream)
    return f, nc


async def test_fresh_only_once_everything_in_the_stream_is_applied() -> None:
    f, nc = follower()
    nc.stream.last = 3
    await f._tick()
    assert nc.stream.consumers[0].opt_start_seq == 1
    assert f.staleness(time.time()) == math.inf
    await nc.deliver(1, 1, pending=2)
    await nc.deliver(2, 2, pending=1)
    await f._tick()
    assert f.staleness(time.time()) == math.inf
    await nc.deliver(3, 3)
    await f._tick()
    after = time.time()
    assert f.last_applied == 3
    assert f.staleness(time.time()) < 0.1
    assert f.staleness(after + 5) >= 5  # confirmed as of the request, not later
    nc.stream.down = True  # the request fails: nothing confirmed, staleness grows
    with pytest.raises(nats.errors.TimeoutError):
        await f._tick()
    assert f.staleness(time.time() + 2) > 2


async def test_a_stream_whose_events_all_aged_out_is_caught_up_at_once() -> None:
    f, nc = follower()
    nc.stream.first, nc.stream.last = 11, 10
    await f._tick()
    assert f.staleness(time.time()) < 0.1
    assert f.last_applied == 0


async def test_a_gap_recreates_the_consumer_after_the_last_applied_sequence() -> None:
    f, nc = follower()
    nc.stream.last = 4
    await f._tick()
    await nc.deliver(1, 1)
    await nc.deliver(3, 3)  # consumer sequence 2 was lost
    await nc.deliver(4, 4)
    assert f.last_applied == 1
    await f._tick()
    assert nc.stream.consumers[-1].opt_start_seq == 2
    await nc.deliver(4, 1, to=0)  # late, from the old consumer: its sequence fits, yet
    assert f.last_applied == 1  # it is ignored (else 2 and 3 would be skipped as old)
    await nc.deliver(1, 1)  # a duplicate: skipped
    await nc.deliver(2, 2)
    await nc.deliver(3, 3)
    await nc.deliver(4, 4)
    assert (f.last_applied, f.applied) == (4, 4)


async def test_heartbeats_reveal_a_lost_tail_and_flow_control_is_answered() -> None:
    f, nc = follower()
    await f._tick()
    await nc.deliver(1, 1)
    flow = Msg(cast(Any, None), "x", "fc.reply", b"", {"Status": "100"})
    await nc.callbacks[-1](flow)
    assert nc.published == ["fc.reply"]
    heartbeat = {"Status": "100", "Nats-Last-Consumer": "1", "Nats-Consumer-Stalled": "go"}
    await nc.callbacks[-1](Msg(cast(Any, None), "x", "", b"", heartbeat))
    assert nc.published == ["fc.reply", "go"]
    assert len(nc.stream.consumers) == 1
    heartbeat["Nats-Last-Consumer"] = "2"  # the server sent one more than we received
    await nc.callbacks[-1](Msg(cast(Any, None), "x", "", b"", heartbeat))
    await f._tick()
    assert len(nc.stream.consumers) == 2
    assert nc.stream.consumers[-1].opt_start_seq == 2


async def test_a_stuck_consumer_and_a_reconnect_recreate_it() -> None:
    f, nc = follower(stall_after=0.0)
    nc.stream.last = 1
    await f._tick()
    await f._tick()  # behind, no progress: noted
    await f._tick()  # still none: recreated
    assert len(nc.stream.consumers) == 2
    await nc.deliver(1, 1)
    await f._tick()
    nc.stats["reconnects"] += 1
    await f._tick()
    assert len(nc.stream.consumers) == 3
    assert nc.stream.consumers[-1].opt_start_seq == 2


async def test_a_replaced_stream_is_replayed_from_its_start() -> None:
    f, nc = follower()
    nc.stream.last = 2
    await f._tick()
    await nc.deliver(1, 1)
    await nc.deliver(2, 2)
    nc.stream.created, nc.stream.last = "2026-02-02", 1  # deleted and created again
    await f._tick()
    await f._tick()
    assert nc.stream.consumers[-1].opt_start_seq == 1
    await nc.deliver(1, 1)
    assert f.last_applied == 1


async def test_an_answer_older_than_an_applied_event_is_no_replacement() -> None:
    f, nc = follower()
    await f._tick()

    async def publish_and_deliver() -> None:
        nc.stream.last = 1
        await nc.deliver(1, 1)

    nc.stream.meanwhile = publish_and_deliver  # the answer says 0; 1 arrives meanwhile
    await f._tick()
    nc.stream.meanwhile = None
    assert len(nc.stream.consumers) == 1
    await f._tick()
    assert (f.last_applied, f.applied, len(nc.stream.consumers)) == (1, 1, 1)


async def test_malformed_events_are_counted_and_skipped() -> None:
    seen: list[tuple[str, int]] = []
    f, nc = follower()
    f._on_applied = lambda e, seq, stored_at: seen.append((kind_of(e), seq))
    nc.stream.last = 3
    await f._tick()
    await nc.deliver(1, 1, data=b"not json")
    await nc.deliver(2, 2, data=b'{"kind": "token"}')
    await nc.deliver(3, 3)
    assert (f.last_applied, f.applied, f.rejected) == (3, 1, {"malformed": 2})
    assert seen == [("token", 3)]
    await f._tick()
    assert f.staleness(time.time()) < 0.1


# --- receipts ---------------------------------------------------------------------------------


def seqs(nc: FakeConnection) -> list[int]:
    return [r.seq for r in nc.receipts]


async def test_receipts_start_once_caught_up_and_follow_what_is_applied() -> None:
    f, nc = follower(heartbeat=60.0)
    nc.stream.last = 2
    await f._tick()
    await nc.deliver(1, 1, pending=1)  # replaying: not caught up yet, nothing to confirm
    await nc.deliver(2, 2)
    assert nc.receipts == []
    await f._tick()  # caught up: the first receipt
    assert seqs(nc) == [2]
    assert {r.follower for r in nc.receipts} == {f.id}
    nc.stream.last = 5
    f._receipt_at = time.monotonic() + 60  # as if one had just been sent: only the last
    for n in (3, 4, 5):  # of a burst (pending 0) is confirmed
        await nc.deliver(n, n, pending=5 - n)
    assert seqs(nc) == [2, 5]
    await f._tick()  # no heartbeat due
    assert seqs(nc) == [2, 5]


async def test_every_applied_event_is_confirmed_unless_receipts_came_within_a_millisecond() -> None:
    f, nc = follower(heartbeat=60.0)
    await f._tick()
    for n in (1, 2):
        f._receipt_at = -math.inf
        await nc.deliver(n, n, pending=9)  # more coming, but the last receipt is old
    assert seqs(nc) == [0, 1, 2]


async def test_a_receipt_every_heartbeat_and_one_leaving_at_close() -> None:
    f, nc = follower(heartbeat=0.0)
    await f._tick()
    await f._tick()
    assert seqs(nc) == [0, 0]
    await f.aclose()
    assert [r.leaving for r in nc.receipts] == [False, False, True]


async def test_a_follower_without_receipts_sends_none() -> None:
    f, nc = follower(heartbeat=0.0, receipts=False)
    await f._tick()
    await nc.deliver(1, 1)
    await f.aclose()
    assert nc.receipts == []


def receipt_msg(follower: str, seq: int, leaving: bool = False, *, identity: str = "") -> Msg:
    """A receipt of ``follower`` (``<identity>/<the rest>``), on ``identity``'s subject (by
    default the identity it claims)."""
    data = msgspec.json.encode(Receipt(follower=follower, seq=seq, leaving=leaving))
    subject = SPEC.receipts_subject(identity or follower.partition("/")[0])
    return Msg(cast(Any, None), subject, "", data)


async def test_the_authority_waits_for_every_present_follower_and_no_longer() -> None:
    receipts = Receipts(SPEC.receipts_filter, presence=60.0)
    assert await receipts.wait(7, 0.0) == []  # nobody to wait for
    await receipts._received(receipt_msg("a/1", 6))
    await receipts._received(receipt_msg("b/1", 7))
    assert receipts.behind(7) == ["a/1"]
    impatient = asyncio.create_task(receipts.wait(7, 0.01))
    patient = asyncio.create_task(receipts.wait(7, 5.0))
    assert await impatient == ["a/1"]  # gave up without cancelling what the other waits on
    assert not patient.done()
    await receipts._received(receipt_msg("a/1", 7))
    assert await asyncio.wait_for(patient, 1.0) == []


async def test_a_leaving_or_silent_follower_is_not_waited_for() -> None:
    receipts = Receipts(SPEC.receipts_filter, presence=0.05)
    await receipts._received(receipt_msg("leaving/1", 1))
    await receipts._received(receipt_msg("silent/1", 1))
    waiting = asyncio.create_task(receipts.wait(2, 5.0))
    await receipts._received(receipt_msg("leaving/1", 1, leaving=True))
    assert receipts.behind(2) == ["silent/1"]
    start = time.monotonic()
    assert await asyncio.wait_for(waiting, 1.0) == []
    assert time.monotonic() - start < 0.5


async def test_a_malformed_receipt_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    receipts = Receipts(SPEC.receipts_filter)
    bad = Msg(cast(Any, None), SPEC.receipts_subject("a"), "", b'{"follower": "", "seq": -1}')
    await receipts._received(bad)
    assert receipts.behind(0) == []
    assert "malformed receipt" in caplog.text


@pytest.mark.parametrize(
    ("subject_identity", "follower"),
    [("b", "a/1"), ("a", "ab/1"), ("a", "a"), ("a.b", "b/1")],
    ids=["other", "prefix", "bare", "two-tokens"],
)
async def test_a_receipt_for_another_identity_is_ignored(
    subject_identity: str, follower: str, caplog: pytest.LogCaptureFixture
) -> None:
    receipts = Receipts(SPEC.receipts_filter, presence=60.0)
    await receipts._received(receipt_msg(follower, 5, identity=subject_identity))
    assert receipts.present() == {}
    assert receipts.forged == 1
    assert "of another identity" in caplog.text
    await receipts._received(receipt_msg("c/1", 5))
    assert receipts.present() == {"c/1": 5}


def test_a_follower_publishes_receipts_under_its_identity() -> None:
    f, _ = follower(identity="backend-a")
    assert f.id.startswith("backend-a/")
    assert f._receipts_subject == f"{SPEC.subject_prefix}-applied.backend-a"
