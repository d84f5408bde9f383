"""The one way sessiond connects to Redis, shared by the session store, the rate limiter and
the relay: where and as whom (:class:`RedisTarget`: URL, ACL user, TLS files), how
(:func:`blocking_client`), what the ACL user may do (:func:`acl_rule`) and why a connection
failed (:meth:`RedisTarget.explain`).

A ``redis+sentinel://`` URL names Redis Sentinels instead of Redis: every connection goes to
the master they name at that moment, so a failover is a short outage (``StoreUnavailable``,
503) after which the client finds the promoted replica by itself.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import AuthenticationError, ConnectionError, ReadOnlyError, TimeoutError

from sessiond.errors import StoreUnavailable
from sessiond.settings import SentinelLocation, Settings, sentinel_location

log = logging.getLogger("sessiond.redis")

#: Errors meaning "Redis cannot be reached right now" (``BusyLoadingError`` and
#: ``AuthenticationError`` are ``ConnectionError`` subclasses; ``ReadOnlyError`` is a replica).
UNREACHABLE = (ConnectionError, TimeoutError, OSError, ReadOnlyError)

#: The key prefix of the session store and the rate limiter.
DEFAULT_PREFIX = "sessiond:"

#: Every command sessiond sends, from the session store (records, subject index, outbox:
#: WATCH/MULTI/EXEC transactions and session.lua), the rate limiter (fixed_window.lua) and
#: the relay, including the commands the two Lua scripts call. SELECT for a URL naming a
#: database other than 0.
ACL_COMMANDS = (
    "ping",
    "select",
    "get",
    "mget",
    "set",
    "del",
    "incr",
    "pttl",
    "pexpire",
    "pexpireat",
    "zadd",
    "zrange",
    "zrem",
    "zremrangebyscore",
    "hset",
    "hdel",
    "hlen",
    "hscan",
    "watch",
    "unwatch",
    "multi",
    "exec",
    "discard",
    "eval",
    "evalsha",
    "script|load",
    "time",  # the clock replicas check theirs against (sessions/clock.py)
    # the receivers' registry and dead letters (receivers/redis.py)
    "hsetnx",
    "hget",
    "hgetall",
    "lpush",
    "ltrim",
    "lrange",
    "lrem",
)


#: The ACL rules of a deployment's ``default`` user: no password, no keys, PING only.
PROBE_RULE = "reset on nopass +ping"


def acl_rule(prefix: str = DEFAULT_PREFIX) -> str:
    """The ACL rules of sessiond's Redis user, without its name and password: the commands of
    :data:`ACL_COMMANDS` on the keys starting with ``prefix``, no Pub/Sub channel."""
    commands = " ".join(f"+{command}" for command in ACL_COMMANDS)
    return f"reset on ~{check_prefix(prefix)}* resetchannels -@all {commands}"


def acl_user(user: str, password: str, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The arguments of a Redis ``user`` directive (``redis-server --user ...``) that create
    ``user`` with ``password`` and :func:`acl_rule`."""
    return [user, *acl_rule(prefix).split(), f">{password}"]


def acl_file(user: str, password: str, prefix: str = DEFAULT_PREFIX) -> str:
    """A Redis ACL file (``aclfile``) for a deployment: ``user`` as :func:`acl_user` makes it,
    and a ``default`` user that may only PING (the probes), so nobody else gets in."""
    users = (["default", *PROBE_RULE.split()], acl_user(user, password, prefix))
    return "".join(f"user {' '.join(args)}\n" for args in users)


def check_prefix(prefix: str) -> str:
    """``prefix`` for sessiond's keys; ``ValueError`` if it holds a Redis Cluster hash tag
    brace, since the keys put their own hash tag after it."""
    if "{" in prefix or "}" in prefix:
        raise ValueError("prefix must not contain '{' or '}' (Redis Cluster hash tags)")
    return prefix


@dataclass(frozen=True)
class RedisTarget:
    """Where and as whom to connect: the URL (``redis://``, ``rediss://`` or
    ``redis+sentinel://``, no password in it), the ACL user and password, for TLS the CA
    bundle and a client certificate, and the Sentinels' password."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisTarget:
        """The target of ``SESSIOND_REDIS_*``; ``ValueError`` in the embedded mode."""
        if settings.redis_url is None:
            raise ValueError("no SESSIOND_REDIS_URL")
        return cls(
            settings.redis_url,
            settings.redis_username,
            settings.redis_password,
            settings.redis_tls_ca,
            settings.redis_tls_cert,
            settings.redis_tls_key,
            settings.redis_sentinel_password,
        )

    @property
    def sentinel(self) -> SentinelLocation | None:
        """The Sentinels of a ``redis+sentinel://`` URL, else ``None``."""
        return sentinel_location(self.url)

    def pool_options(self) -> dict[str, Any]:
        """The keyword arguments of ``BlockingConnectionPool.from_url`` besides the URL."""
        options: dict[str, Any] = {"username": self.username, "password": self.password}
        if self.url.startswith("rediss://"):
            options.update(
                ssl_ca_certs=self.tls_ca, ssl_certfile=self.tls_cert, ssl_keyfile=self.tls_key
            )
        return options

    def explain(self, exc: BaseException) -> str:
        """Why connecting failed, in one line naming the setting to check."""
        for cause in _chain(exc):
            if isinstance(cause, MasterNotFoundError):
                return (
                    f"SESSIOND_REDIS_URL: no Sentinel named a healthy master ({cause}); check "
                    "the Sentinels' addresses, the master's name and "
                    "SESSIOND_REDIS_SENTINEL_PASSWORD"
                )
            if isinstance(cause, ssl.SSLCertVerificationError):
                return (
                    f"SESSIOND_REDIS_TLS_CA: the Redis server's certificate is not trusted "
                    f"({cause.verify_message}; CA bundle: {self.tls_ca or 'the system store'})"
                )
            if isinstance(cause, ssl.SSLError):
                return (
                    f"Redis TLS handshake failed ({cause.reason}): check SESSIOND_REDIS_TLS_CA, "
                    "SESSIOND_REDIS_TLS_CERT and SESSIOND_REDIS_TLS_KEY"
                )
            if isinstance(cause, AuthenticationError):
                return (
                    f"SESSIOND_REDIS_USERNAME and SESSIOND_REDIS_PASSWORD: Redis refused them "
                    f"({cause})"
                )
            if isinstance(cause, ConnectionResetError) and not self.url.startswith("rediss://"):
                return (
                    f"Redis closed the connection ({cause.strerror}): if it serves TLS only, "
                    "SESSIOND_REDIS_URL must be rediss://"
                )
        return str(exc)


def blocking_client(target: RedisTarget | str, *, max_connections: int, timeout: float) -> Redis:
    """A client with its own blocking pool of at most ``max_connections`` connections.

    Connecting, waiting for a free connection and every command time out after ``timeout``
    seconds, and a restarted Redis (or, behind Sentinel, a new master) is picked up again
    without recreating the client.
    """
    if isinstance(target, str):
        target = RedisTarget(target)
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "timeout": timeout,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # One quick retry replaces a connection that Redis closed (a restart); a timeout is
        # not retried, so a hung server costs one timeout, not several.
        "retry": Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), 1, (ConnectionError,)),
        "decode_responses": False,
        **target.pool_options(),
    }
    location = target.sentinel
    if location is None:
        return Redis.from_pool(BlockingConnectionPool.from_url(target.url, **options))
    sentinels = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        location.sentinels,
        sentinel_kwargs={
            "password": target.sentinel_password,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        },
    )
    client: Redis = sentinels.master_for(
        location.master,
        redis_class=_SentinelMasterClient,
        connection_pool_class=_BlockingSentinelPool,
        db=location.db,
        **options,
    )
    return client


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A pool of connections to the master Sentinel names that, when every connection is
    in use, waits for one (``timeout``) like :class:`BlockingConnectionPool` instead of
    failing at once like :class:`SentinelConnectionPool`."""


class _SentinelMasterClient(Redis):
    """The master's client; closing it closes the connections to the Sentinels too (which
    ``Sentinel.master_for``'s client leaves open)."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


async def first_contact(ping: Callable[[], Awaitable[None]], target: RedisTarget) -> None:
    """Ping Redis once at start; if that fails, log why in one line (the readiness probe
    keeps failing until it answers)."""
    try:
        await ping()
    except StoreUnavailable as exc:
        log.error("Redis at %s: %s", target.url, target.explain(exc))  # noqa: TRY400 - one line


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
