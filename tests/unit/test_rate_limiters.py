"""One contract for every RateLimiter: in memory and on Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis

from sessiond.errors import RateLimited, StoreUnavailable
from sessiond.ratelimit.base import RateLimiter
from sessiond.ratelimit.limits import RateLimits
from sessiond.ratelimit.memory import MemoryRateLimiter
from sessiond.ratelimit.redis import RedisRateLimiter
from sessiond.settings import Settings

WINDOW = 0.5


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """Each rate limiter: in memory, and on a clean real Redis."""
    if request.param == "memory":
        backend: RateLimiter = MemoryRateLimiter()
    else:
        backend = RedisRateLimiter.from_url(request.getfixturevalue("redis_url"))
    yield backend
    await backend.aclose()


async def test_allows_exactly_the_limit_then_denies_until_the_window_ends(
    limiter: RateLimiter,
) -> None:
    decisions = [await limiter.hit("k", 3, WINDOW) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    for decision in decisions:
        assert 0 < decision.retry_after <= WINDOW
    # denied hits do not extend the window
    assert decisions[-1].retry_after <= decisions[0].retry_after
    await asyncio.sleep(decisions[-1].retry_after + 0.05)
    assert (await limiter.hit("k", 3, WINDOW)).allowed


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    assert (await limiter.hit("a", 1, 60)).allowed
    assert not (await limiter.hit("a", 1, 60)).allowed
    assert (await limiter.hit("b", 1, 60)).allowed
    assert (await limiter.hit("a}{weird", 1, 60)).allowed


async def test_concurrent_hits_are_counted_exactly(limiter: RateLimiter) -> None:
    decisions = await asyncio.gather(*(limiter.hit("burst", 10, 60) for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 10


async def test_a_new_window_counts_from_zero(limiter: RateLimiter) -> None:
    for _ in range(4):
        await limiter.hit("w", 2, 0.2)
    await asyncio.sleep(0.3)
    assert [(await limiter.hit("w", 2, 0.2)).allowed for _ in range(3)] == [True, True, False]


async def test_hits_count_several_keys_at_once(limiter: RateLimiter) -> None:
    first = await limiter.hits([("x", 1), ("y", 2)], 60)
    second = await limiter.hits([("x", 1), ("y", 2)], 60)
    assert [d.allowed for d in first + second] == [True, True, False, True]
    assert not (await limiter.hit("x", 1, 60)).allowed  # the same counters as hit's


async def test_redis_loads_its_script_again_after_a_flush(redis_url: str) -> None:
    limiter = RedisRateLimiter.from_url(redis_url)
    assert (await limiter.hit("a", 1, 60)).allowed
    with redis.Redis.from_url(redis_url) as client:
        client.script_flush()  # a restarted Redis has no scripts either
    assert [d.allowed for d in await limiter.hits([("a", 1), ("b", 1)], 60)] == [False, True]
    await limiter.aclose()


def test_redis_keys_are_hash_tagged_and_bounded(redis_url: str) -> None:
    limiter = RedisRateLimiter.from_url(redis_url)
    key = limiter.key("sessions_per_subject:" + "x" * 10_000)
    assert key.startswith("sessiond:rl:{")
    assert key.endswith("}")
    assert len(key) < 64
    assert limiter.key("a") != limiter.key("b")


async def test_redis_counters_expire(redis_url: str) -> None:
    limiter = RedisRateLimiter.from_url(redis_url)
    await limiter.hit("expiring", 5, 30)
    with redis.Redis.from_url(redis_url) as client:
        ttl = client.pttl(limiter.key("expiring"))
    assert 0 < ttl <= 30_000
    await limiter.aclose()


async def test_redis_outage_fails_closed() -> None:
    limiter = RedisRateLimiter.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2)
    with pytest.raises(StoreUnavailable):
        await limiter.hit("k", 1, 60)
    await limiter.aclose()


async def test_rate_limits_raise_with_retry_after_and_zero_is_off() -> None:
    settings = Settings.load({}, {"rate_window": 1.5, "rate_sessions_per_subject": 1})
    limits = RateLimits(settings, MemoryRateLimiter())
    await limits.check("sessions_per_subject", "alice")
    with pytest.raises(RateLimited) as raised:
        await limits.check("sessions_per_subject", "alice")
    assert raised.value.retry_after == 2  # ceil of <= 1.5 s, never 0
    assert raised.value.status == 429
    assert raised.value.type.endswith(":rate-limited")
    assert "alice" not in raised.value.detail
    off = RateLimits(Settings.load({}, {"rate_refresh_per_session": 0}), MemoryRateLimiter())
    for _ in range(100):
        await off.check("refresh_per_session", "sid")
