"""sessiond as Redis's least-privilege ACL user (``redis_client.acl_rule``): every path of the
service works (sign-in with and without a session limit, refresh, listing, revocations, the
outbox and its relay, rate limits, the receivers' registry) and the server refuses whatever
lies outside the rule."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.exceptions import NoPermissionError

# The service's own tests, run here as the ACL user (the backend fixture below).
from test_service_api import (  # noqa: F401
    test_introspection,
    test_revocation_by_session_and_subject,
    test_revoke_all_rejects_old_tokens_but_sessions_refresh,
    test_rfc7009_revoke_of_a_refresh_token_ends_the_session,
)

from sessiond.cluster.specs import redis_spec
from sessiond.events import Revocation, TokenRevoked, new_event_id
from sessiond.receivers.models import DeadLetter, Receiver
from sessiond.receivers.redis import RedisReceiverRegistry
from sessiond.redis_client import DEFAULT_PREFIX, RedisTarget, acl_user
from sessiond.sessions.redis import RedisSessionStore
from sessiond.workers.relay import Relay
from support.authority import Authority, MakeAuthority
from support.secrets import register
from support.servers import ServerProcess

USER = "sessiond"
PASSWORD = secrets.token_hex(16)
register("redis password", PASSWORD)


@pytest.fixture(scope="module")
def acl_redis() -> Iterator[ServerProcess]:
    """A redis-server with sessiond's ACL user; ``default`` stays the test's admin."""
    with ServerProcess(redis_spec(users=[acl_user(USER, PASSWORD)])) as server:
        yield server


@pytest.fixture
def admin(acl_redis: ServerProcess) -> Iterator[redis.Redis]:
    """The ``default`` user, on an emptied server with an empty ACL LOG."""
    with redis.Redis.from_url(acl_redis.url) as client:
        client.flushall()
        client.acl_log_reset()
        yield client


@pytest.fixture(params=["redis"])
def backend(admin: redis.Redis, acl_redis: ServerProcess) -> dict[str, str]:
    return {"redis_url": acl_redis.url, "redis_username": USER, "redis_password": PASSWORD}


def denials(admin: redis.Redis) -> list[str]:
    """What the server refused the ACL user (CLIENT SETINFO, which redis-py sends on connect
    and whose refusal it ignores, aside: Redis 7.2 and later know that command)."""
    entries: list[dict[Any, Any]] = admin.acl_log()
    found = [f"{e['reason']} {e['object']}" for e in entries]
    return [d for d in found if d != "command client|setinfo"]


async def test_the_session_lifecycle_needs_nothing_outside_the_rule(
    make_authority: MakeAuthority, admin: redis.Redis
) -> None:
    authority: Authority = await make_authority(session_limit=2, rate_refresh_per_session=3)
    first = await authority.login("alice")
    second = await authority.login("alice")
    third = await authority.login("alice")  # evicts the first (WATCH, MULTI/EXEC, outbox)
    assert (await authority.refresh(first["refresh_token"])).status_code == 400
    refreshed = await authority.refresh(second["refresh_token"])
    assert refreshed.status_code == 200
    listed = await authority.http.get("/v1/subjects/alice/sessions", headers=authority.service)
    assert listed.status_code == 200
    assert len(listed.json()["sessions"]) == 2
    sid = third["session_id"]
    revoked = await authority.http.delete(f"/v1/sessions/{sid}", headers=authority.service)
    assert revoked.status_code == 204
    assert (await authority.whoami(third["access_token"])).status_code == 401
    chain = refreshed.json()["refresh_token"]
    for _ in range(3):  # the refresh limit (3 per window) counts in Redis
        answer = await authority.refresh(chain)
        if answer.status_code != 200:
            break
        chain = answer.json()["refresh_token"]
    assert answer.status_code == 429
    everything = await authority.http.delete(
        "/v1/subjects/alice/sessions", headers=authority.service
    )
    assert everything.status_code == 204
    assert (await authority.http.get("/readyz")).status_code == 200
    assert denials(admin) == []


@pytest.fixture
async def acl_store(
    acl_redis: ServerProcess, admin: redis.Redis
) -> AsyncIterator[RedisSessionStore]:
    store = RedisSessionStore.from_url(RedisTarget(acl_redis.url, USER, PASSWORD))
    yield store
    await store.aclose()


async def test_the_relay_drains_the_outbox_as_the_acl_user(
    acl_store: RedisSessionStore, admin: redis.Redis
) -> None:
    now = time.time()
    event = TokenRevoked(id=new_event_id(), at=now - 10, jti=new_event_id(), expires_at=now + 300)
    await acl_store.outbox_add(event)
    published: list[Revocation] = []

    async def publish(e: Revocation) -> None:
        published.append(e)

    assert await Relay(acl_store, publish, grace=1.0).run_once(now) == 1
    assert published == [event]
    assert await acl_store.outbox_depth() == 0
    assert denials(admin) == []


async def test_the_clock_check_reads_redis_time_as_the_acl_user(
    acl_store: RedisSessionStore, admin: redis.Redis
) -> None:
    assert abs(await acl_store.server_time() - time.time()) < 1
    assert denials(admin) == []


async def test_the_receivers_registry_works_as_the_acl_user(
    acl_redis: ServerProcess, admin: redis.Redis
) -> None:
    registry = RedisReceiverRegistry.from_url(RedisTarget(acl_redis.url, USER, PASSWORD))
    receiver = Receiver(id="rp", kind="ssf", endpoint="https://rp.test", audience="rp")
    letter = DeadLetter(
        receiver="rp", event_id=new_event_id(), kind="session", seq=1, attempts=1, error="", at=1
    )
    try:
        assert await registry.add(receiver)
        assert await registry.all() == [receiver]
        assert await registry.get("rp") == receiver
        await registry.dead_letter(letter)
        assert await registry.dead_letters("rp") == [letter]
        await registry.forget(letter)
        assert await registry.dead_letters("rp") == []
        assert await registry.remove("rp")
    finally:
        await registry.aclose()
    assert denials(admin) == []


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("CONFIG", "SET", "appendonly", "no"),
        ("KEYS", "*"),
        ("SET", "other:key", "x"),
        ("GET", "other:key"),
        ("SET", "sessiond", "x"),  # the prefix without its colon is another key
        ("PUBLISH", "sessiond.revocations.all", "x"),
        ("EVAL", "return redis.call('SET', KEYS[1], 'x')", "1", "other:key"),
        ("ACL", "SETUSER", USER, "+@all"),
    ],
)
async def test_the_server_refuses_what_lies_outside_the_rule(
    acl_redis: ServerProcess, admin: redis.Redis, command: tuple[str, ...]
) -> None:
    client = redis.asyncio.Redis.from_url(acl_redis.url, username=USER, password=PASSWORD)
    async with client:
        await client.set(f"{DEFAULT_PREFIX}mine", "x")  # inside the rule: allowed
        with pytest.raises(NoPermissionError):
            await client.execute_command(*command)  # type: ignore[no-untyped-call]
    assert admin.get("other:key") is None
