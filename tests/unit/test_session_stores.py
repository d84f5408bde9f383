"""One contract for every SessionStore: in memory and on Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
import redis
import redis.asyncio

from sessiond.errors import SessionNotFound, StoreUnavailable
from sessiond.sessions.memory import MemorySessionStore
from sessiond.sessions.models import Device, RefreshState, Session, new_session_id, subject_tag
from sessiond.sessions.redis import RedisSessionStore
from sessiond.sessions.store import SessionStore

SHORT = 0.3  # seconds a short-lived session lives
PAST_SHORT = 0.45  # sleep to be sure it is dead


def make_session(
    sub: str = "alice",
    *,
    created_at: float | None = None,
    idle: float = 600.0,
    lifetime: float = 3600.0,
) -> Session:
    now = time.time()
    created = now if created_at is None else created_at
    return Session(
        sid=new_session_id(sub),
        sub=sub,
        created_at=created,
        last_seen_at=created,
        idle_expires_at=now + idle,
        expires_at=now + lifetime,
        refresh=RefreshState(hash="h0"),
        device=Device(label="laptop", user_agent="test/1.0", ip="192.0.2.1"),
        data={"theme": "dark", "n": [1, 2]},
        claims={"role": "admin"},
        scope="read write",
    )


def bump(session: Session) -> tuple[Session, int]:
    """A change: next refresh generation; returns it."""
    generation = session.refresh.generation + 1
    refresh = msgspec.structs.replace(session.refresh, generation=generation)
    return msgspec.structs.replace(session, refresh=refresh), generation


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        backend: SessionStore = MemorySessionStore()
    else:
        backend = RedisSessionStore.from_url(request.getfixturevalue("redis_url"))
    yield backend
    await backend.aclose()


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
        raw.set(record, raw.get(record) or "", keepttl=True)  # another writer, every time
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
