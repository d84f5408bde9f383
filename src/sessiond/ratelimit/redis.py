"""Rate limiter on Redis, shared by every replica: the limits are global, not per process.

The hits of one request (say per credential and per subject) are one ``EVALSHA`` of
``fixed_window.lua`` (shipped with this package): for each key, ``INCR`` its counter and give
it a ``PEXPIRE`` of the window on its first hit, atomically, so concurrent hits on any number
of replicas are counted exactly, in one round trip whatever their number. The window is
measured by the Redis server's clock, so replicas with skewed clocks still agree.

Keys are ``{prefix}rl:{<sha256 of the key>}``: bounded in length whatever the subject, each its
own hash tag. One call touches the counters of one request, which Redis Cluster would refuse
when they hash to different slots; like the session store, the limiter needs one Redis node.

**Fail closed**: when Redis cannot be reached a hit raises ``StoreUnavailable`` (503), it is
not waved through. Without Redis the session store is down as well, so the request could not
succeed anyway.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from importlib import resources

from redis.asyncio import Redis

from sessiond.errors import StoreUnavailable
from sessiond.ratelimit.base import Decision
from sessiond.redis_client import UNREACHABLE, RedisTarget, blocking_client, check_prefix

__all__ = ("RedisRateLimiter",)

SCRIPT = resources.files("sessiond.ratelimit").joinpath("fixed_window.lua").read_text("utf-8")


class RedisRateLimiter:
    """:class:`~sessiond.ratelimit.base.RateLimiter` on Redis; see the module."""

    def __init__(self, redis: Redis, *, prefix: str = "sessiond:") -> None:
        """Wrap a client (``decode_responses=False``); the limiter closes it in :meth:`aclose`."""
        self._redis = redis
        self._prefix = check_prefix(prefix)
        self._script = redis.register_script(SCRIPT)

    @classmethod
    def from_url(
        cls,
        url: RedisTarget | str,
        *,
        prefix: str = "sessiond:",
        max_connections: int = 32,
        socket_timeout: float = 1.0,
    ) -> RedisRateLimiter:
        """A limiter with its own blocking pool; every wait and command times out."""
        client = blocking_client(url, max_connections=max_connections, timeout=socket_timeout)
        return cls(client, prefix=prefix)

    def key(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self._prefix}rl:{{{digest}}}"

    async def hit(self, key: str, limit: int, window: float) -> Decision:
        return (await self.hits([(key, limit)], window))[0]

    async def hits(self, hits: Sequence[tuple[str, int]], window: float) -> list[Decision]:
        keys = [self.key(key) for key, _ in hits]
        try:
            replies = await self._script(keys=keys, args=[math.ceil(window * 1000)])
        except UNREACHABLE as exc:
            raise StoreUnavailable("rate limiter (Redis) unreachable") from exc
        return [
            Decision(
                allowed=int(replies[2 * i]) <= limit, retry_after=int(replies[2 * i + 1]) / 1000
            )
            for i, (_, limit) in enumerate(hits)
        ]

    async def aclose(self) -> None:
        await self._redis.aclose()
