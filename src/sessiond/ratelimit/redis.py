"""Rate limiter on Redis, shared by every replica: the limits are global, not per process.

One hit is one ``EVALSHA`` of ``fixed_window.lua`` (shipped with this package): ``INCR`` the
key's counter and give it a ``PEXPIRE`` of the window on its first hit, atomically, so
concurrent hits on any number of replicas are counted exactly. The window is measured by the
Redis server's clock, so replicas with skewed clocks still agree.

Keys are ``{prefix}rl:{<sha256 of the key>}``: bounded in length whatever the subject, and
each one its own Redis Cluster hash tag (every script touches one key only).

**Fail closed**: when Redis cannot be reached a hit raises ``StoreUnavailable`` (503), it is
not waved through. Without Redis the session store is down as well, so the request could not
succeed anyway.
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources

from redis.asyncio import Redis

from sessiond.errors import StoreUnavailable
from sessiond.ratelimit.base import Decision
from sessiond.redis_client import UNREACHABLE, blocking_client, check_prefix

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
        url: str,
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
        try:
            count, ttl = await self._script(keys=[self.key(key)], args=[math.ceil(window * 1000)])
        except UNREACHABLE as exc:
            raise StoreUnavailable("rate limiter (Redis) unreachable") from exc
        return Decision(allowed=int(count) <= limit, retry_after=int(ttl) / 1000)

    async def aclose(self) -> None:
        await self._redis.aclose()
