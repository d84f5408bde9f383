"""The one way sessiond connects to Redis, shared by the session store and the rate limiter."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

#: Errors meaning "Redis cannot be reached right now" (``BusyLoadingError`` and
#: ``AuthenticationError`` are ``ConnectionError`` subclasses; ``ReadOnlyError`` is a replica).
UNREACHABLE = (ConnectionError, TimeoutError, OSError, ReadOnlyError)


def check_prefix(prefix: str) -> str:
    """``prefix`` for sessiond's keys; ``ValueError`` if it holds a Redis Cluster hash tag
    brace, since the keys put their own hash tag after it."""
    if "{" in prefix or "}" in prefix:
        raise ValueError("prefix must not contain '{' or '}' (Redis Cluster hash tags)")
    return prefix


def blocking_client(url: str, *, max_connections: int, timeout: float) -> Redis:
    """A client with its own blocking pool of at most ``max_connections`` connections.

    Connecting, waiting for a free connection and every command time out after ``timeout``
    seconds, and a restarted Redis is picked up again without recreating the client.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # One quick retry replaces a connection that Redis closed (a restart); a timeout is
        # not retried, so a hung server costs one timeout, not several.
        retry=Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), 1, (ConnectionError,)),
        decode_responses=False,
    )
    return Redis.from_pool(pool)
