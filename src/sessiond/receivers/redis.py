"""A :class:`~sessiond.receivers.base.ReceiverRegistry` on Redis, next to the sessions::

    {prefix}receivers              hash: receiver id -> msgspec JSON of the Receiver
    {prefix}receivers:dead:<id>    list: msgspec JSON of its DeadLetters, newest first

The webhook secrets are in the hash as they are (the worker signs with them): Redis holds
them as it holds the sessions, behind its ACL user and TLS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import msgspec
from redis.asyncio import Redis

from sessiond.errors import StoreUnavailable
from sessiond.receivers.base import DEAD_LETTERS_KEPT
from sessiond.receivers.models import DeadLetter, Receiver
from sessiond.redis_client import (
    DEFAULT_PREFIX,
    UNREACHABLE,
    RedisTarget,
    blocking_client,
    check_prefix,
)

T = TypeVar("T")
_receiver = msgspec.json.Decoder(Receiver)
_letter = msgspec.json.Decoder(DeadLetter)


@asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    try:
        yield
    except UNREACHABLE as exc:
        raise StoreUnavailable(f"Redis: {exc}") from exc


class RedisReceiverRegistry:
    """Receivers and dead letters in Redis; the registry owns ``redis`` and closes it."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._key = f"{check_prefix(prefix)}receivers"

    @classmethod
    def from_url(
        cls, url: RedisTarget | str, *, prefix: str = DEFAULT_PREFIX, timeout: float = 1.0
    ) -> RedisReceiverRegistry:
        return cls(blocking_client(url, max_connections=8, timeout=timeout), prefix=prefix)

    def _dead_key(self, receiver_id: str) -> str:
        return f"{self._key}:dead:{receiver_id}"

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        async with _reachable():
            return await call()

    async def add(self, receiver: Receiver) -> bool:
        added = await self._call(
            lambda: self._redis.hsetnx(self._key, receiver.id, msgspec.json.encode(receiver))
        )
        return bool(added)

    async def get(self, receiver_id: str) -> Receiver | None:
        raw = await self._call(lambda: self._redis.hget(self._key, receiver_id))
        return None if raw is None else _receiver.decode(raw)

    async def all(self) -> list[Receiver]:
        raw = await self._call(lambda: self._redis.hgetall(self._key))
        return sorted((_receiver.decode(value) for value in raw.values()), key=lambda r: r.id)

    async def remove(self, receiver_id: str) -> bool:
        async with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._key, receiver_id)
            pipe.delete(self._dead_key(receiver_id))
            removed, _ = await pipe.execute()
        return bool(removed)

    async def dead_letter(self, letter: DeadLetter) -> None:
        key = self._dead_key(letter.receiver)
        async with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, msgspec.json.encode(letter))
            pipe.ltrim(key, 0, DEAD_LETTERS_KEPT - 1)
            await pipe.execute()

    async def dead_letters(self, receiver_id: str, limit: int = 100) -> list[DeadLetter]:
        key = self._dead_key(receiver_id)
        raw = await self._call(lambda: self._redis.lrange(key, 0, limit - 1))
        return [_letter.decode(item) for item in raw]

    async def forget(self, letter: DeadLetter) -> None:
        key, value = self._dead_key(letter.receiver), msgspec.json.encode(letter).decode()
        await self._call(lambda: self._redis.lrem(key, 1, value))

    async def aclose(self) -> None:
        await self._redis.aclose()
