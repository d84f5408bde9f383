"""One contract for every SessionStore: in memory and on Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
import redis
import redis.asyncio

from sessiond import events
from sessiond.errors import SessionNotFound, StoreUnavailable
from sessiond.events import (
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
    new_event_id,
)
from sessiond.ratelimit.redis import RedisRateLimiter
from sessiond.sessions.base import SessionStore
from sessiond.sessions.models import Session, new_session_id, subject_tag
from sessiond.sessions.redis import RedisSessionStore
from support.sessions import bump, make_session

SHORT = 0.3  # seconds a short-lived session lives
PAST_SHORT = 0.45  # sleep to be sure it is dead


def session_event(sid: str, *, at: float | None = None, reason: str = "test") -> SessionRevoked:
    now = time.time() if at is None else at
    return SessionRevoked(id=new_event_id(), at=now, reason=reason, sid=sid, expires_at=now + 305)


def subject_event(sub: str) -> SubjectRevoked:
    now = time.time()
    return SubjectRevoked(
        id=new_event_id(), at=now, sub=sub, not_before=int(now), expires_at=now + 305
    )


def token_event(at: float, event_id: str | None = None) -> TokenRevoked:
    return TokenRevoked(id=event_id or new_event_id(), at=at, jti=f"jti-{at}", expires_at=at + 305)


async def outbox(store: SessionStore) -> list[Revocation]:
    """Everything in the outbox, oldest first."""
    return await store.outbox_pending(float("inf"))


async def test_create_get_round_trip(store: SessionStore) -> None:
    session = make_session()
    assert await store.create(session) == []
    assert await store.get(session.sid) == session
    await store.ping()


async def test_get_unknown_is_none(store: SessionStore) -> None:
    await store.create(make_session())
    assert await store.get(new_session_id("alice")) is None
    assert await store.get("not-a-session-id") is None
    assert await store.delete(new_session_id("alice")) is None


@pytest.mark.parametrize("which", ["idle", "absolute"])
async def test_expiry(store: SessionStore, which: str) -> None:
    short = make_session(idle=SHORT) if which == "idle" else make_session(lifetime=SHORT)
    keeper = make_session()
    await store.create(short)
    await store.create(keeper)
    assert await store.get(short.sid) == short
    assert await store.list_subject("alice") == [short, keeper]

    await asyncio.sleep(PAST_SHORT)
    assert await store.get(short.sid) is None
    assert await store.list_subject("alice") == [keeper]
    with pytest.raises(SessionNotFound):
        await store.update(short.sid, bump)
    assert await store.delete(short.sid) is None
    assert await store.get(keeper.sid) == keeper


async def test_update_applies_change_and_returns_result(store: SessionStore) -> None:
    session = make_session()
    await store.create(session)
    assert await store.update(session.sid, bump) == 1
    assert await store.update(session.sid, bump) == 2
    stored = await store.get(session.sid)
    assert stored is not None
    assert stored.refresh.generation == 2
    assert msgspec.structs.replace(stored, refresh=session.refresh) == session


async def test_update_can_extend_life(store: SessionStore) -> None:
    session = make_session(idle=SHORT)

    def touch(s: Session) -> tuple[Session, None]:
        return msgspec.structs.replace(s, idle_expires_at=time.time() + 600), None

    await store.create(session)
    await store.update(session.sid, touch)
    await asyncio.sleep(PAST_SHORT)
    assert await store.get(session.sid) is not None
    assert [s.sid for s in await store.list_subject("alice")] == [session.sid]


async def test_update_raising_leaves_record_unchanged(store: SessionStore) -> None:
    session = make_session()
    await store.create(session)

    def refuse(s: Session) -> tuple[Session | None, None]:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await store.update(session.sid, refuse)
    assert await store.get(session.sid) == session
    assert await store.list_subject("alice") == [session]
    assert await store.update(session.sid, bump) == 1  # still usable afterwards


async def test_update_returning_none_deletes(store: SessionStore) -> None:
    session, other = make_session(), make_session()
    await store.create(session)
    await store.create(other)

    def end(s: Session) -> tuple[Session | None, str]:
        return None, "ended"

    assert await store.update(session.sid, end) == "ended"
    assert await store.get(session.sid) is None
    assert await store.list_subject("alice") == [other]
    with pytest.raises(SessionNotFound):
        await store.update(session.sid, bump)


async def test_update_missing_raises(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        await store.update(new_session_id("alice"), bump)
    with pytest.raises(SessionNotFound):
        await store.update("garbage", bump)


async def test_list_subject_is_oldest_first_and_only_live(store: SessionStore) -> None:
    now = time.time()
    middle = make_session(created_at=now - 20)
    newest = make_session(created_at=now - 10)
    oldest = make_session(created_at=now - 30)
    doomed = make_session(created_at=now - 40, lifetime=SHORT)
    deleted = make_session(created_at=now - 25)
    for session in (middle, newest, oldest, doomed, deleted):
        await store.create(session)
    await store.create(make_session("bob"))

    assert await store.delete(deleted.sid) == deleted
    assert await store.delete(deleted.sid) is None
    assert await store.list_subject("alice") == [doomed, oldest, middle, newest]
    await asyncio.sleep(PAST_SHORT)
    assert await store.list_subject("alice") == [oldest, middle, newest]
    assert await store.list_subject("nobody") == []


async def test_delete_subject(store: SessionStore) -> None:
    now = time.time()
    first, second = make_session(created_at=now - 2), make_session(created_at=now - 1)
    bobs = make_session("bob")
    for session in (second, first, bobs):
        await store.create(session)

    assert await store.delete_subject("alice") == [first, second]
    assert await store.list_subject("alice") == []
    assert await store.get(first.sid) is None
    assert await store.get(second.sid) is None
    assert await store.delete_subject("alice") == []
    assert await store.list_subject("bob") == [bobs]


async def test_limit_evicts_oldest(store: SessionStore) -> None:
    now = time.time()
    first, second, third = (make_session(created_at=now + i) for i in range(3))
    assert await store.create(first, limit=2) == []
    assert await store.create(second, limit=2) == []
    assert await store.create(third, limit=2) == [first]
    assert await store.get(first.sid) is None
    assert await store.list_subject("alice") == [second, third]

    fourth = make_session(created_at=now + 3)
    assert await store.create(fourth, limit=1) == [second, third]
    assert await store.list_subject("alice") == [fourth]


async def test_limit_does_not_count_dead_sessions(store: SessionStore) -> None:
    await store.create(make_session(lifetime=SHORT), limit=2)
    await asyncio.sleep(PAST_SHORT)
    a, b = make_session(), make_session()
    assert await store.create(a, limit=2) == []
    assert await store.create(b, limit=2) == []
    assert await store.list_subject("alice") == [a, b]


async def test_concurrent_updates_are_serialised(store: SessionStore) -> None:
    session = make_session()
    await store.create(session)
    results = await asyncio.gather(*(store.update(session.sid, bump) for _ in range(20)))
    assert sorted(results) == list(range(1, 21))
    stored = await store.get(session.sid)
    assert stored is not None
    assert stored.refresh.generation == 20


# The outbox: revocation events stored with the session change they belong to (I4).


async def test_outbox_starts_empty_and_session_changes_without_events_leave_it(
    store: SessionStore,
) -> None:
    assert await store.outbox_depth() == 0
    assert await outbox(store) == []
    sessions = [make_session(created_at=time.time() + i) for i in range(3)]
    for session in sessions:
        await store.create(session, limit=2)  # evicts one, but no ``evicted``: no event
    await store.update(sessions[1].sid, bump)
    await store.delete(sessions[1].sid)
    await store.delete(new_session_id("alice"))
    await store.delete_subject("alice")
    assert await store.outbox_depth() == 0
    assert await outbox(store) == []


async def test_outbox_add_pending_remove_depth(store: SessionStore) -> None:
    now = time.time()
    late, early, middle = token_event(now - 1), token_event(now - 30), token_event(now - 10)
    same_a, same_b = token_event(now - 20, "a" * 32), token_event(now - 20, "b" * 32)
    everything: list[Revocation] = [late, same_b, early, middle, same_a]
    for event in everything:
        await store.outbox_add(event)
    await store.outbox_add(middle)  # the same event twice is one entry
    assert await store.outbox_depth() == 5

    # Oldest first, ties by id; strictly older than the bound.
    assert await store.outbox_pending(now) == [early, same_a, same_b, middle, late]
    assert await store.outbox_pending(now - 10) == [early, same_a, same_b]
    assert await store.outbox_pending(now - 30) == []
    assert await store.outbox_pending(now - 29.5) == [early]

    await store.outbox_remove(same_a.id)
    await store.outbox_remove(same_a.id)  # gone already: no error
    await store.outbox_remove(new_event_id())  # never there: no error
    assert await store.outbox_depth() == 4
    assert await store.outbox_pending(now) == [early, same_b, middle, late]


async def test_outbox_keeps_every_kind_of_event(store: SessionStore) -> None:
    now = time.time()
    kinds: list[Revocation] = [
        TokenRevoked(id=new_event_id(), at=now - 4, reason="r", jti="j1", expires_at=now + 9),
        session_event(new_session_id("alice"), at=now - 3),
        msgspec.structs.replace(subject_event("alice"), at=now - 2),
        AllRevoked(id=new_event_id(), at=now - 1, reason="key compromise", not_before=int(now)),
    ]
    for event in reversed(kinds):
        await store.outbox_add(event)
    assert await outbox(store) == kinds


async def test_delete_records_its_event(store: SessionStore) -> None:
    session, other = make_session(), make_session()
    await store.create(session)
    await store.create(other)
    event = session_event(session.sid)
    assert await store.delete(session.sid, event) == session
    assert await store.get(session.sid) is None
    assert await store.list_subject("alice") == [other]
    assert await outbox(store) == [event]


async def test_delete_records_its_event_even_without_a_live_session(
    store: SessionStore,
) -> None:
    doomed = make_session(lifetime=SHORT)
    await store.create(doomed)
    await asyncio.sleep(PAST_SHORT)
    expired, unknown, garbage = (
        session_event(doomed.sid),
        session_event(new_session_id("bob")),
        session_event("not-a-session-id"),
    )
    assert await store.delete(doomed.sid, expired) is None
    assert await store.delete(unknown.sid, unknown) is None
    assert await store.delete("not-a-session-id", garbage) is None
    assert {e.id for e in await outbox(store)} == {expired.id, unknown.id, garbage.id}
    assert await store.outbox_depth() == 3


async def test_delete_subject_records_its_event(store: SessionStore) -> None:
    now = time.time()
    first, second = make_session(created_at=now - 2), make_session(created_at=now - 1)
    bobs = make_session("bob")
    for session in (first, second, bobs):
        await store.create(session)
    event, nobody = subject_event("alice"), subject_event("nobody")
    assert await store.delete_subject("alice", event) == [first, second]
    assert await store.list_subject("alice") == []
    assert await store.get(first.sid) is None
    assert await store.delete_subject("nobody", nobody) == []  # recorded all the same
    assert {e.id for e in await outbox(store)} == {event.id, nobody.id}
    assert await store.list_subject("bob") == [bobs]


async def test_create_records_an_event_per_evicted_session(store: SessionStore) -> None:
    now = time.time()
    calls: list[str] = []

    def evicted(old: Session) -> Revocation:
        calls.append(old.sid)
        return session_event(old.sid, reason="session limit")

    first, second, third, fourth = (make_session(created_at=now + i) for i in range(4))
    assert await store.create(first, 2, evicted) == []
    assert await store.create(second, 2, evicted) == []
    assert calls == []  # nothing evicted, nothing asked
    assert await store.outbox_depth() == 0

    assert await store.create(third, 2, evicted) == [first]
    assert calls == [first.sid]
    assert await store.create(fourth, 1, evicted) == [second, third]
    assert calls == [first.sid, second.sid, third.sid]
    assert await store.list_subject("alice") == [fourth]
    assert sorted(e.sid for e in await outbox(store) if isinstance(e, SessionRevoked)) == sorted(
        calls
    )
    assert await store.outbox_depth() == 3


async def test_create_with_evicted_raising_changes_nothing(store: SessionStore) -> None:
    now = time.time()
    first, second = make_session(created_at=now), make_session(created_at=now + 1)
    await store.create(first)

    def refuse(old: Session) -> Revocation:
        raise ValueError("no event")

    with pytest.raises(ValueError, match="no event"):
        await store.create(second, 1, refuse)
    assert await store.list_subject("alice") == [first]
    assert await store.get(second.sid) is None
    assert await store.outbox_depth() == 0


async def test_concurrent_deletes_each_record_their_event(store: SessionStore) -> None:
    sessions = [make_session() for _ in range(10)]
    for session in sessions:
        await store.create(session)
    made = [session_event(s.sid) for s in sessions]
    made += [session_event(s.sid) for s in sessions]  # a second revocation of each
    deleted = await asyncio.gather(*(store.delete(e.sid, e) for e in made))
    assert sorted(s.sid for s in deleted if s is not None) == sorted(s.sid for s in sessions)
    assert {e.id for e in await outbox(store)} == {e.id for e in made}
    assert await store.list_subject("alice") == []


# Redis only: what the contract cannot see.


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisSessionStore]:
    store = RedisSessionStore.from_url(redis_url)
    yield store
    await store.aclose()


def keys_of(session: Session) -> tuple[str, str]:
    tag = subject_tag(session.sub)
    return f"sessiond:{{{tag}}}:s:{session.sid}", f"sessiond:{{{tag}}}:u:{session.sub}"


def assert_ttl(raw: redis.Redis, key: str, seconds: int) -> None:
    """The key expires in about ``seconds`` (it was set less than a second ago)."""
    ttl = int(raw.pttl(key))
    assert seconds * 1000 - 1000 < ttl <= seconds * 1000 + 2, (key, ttl)


async def test_redis_keys_and_ttls(redis_store: RedisSessionStore, raw: redis.Redis) -> None:
    a = make_session(idle=60)
    b = make_session(idle=120)
    await redis_store.create(a)
    await redis_store.create(b)
    record_a, index = keys_of(a)
    record_b, _ = keys_of(b)
    assert sorted(raw.keys("*")) == sorted([record_a, record_b, index])
    assert_ttl(raw, record_a, 60)
    assert_ttl(raw, record_b, 120)
    assert_ttl(raw, index, 120)  # the index lives as long as its last member

    await redis_store.delete(b.sid)
    assert_ttl(raw, index, 60)

    def extend(s: Session) -> tuple[Session, None]:
        return msgspec.structs.replace(s, idle_expires_at=time.time() + 300), None

    await redis_store.update(a.sid, extend)
    assert_ttl(raw, record_a, 300)
    assert_ttl(raw, index, 300)

    await redis_store.delete(a.sid)
    assert raw.keys("*") == []


async def test_redis_expired_keys_are_gone(
    redis_store: RedisSessionStore, raw: redis.Redis
) -> None:
    idle, absolute = make_session(idle=SHORT), make_session("bob", lifetime=SHORT)
    await redis_store.create(idle)
    await redis_store.create(absolute)
    assert len(raw.keys("*")) == 4
    await asyncio.sleep(PAST_SHORT)
    assert raw.keys("*") == []  # records and both indexes: nothing lingers


async def test_redis_prunes_dead_index_members(
    redis_store: RedisSessionStore, raw: redis.Redis
) -> None:
    keeper, dead, live = make_session(), make_session(lifetime=SHORT), make_session()
    await redis_store.create(keeper)
    await redis_store.create(dead)
    await asyncio.sleep(PAST_SHORT)
    await redis_store.create(live)
    _, index = keys_of(live)
    assert set(raw.zrange(index, 0, -1)) == {keeper.sid, live.sid}


async def test_redis_gives_up_after_bounded_conflicts(
    redis_store: RedisSessionStore, raw: redis.Redis
) -> None:
    session = make_session()
    await redis_store.create(session)
    record, _ = keys_of(session)
    calls = 0

    def meddle(s: Session) -> tuple[Session, None]:
        nonlocal calls
        calls += 1
        raw.append(record, " ")  # another writer changes it, every time
        return bump(s)[0], None

    with pytest.raises(StoreUnavailable, match="contended"):
        await redis_store.update(session.sid, meddle)
    assert calls == 16
    assert await redis_store.get(session.sid) == session


async def test_redis_prefix_separates_stores(redis_url: str, raw: redis.Redis) -> None:
    one = RedisSessionStore.from_url(redis_url, prefix="one:")
    two = RedisSessionStore.from_url(redis_url, prefix="two:")
    try:
        session = make_session()
        await one.create(session)
        assert await two.get(session.sid) is None
        assert await two.list_subject("alice") == []
        keys = raw.keys("*")
        assert keys
        assert all(isinstance(k, str) and k.startswith("one:{") for k in keys)
    finally:
        await one.aclose()
        await two.aclose()


async def test_redis_rejects_session_id_without_subject_tag(
    redis_store: RedisSessionStore,
) -> None:
    session = msgspec.structs.replace(make_session(), sid=new_session_id("mallory"))
    with pytest.raises(ValueError, match="tag"):
        await redis_store.create(session)


OUTBOX = "sessiond:outbox"


async def test_redis_outbox_layout_and_durability(redis_url: str, raw: redis.Redis) -> None:
    event = token_event(time.time())
    one = RedisSessionStore.from_url(redis_url)
    try:
        await one.outbox_add(event)
    finally:
        await one.aclose()
    assert raw.keys("*") == [OUTBOX]
    assert raw.pttl(OUTBOX) == -1  # never expires
    assert raw.hgetall(OUTBOX) == {event.id: events.encode(event).decode()}

    two = RedisSessionStore.from_url(redis_url)  # another replica, or the relay
    try:
        assert await two.outbox_pending(time.time() + 1) == [event]
        await two.outbox_remove(event.id)
    finally:
        await two.aclose()
    assert raw.keys("*") == []


async def test_redis_outbox_prefix(redis_url: str, raw: redis.Redis) -> None:
    one = RedisSessionStore.from_url(redis_url, prefix="one:")
    two = RedisSessionStore.from_url(redis_url, prefix="two:")
    try:
        event = token_event(time.time())
        await one.outbox_add(event)
        assert raw.keys("*") == ["one:outbox"]
        assert await two.outbox_depth() == 0
        assert await two.outbox_pending(float("inf")) == []
        assert await one.outbox_pending(float("inf")) == [event]
    finally:
        await one.aclose()
        await two.aclose()


async def test_redis_outbox_drops_malformed_entries(
    redis_store: RedisSessionStore, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    good = token_event(time.time() - 5)
    await redis_store.outbox_add(good)
    other = token_event(time.time() - 4)
    raw.hset(
        OUTBOX,
        mapping={
            "junk": "{not json",
            "wrong-shape": '{"kind": "token", "id": "wrong-shape"}',
            "unknown-kind": '{"kind": "galaxy", "id": "unknown-kind", "at": 1.0}',
            "misfiled": events.encode(other).decode(),  # stored under another id
            b"\xff\xfe": b"\xff",
        },
    )
    with caplog.at_level(logging.ERROR, logger="sessiond.sessions.redis"):
        assert await redis_store.outbox_pending(time.time()) == [good]
    dropped = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(dropped) == 5, dropped
    assert raw.hkeys(OUTBOX) == [good.id]
    assert await redis_store.outbox_depth() == 1


async def test_redis_outbox_pending_reads_a_large_outbox(
    redis_store: RedisSessionStore, raw: redis.Redis
) -> None:
    now = time.time()
    made = [token_event(now - 2000 + i) for i in range(2000)]  # several HSCAN pages
    raw.hset(OUTBOX, mapping={e.id: events.encode(e) for e in made})
    assert await redis_store.outbox_pending(now) == made
    assert await redis_store.outbox_pending(now - 1000) == made[:1000]


async def test_redis_create_asks_once_per_evicted_session_across_retries(
    redis_store: RedisSessionStore, raw: redis.Redis, redis_url: str
) -> None:
    now = time.time()
    first, second = make_session(created_at=now), make_session(created_at=now + 1)
    await redis_store.create(first)
    _, index = keys_of(first)
    calls: list[str] = []

    def evicted(old: Session) -> Revocation:
        calls.append(old.sid)
        raw.pexpire(index, 3_600_000 + len(calls))  # another writer: the transaction retries
        return session_event(old.sid)

    with Monitor(redis_url) as monitor:
        assert await redis_store.create(second, 1, evicted) == [first]
    assert len([c for c in monitor.commands if c["command"].startswith("WATCH")]) >= 2
    assert calls == [first.sid]
    stored = await redis_store.outbox_pending(float("inf"))
    assert [e.sid for e in stored if isinstance(e, SessionRevoked)] == [first.sid]


class Monitor:
    """Every command Redis executes, in order, from MONITOR in a thread."""

    STOP = "monitor-stop"

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, decode_responses=True)
        self.commands: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._client.monitor() as monitor:  # type: ignore[no-untyped-call]
            self._ready.set()
            for command in monitor.listen():
                if command["command"] == f"ECHO {self.STOP}":
                    return
                self.commands.append(command)

    def __enter__(self) -> Monitor:
        self._thread.start()
        assert self._ready.wait(5)
        time.sleep(0.05)  # MONITOR is registered once the server saw it
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.echo(self.STOP)
        self._thread.join(5)
        self._client.close()

    def transactions(self) -> list[list[str]]:
        """The commands of each MULTI/EXEC block, per connection, in execution order."""
        blocks: dict[str, list[str]] = {}
        done: list[list[str]] = []
        for command in self.commands:
            conn, text = command["client_port"], command["command"]
            if text == "MULTI":
                blocks[conn] = []
            elif text == "EXEC":
                done.append(blocks.pop(conn))
            elif conn in blocks:
                blocks[conn].append(text)
        return done

    def outside(self, prefix: str) -> list[str]:
        """Commands starting with ``prefix`` that ran outside every MULTI/EXEC block."""
        inside: set[str] = set()
        found = []
        for command in self.commands:
            conn, text = command["client_port"], command["command"]
            if text == "MULTI":
                inside.add(conn)
            elif text in ("EXEC", "DISCARD"):
                inside.discard(conn)
            elif conn not in inside and text.startswith(prefix):
                found.append(text)
        return found


async def test_redis_outbox_writes_share_the_session_transaction(
    redis_store: RedisSessionStore, redis_url: str
) -> None:
    now = time.time()
    first, second, third = (make_session(created_at=now + i) for i in range(3))
    bobs = make_session("bob")
    for session in (first, second, bobs):
        await redis_store.create(session)

    with Monitor(redis_url) as monitor:
        await redis_store.create(third, 2, lambda old: session_event(old.sid))
        await redis_store.delete(second.sid, session_event(second.sid))
        await redis_store.delete_subject("bob", subject_event("bob"))

    assert monitor.outside(f"HSET {OUTBOX}") == []
    blocks = [b for b in monitor.transactions() if any(c.startswith("HSET") for c in b)]
    record = keys_of(first)[0]
    assert len(blocks) == 3, monitor.transactions()
    evict, delete, delete_subject = blocks
    # session.lua writes a record and its index entry: the new session ...
    assert any(c.startswith("EVAL ") and keys_of(third)[0] in c for c in evict), evict
    assert any(c.startswith("DEL ") and record in c for c in evict), evict  # ... the evicted one
    assert any(c.startswith("EVAL ") and keys_of(second)[0] in c for c in delete), delete
    assert any(c.startswith("DEL ") and bobs.sid in c for c in delete_subject), delete_subject


@pytest.mark.parametrize("backend", [RedisSessionStore, RedisRateLimiter])
@pytest.mark.parametrize("prefix", ["app{1}:", "a}"])
def test_a_redis_key_prefix_with_a_hash_tag_brace_is_refused(backend: Any, prefix: str) -> None:
    client = redis.asyncio.Redis()  # never connects: the check comes first
    with pytest.raises(ValueError, match="hash tags"):
        backend(client, prefix=prefix)
    assert backend(client, prefix="app:")._prefix == "app:"
