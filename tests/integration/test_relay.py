"""The outbox relay worker against a real Redis, publishing through an in-test function.

The publisher here is a plain async function that records what it is given or raises
``BroadcastUnavailable``, standing in for the stream's publish; the relay is tested end to end
with a real NATS server elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import pytest

from sessiond import events
from sessiond.broadcast.stream import MSG_ID_HEADER, StreamSpec, ensure_stream
from sessiond.errors import BroadcastUnavailable, StoreUnavailable
from sessiond.events import Revocation, TokenRevoked, new_event_id
from sessiond.sessions.base import SessionStore
from sessiond.sessions.memory import MemorySessionStore
from sessiond.sessions.models import new_session_id
from sessiond.sessions.redis import RedisSessionStore
from sessiond.workers.relay import Relay
from support.authority import distributed_settings
from support.polling import eventually
from support.servers import NATS, ServerProcess

ROOT = Path(__file__).resolve().parents[2]
FAST = 0.02  # seconds between rounds in run() tests


def clean_env(**env: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}, **env}


def event(at: float) -> TokenRevoked:
    return TokenRevoked(id=new_event_id(), at=at, jti=new_event_id(), expires_at=at + 305)


class Stream:
    """What the relay publishes to: records events, or fails while ``down``."""

    def __init__(self) -> None:
        self.published: list[Revocation] = []
        self.down = False
        self.fail_after: int | None = None  # go down after this many more publishes
        self.attempts = 0

    async def publish(self, event: Revocation) -> None:
        self.attempts += 1
        if self.fail_after is not None:
            if self.fail_after == 0:
                self.down = True
            self.fail_after -= 1
        if self.down:
            raise BroadcastUnavailable("revocation stream (NATS) unreachable")
        await asyncio.sleep(0)
        self.published.append(event)

    def ids(self) -> list[str]:
        return [e.id for e in self.published]


@pytest.fixture
async def own_store(own_redis: ServerProcess) -> AsyncIterator[RedisSessionStore]:
    """A store on a Redis that the test may stop; short timeouts keep outages quick."""
    store = RedisSessionStore.from_url(own_redis.url, socket_timeout=0.25)
    yield store
    await store.aclose()


async def drained(store: SessionStore, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while await store.outbox_depth():
        assert time.monotonic() < deadline, "the outbox was not drained in time"
        await asyncio.sleep(0.02)


async def test_relays_pending_events_oldest_first_and_removes_them(store: SessionStore) -> None:
    now = time.time()
    middle, newest, oldest = event(now - 20), event(now - 10), event(now - 30)
    young = event(now - 1)
    for e in (middle, young, newest, oldest):
        await store.outbox_add(e)
    stream = Stream()
    relay = Relay(store, stream.publish, grace=2.0)

    assert await relay.run_once(now) == 3
    assert stream.ids() == [oldest.id, middle.id, newest.id]
    assert await store.outbox_pending(float("inf")) == [young]
    assert await relay.run_once(now) == 0  # nothing is published twice
    assert len(stream.published) == 3


async def test_leaves_events_younger_than_grace(store: SessionStore) -> None:
    now = time.time()
    on_the_edge, inside = event(now - 2.0), event(now - 0.5)
    await store.outbox_add(on_the_edge)
    await store.outbox_add(inside)
    stream = Stream()
    relay = Relay(store, stream.publish, grace=2.0)

    assert await relay.run_once(now) == 0  # at == now - grace is not older than grace
    assert stream.published == []
    assert await store.outbox_depth() == 2
    assert await relay.run_once(now + 0.01) == 1
    assert stream.ids() == [on_the_edge.id]
    assert await relay.run_once(now + 1.6) == 1
    assert stream.ids() == [on_the_edge.id, inside.id]
    assert await store.outbox_depth() == 0

    no_grace = Relay(store, stream.publish, grace=0)
    latest = event(time.time())
    await store.outbox_add(latest)
    assert await no_grace.run_once(time.time() + 0.001) == 1


async def test_failed_publish_keeps_the_event_and_the_next_round_delivers_it(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    first, second, third = event(now - 30), event(now - 20), event(now - 10)
    for e in (third, first, second):
        await store.outbox_add(e)
    stream = Stream()
    stream.fail_after = 1  # the first publish works, the second fails
    relay = Relay(store, stream.publish)

    with caplog.at_level(logging.INFO, logger="sessiond.relay"):
        assert await relay.run_once(now) == 1
    assert stream.ids() == [first.id]
    assert stream.attempts == 2  # the round stopped at the failure: third was not tried
    assert await store.outbox_pending(float("inf")) == [second, third]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "revocation stream unavailable" in warnings[0].getMessage()
    assert warnings[0].exc_info is None

    assert await relay.run_once(now) == 0  # still down: nothing moves, nothing is lost
    assert await store.outbox_depth() == 2

    stream.down = False
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sessiond.relay"):
        assert await relay.run_once(now) == 2
    assert stream.ids() == [first.id, second.id, third.id]
    assert await store.outbox_depth() == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("relayed 2 of 2" in m for m in messages), messages
    assert any("recovered" in m for m in messages), messages


async def test_an_event_whose_removal_failed_is_published_again(
    own_redis: ServerProcess, own_store: RedisSessionStore
) -> None:
    """At least once: Redis dies between the stream's ack and the removal."""
    first, second = event(time.time() - 10), event(time.time() - 5)
    await own_store.outbox_add(first)
    await own_store.outbox_add(second)
    published: list[str] = []

    async def publish_then_redis_dies(e: Revocation) -> None:
        published.append(e.id)
        if len(published) == 1:
            own_redis.stop()

    relay = Relay(own_store, publish_then_redis_dies)
    with pytest.raises(StoreUnavailable):
        await relay.run_once(time.time())
    assert published == [first.id]

    own_redis.start()  # AOF: the outbox is still there
    assert await relay.run_once(time.time()) == 2
    assert published == [first.id, first.id, second.id]  # a duplicate the stream drops
    assert await own_store.outbox_depth() == 0


async def test_run_keeps_going_through_a_redis_outage_and_recovers(
    own_redis: ServerProcess, own_store: RedisSessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    stream = Stream()
    stream.down = True
    before = event(time.time())
    await own_store.outbox_add(before)
    relay = Relay(own_store, stream.publish, grace=0, interval=FAST)
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="sessiond.relay")
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: stream.attempts >= 2)  # stream down: event kept
        own_redis.stop()
        await asyncio.sleep(10 * FAST)  # several failing rounds
        assert not task.done()
        stream.down = False
        own_redis.start()
        await eventually(lambda: stream.ids() == [before.id])
        after = event(time.time())
        await own_store.outbox_add(after)
        await eventually(lambda: stream.ids() == [before.id, after.id])
        await eventually(lambda: any("recovered" in r.getMessage() for r in caplog.records))
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert await own_store.outbox_depth() == 0

    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    messages = [r.getMessage() for r in problems]
    assert any("session store unavailable" in m for m in messages), messages
    assert any("revocation stream unavailable" in m for m in messages), messages
    assert len(problems) <= 4, messages  # one line per change, not one per round
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in problems)


async def test_run_stops_promptly_and_stops_between_events(store: SessionStore) -> None:
    stop = asyncio.Event()
    for i in range(5):
        await store.outbox_add(event(time.time() - 10 + i))
    published: list[str] = []

    async def publish_and_ask_to_stop(e: Revocation) -> None:
        published.append(e.id)
        stop.set()  # as a SIGTERM during a round

    relay = Relay(store, publish_and_ask_to_stop, interval=60)
    await asyncio.wait_for(relay.run(stop), 2)
    assert len(published) == 1
    assert await store.outbox_depth() == 4  # the rest wait for the next relay

    idle = Relay(store, Stream().publish, grace=3600, interval=60)
    stop = asyncio.Event()
    task = asyncio.create_task(idle.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 1)  # not a whole interval


async def test_other_errors_are_not_swallowed(store: SessionStore) -> None:
    await store.outbox_add(event(time.time() - 10))

    async def broken(e: Revocation) -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        await asyncio.wait_for(Relay(store, broken).run(asyncio.Event()), 2)
    assert await store.outbox_depth() == 1


def test_relay_settings_validated() -> None:
    with pytest.raises(ValueError, match="grace"):
        Relay(MemorySessionStore(), Stream().publish, grace=-1)
    with pytest.raises(ValueError, match="interval"):
        Relay(MemorySessionStore(), Stream().publish, interval=0)


async def test_outbox_fails_typed_and_fast_while_redis_is_down(
    own_redis: ServerProcess, own_store: RedisSessionStore
) -> None:
    e = event(time.time())
    await own_store.outbox_add(e)
    own_redis.stop()
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "outbox_add": lambda: own_store.outbox_add(event(time.time())),
        "outbox_remove": lambda: own_store.outbox_remove(e.id),
        "outbox_pending": lambda: own_store.outbox_pending(time.time()),
        "outbox_depth": own_store.outbox_depth,
        "delete+event": lambda: own_store.delete(new_session_id("alice"), e),
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await call()
        assert time.monotonic() - started < 2.0, name
    own_redis.start()
    assert await own_store.outbox_pending(float("inf")) == [e]


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"SESSIOND_NATS_URL": "nats://127.0.0.1:4222"},
            "sessiond-relay: error: SESSIOND_NATS_URL needs SESSIOND_REDIS_URL",
        ),
        ({}, "sessiond-relay: error: SESSIOND_REDIS_URL and SESSIOND_NATS_URL are required"),
        ({"SESSIOND_LOG_LEVEL": "loud"}, "sessiond-relay: error: SESSIOND_LOG_LEVEL:"),
    ],
)
def test_main_config_error_is_one_line(env: dict[str, str], line: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "workers.relay"],
        env=clean_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(line), run.stderr
    assert run.stderr.count("\n") == 1, run.stderr


@pytest.mark.nats  # starts its own nats-server, later than the relay
async def test_main_relays_to_the_real_stream_and_stops_on_sigterm(
    redis_url: str, tmp_path: Path
) -> None:
    """``python -m sessiond.workers.relay`` started before NATS: connects, waits for the stream,
    relays, and ends cleanly on SIGTERM."""
    nats_server = ServerProcess(NATS)  # not started yet
    settings, _ = distributed_settings(redis_url, tmp_path, nats_url=nats_server.url)
    assert settings.keyset_file is not None
    assert settings.credentials_file is not None
    store = RedisSessionStore.from_url(redis_url)
    pending = event(time.time() - 10)
    await store.outbox_add(pending)
    env = clean_env(
        SESSIOND_REDIS_URL=redis_url,
        SESSIOND_NATS_URL=nats_server.url,
        SESSIOND_KEYSET_FILE=settings.keyset_file,
        SESSIOND_CREDENTIALS_FILE=settings.credentials_file,
    )
    log = tmp_path / "relay.log"
    with log.open("wb") as out:
        relay = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sessiond.workers.relay",
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    try:
        await asyncio.sleep(1.0)  # NATS down: the relay waits, the event stays
        assert relay.returncode is None, log.read_text()
        assert await store.outbox_depth() == 1

        nats_server.start()
        await asyncio.sleep(0.5)  # connected, but no stream yet: still waiting
        assert await store.outbox_depth() == 1
        nc = await nats.connect(nats_server.url)
        try:
            spec = StreamSpec.from_settings(settings)
            await ensure_stream(nc.jetstream(), spec)  # what the service replicas do
            await drained(store, within=10)
            stored = await nc.jetstream().get_last_msg(spec.name, spec.subject_for(pending))
            assert stored.data == events.encode(pending)
            assert stored.headers is not None
            assert stored.headers[MSG_ID_HEADER] == pending.id
        finally:
            await nc.close()

        relay.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(relay.wait(), 5) == 0, log.read_text()
    finally:
        if relay.returncode is None:
            relay.kill()
            await relay.wait()
        nats_server.close()
        await store.aclose()
    output = log.read_text()
    assert "relayed 1 of 1 pending revocation(s)" in output, output
    assert "relay stopped" in output, output
    assert "Traceback" not in output, output
