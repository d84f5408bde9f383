"""The Redis session store during and after an outage: fail fast and typed, then recover by
itself."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sessiond.errors import StoreUnavailable
from sessiond.sessions.models import Session
from sessiond.sessions.redis import RedisSessionStore
from support.servers import ServerProcess, free_port
from support.sessions import bump, make_session

UNREACHABLE = "session store (Redis) unreachable"


def every_method(
    store: RedisSessionStore, session: Session
) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "ping": store.ping,
        "create": lambda: store.create(make_session(), limit=2),
        "get": lambda: store.get(session.sid),
        "update": lambda: store.update(session.sid, bump),
        "delete": lambda: store.delete(session.sid),
        "list_subject": lambda: store.list_subject(session.sub),
        "delete_subject": lambda: store.delete_subject(session.sub),
    }


async def assert_unavailable(call: Callable[[], Awaitable[Any]], within: float) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        await call()
    assert time.monotonic() - started < within
    assert info.value.detail == UNREACHABLE


@pytest.fixture
async def store(own_redis: ServerProcess) -> AsyncIterator[RedisSessionStore]:
    store = RedisSessionStore.from_url(own_redis.url)
    yield store
    await store.aclose()


async def test_down_fails_fast_then_the_same_store_recovers(
    own_redis: ServerProcess, store: RedisSessionStore
) -> None:
    session = make_session()
    await store.create(session)
    assert await store.update(session.sid, bump) == 1  # the pool now holds live connections

    own_redis.stop()
    for name, call in every_method(store, session).items():
        try:
            await assert_unavailable(call, within=2.0)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc

    own_redis.start()  # same port, same data directory
    await store.ping()
    stored = await store.get(session.sid)  # acknowledged before the outage: kept (AOF)
    assert stored is not None
    assert stored.refresh.generation == 1
    assert await store.update(session.sid, bump) == 2
    other = make_session()
    assert await store.create(other) == []
    assert [s.sid for s in await store.list_subject("alice")] == [session.sid, other.sid]
    assert await store.delete(other.sid) == other


async def test_crash_keeps_acknowledged_sessions(
    own_redis: ServerProcess, store: RedisSessionStore
) -> None:
    sessions = [make_session(f"user{i}") for i in range(20)]
    for session in sessions:
        await store.create(session)

    own_redis.kill()
    await assert_unavailable(lambda: store.get(sessions[0].sid), within=2.0)
    own_redis.start()

    for session in sessions:
        assert await store.get(session.sid) == session


async def test_hung_server_times_out(own_redis: ServerProcess, store: RedisSessionStore) -> None:
    session = make_session()
    await store.create(session)
    own_redis.pause()  # accepts connections, never answers
    try:
        await assert_unavailable(lambda: store.get(session.sid), within=1.5)
        await assert_unavailable(lambda: store.update(session.sid, bump), within=1.5)
    finally:
        own_redis.resume()
    assert await store.update(session.sid, bump) == 1


async def test_unreachable_error_does_not_leak_the_url() -> None:
    store = RedisSessionStore.from_url(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(StoreUnavailable) as info:
            await store.ping()
    finally:
        await store.aclose()
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert info.value.detail == UNREACHABLE
    assert not any("hunter2" in f"{e} {e!r}" for e in chain)
