"""Revocation while Redis is down (invariant I7), with a real redis-server that the test stops
and a real nats-server: the stream is the record, every replica enforces it, and the relay's
applier deletes the revoked sessions' records once Redis is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.broadcast.stream import StreamSpec
from sessiond.events import SessionRevoked, SubjectRevoked, TokenRevoked, new_event_id
from sessiond.runtime import Runtime
from sessiond.sessions.base import SessionStore
from sessiond.sessions.redis import RedisSessionStore
from sessiond.tokens.keys import Keyset
from sessiond.workers.applier import StoreApplier, apply_to_store
from support.authority import Authority, assert_problem, bearer, distributed_settings
from support.polling import eventually
from support.servers import ServerProcess
from support.sessions import make_session
from support.signing import verifier


@contextlib.asynccontextmanager
async def replicas(
    redis_url: str, nats_url: str, spec: StreamSpec, tmp_path: Path, count: int = 2
) -> AsyncIterator[list[Authority]]:
    """``count`` authority replicas on one Redis and one stream, each caught up."""
    settings, secret = distributed_settings(
        redis_url,
        tmp_path,
        nats_url=nats_url,
        nats_stream=spec.name,
        nats_subject=spec.subject_prefix,
    )
    async with contextlib.AsyncExitStack() as stack:
        started: list[Authority] = []
        for _ in range(count):
            runtime = Runtime(settings)
            http: AsyncTestClient[Any] = AsyncTestClient(create_app(runtime))
            await stack.enter_async_context(http)
            bus = runtime.bus
            await eventually(lambda: bus.staleness(time.time()) < 1, 10.0, "caught up")  # noqa: B023
            started.append(Authority(http, runtime, secret))
        yield started


@contextlib.asynccontextmanager
async def applier(
    redis_url: str, nats_url: str, spec: StreamSpec, tmp_path: Path
) -> AsyncIterator[StoreApplier]:
    """The relay's store applier, running on its own store and NATS connection."""
    store = RedisSessionStore.from_url(redis_url, socket_timeout=0.25)
    nc = await nats.connect(nats_url)
    running = StoreApplier(store, spec, verifier(Keyset.load(tmp_path / "keyset.json")), retry=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(running.run(nc, stop))
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await nc.close()
        await store.aclose()


async def revoke(authority: Authority, method: str, path: str, **body: Any) -> int:
    response = await authority.http.request(
        method, path, headers=authority.service, json=body or None
    )
    assert response.status_code in (200, 204), response.text
    if response.status_code == 200:
        assert response.json()["status"] == "propagated", "acknowledged by the stream"
    return response.status_code


async def test_revocations_with_redis_down_are_enforced_and_applied_once_it_is_back(
    own_redis: ServerProcess, nats_server: ServerProcess, spec: StreamSpec, tmp_path: Path
) -> None:
    async with (
        replicas(own_redis.url, nats_server.url, spec, tmp_path) as (a, b),
        applier(own_redis.url, nats_server.url, spec, tmp_path) as relay,
    ):
        session, other = await a.login("alice"), await a.login("alice")
        bob = [await a.login("bob"), await a.login("bob")]
        carol, dave = await a.login("carol"), await a.login("dave")
        jti = (await b.whoami(dave["access_token"])).json()["jti"]

        own_redis.stop()
        assert await revoke(a, "DELETE", f"/v1/sessions/{session['session_id']}") == 204
        assert await revoke(a, "DELETE", "/v1/subjects/bob/sessions") == 204
        assert await revoke(a, "POST", "/v1/revocations", kind="token", jti=jti) == 200
        logout = await a.http.post("/v1/logout", headers=bearer(other["access_token"]))
        assert logout.status_code == 204, logout.text

        for revoked in (session, other, *bob, dave):
            assert (await b.whoami(revoked["access_token"])).status_code == 401
        assert (await b.whoami(carol["access_token"])).status_code == 200
        assert_problem(await a.refresh(session["refresh_token"]), 503, "store-unavailable")
        assert_problem(await b.refresh(bob[0]["refresh_token"]), 503, "store-unavailable")

        own_redis.start()
        ended = [session, other, *bob]
        await eventually(
            lambda: relay.position is not None and relay.position.seq >= 4,
            10.0,
            "the applier applied the 4 revocations made while Redis was down",
        )
        store = RedisSessionStore.from_url(own_redis.url)
        for revoked in ended:
            assert await store.get(revoked["session_id"]) is None
        assert await store.stream_position() == relay.position
        await store.aclose()
        for revoked in ended:
            assert_problem(await b.refresh(revoked["refresh_token"]), 400, "invalid-grant")
        assert (await b.refresh(carol["refresh_token"])).status_code == 200
        assert (await b.refresh(dave["refresh_token"])).status_code == 200, (
            "a token revocation ends no session"
        )


async def test_a_refresh_before_the_applier_ran_is_refused_by_the_denylist(
    own_redis: ServerProcess, nats_server: ServerProcess, spec: StreamSpec, tmp_path: Path
) -> None:
    async with replicas(own_redis.url, nats_server.url, spec, tmp_path) as (a, b):
        session, subject = await a.login("alice"), await a.login("bob")
        own_redis.stop()
        await revoke(a, "DELETE", f"/v1/sessions/{session['session_id']}")
        await revoke(a, "DELETE", "/v1/subjects/bob/sessions")
        own_redis.start()  # and no relay: the records are still there
        store = RedisSessionStore.from_url(own_redis.url)
        for revoked in (session, subject):
            assert await store.get(revoked["session_id"]) is not None
            assert_problem(await b.refresh(revoked["refresh_token"]), 400, "invalid-grant")
            assert await store.get(revoked["session_id"]) is None, "deleted by the refresh"
        await store.aclose()


async def test_with_redis_and_nats_down_a_revocation_is_refused(
    own_redis: ServerProcess, own_nats: ServerProcess, spec: StreamSpec, tmp_path: Path
) -> None:
    async with replicas(own_redis.url, own_nats.url, spec, tmp_path, count=1) as (a,):
        session = await a.login("alice")
        own_redis.stop()
        own_nats.stop()
        for method, path, body in (
            ("DELETE", f"/v1/sessions/{session['session_id']}", None),
            ("DELETE", "/v1/subjects/alice/sessions", None),
            ("POST", "/v1/revocations", {"kind": "all"}),
        ):
            response = await a.http.request(method, path, headers=a.service, json=body)
            assert_problem(response, 503, "store-unavailable")
        own_redis.start()
        assert (await a.refresh(session["refresh_token"])).status_code == 200, "nothing was revoked"


async def test_applying_an_event_twice_changes_nothing_and_spares_later_sessions(
    store: SessionStore,
) -> None:
    now = time.time()
    before = make_session("alice", created_at=now - 10)
    after = make_session("alice", created_at=now + 1)
    kept = make_session("bob", created_at=now - 10)
    for session in (before, after, kept):
        await store.create(session)
    subject = SubjectRevoked(
        id=new_event_id(), at=now, sub="alice", not_before=int(now), expires_at=now + 305
    )
    single = SessionRevoked(id=new_event_id(), at=now, sid=kept.sid, expires_at=now + 305)
    token = TokenRevoked(id=new_event_id(), at=now, jti="j", expires_at=now + 305)
    for event in (subject, subject, token):
        await apply_to_store(store, event)
    assert [s.sid for s in await store.list_subject("alice")] == [after.sid]
    assert await store.get(kept.sid) == kept
    for _ in range(2):
        await apply_to_store(store, single)
    assert await store.get(kept.sid) is None
    assert await store.outbox_depth() == 0, "applying adds nothing to the outbox"
