"""Session store on Redis (``redis.asyncio``), for the distributed mode.

Layout, with ``<tag> = subject_tag(sub) == sid[:8]`` so that one subject's keys share a Redis
Cluster slot::

    {prefix}{<tag>}:s:<sid>   string: msgspec JSON of the Session, PEXPIREAT its ends_at
    {prefix}{<tag>}:u:<sub>   zset:   sid -> ends_at in ms; PEXPIREAT its highest score
    {prefix}outbox            hash:   event id -> events.encode(event), no expiry
    {prefix}stream-position   string: msgspec JSON of the StreamPosition applied, no expiry

Index members scored at or before now are dead and pruned on every write to the index.
Changes are optimistic (read, decide in Python, write only if what was read is unchanged),
retried on conflict, so the rules of :meth:`RedisSessionStore.update` live once, in the ``change``
callable that the in-memory store applies too. Times are taken from this process's clock.
A record and its index entry are written together by ``session.lua`` (shipped with this
package), so a change reads only what it decides on: a sign-in without a session limit is one
script call, a refresh one GET and one compare-and-set call of the script (a conflict is the
record no longer holding what was read), and a change that reads more (a session limit's
eviction, a revocation with its outbox entry) runs the script inside its MULTI/EXEC. Each round
trip to Redis costs the authority more CPU than the work it carries.

A revocation's outbox entry is queued in the same MULTI/EXEC as the session change it belongs
to, so either both are stored or neither is (invariant I4). The outbox is not watched: adding
an event is a blind HSET that no concurrent writer can invalidate.

**One Redis primary (with AOF), failed over by Sentinel or not; Redis Cluster is not supported.**
The outbox is one global key outside every ``{<tag>}`` hash tag, so it lives in a different
cluster slot than the session keys it is written together with, and Redis Cluster refuses a
transaction whose keys span slots (CROSSSLOT). Supporting Cluster needs an outbox per slot (say
``{prefix}{<tag>}:outbox``, read by a relay that walks every tag in use), or a stream per
slot; the session keys themselves are already laid out for it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, TypeVar, cast

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from sessiond import events
from sessiond.errors import SessionNotFound, StoreUnavailable
from sessiond.events import Revocation
from sessiond.redis_client import UNREACHABLE, RedisTarget, blocking_client, check_prefix
from sessiond.sessions.base import Change, Evicted, R, StreamPosition
from sessiond.sessions.models import SID_PATTERN, Session, subject_tag

__all__ = ("RedisSessionStore",)

log = logging.getLogger(__name__)

_UNREACHABLE = "session store (Redis) unreachable"
_SID = re.compile(SID_PATTERN)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Session).decode
_decode_position = msgspec.json.Decoder(StreamPosition).decode
T = TypeVar("T")
#: Outbox entries fetched per HSCAN call: a large outbox never blocks Redis in one command.
_SCAN_COUNT = 500
_SCRIPT = resources.files("sessiond.sessions").joinpath("session.lua").read_text("utf-8")


class _Conflict:
    """Another writer changed what an attempt read: try again."""


_CONFLICT = _Conflict()


def _ms(t: float) -> int:
    """An expiry time as Redis milliseconds, rounded up so no key dies before its session."""
    return math.ceil(t * 1000)


def _floor_ms(t: float) -> int:
    """Now as Redis milliseconds: a score above it belongs to a session that may be alive."""
    return math.floor(t * 1000)


class RedisSessionStore:
    """:class:`~sessiond.sessions.base.SessionStore` on Redis; see the module for the layout."""

    def __init__(self, redis: Redis, *, prefix: str = "sessiond:", max_attempts: int = 16) -> None:
        """Wrap a client; the store owns it and closes it in :meth:`aclose`.

        Args:
            redis: A ``redis.asyncio.Redis`` client with ``decode_responses=False``.
            prefix: Prepended to every key; must not contain ``{`` or ``}``.
            max_attempts: How often a transaction is tried when other writers keep
                changing the keys it watches, before ``StoreUnavailable`` is raised.
        """
        self._redis = redis
        self._prefix = check_prefix(prefix)
        self._max_attempts = max_attempts
        self._script = redis.register_script(_SCRIPT)

    @classmethod
    def from_url(
        cls,
        url: RedisTarget | str,
        *,
        prefix: str = "sessiond:",
        max_connections: int = 64,
        socket_timeout: float = 1.0,
        max_attempts: int = 16,
    ) -> RedisSessionStore:
        """A store with its own blocking pool of at most ``max_connections`` connections.

        Connecting, waiting for a free connection and every command time out after
        ``socket_timeout`` seconds, and a restarted Redis is picked up again without
        recreating the store.
        """
        client = blocking_client(url, max_connections=max_connections, timeout=socket_timeout)
        return cls(client, prefix=prefix, max_attempts=max_attempts)

    def _record_key(self, sid: str) -> str:
        return f"{self._prefix}{{{sid[:8]}}}:s:{sid}"

    def _index_key(self, sub: str) -> str:
        return f"{self._prefix}{{{subject_tag(sub)}}}:u:{sub}"

    @property
    def _outbox_key(self) -> str:
        return f"{self._prefix}outbox"

    @property
    def _position_key(self) -> str:
        return f"{self._prefix}stream-position"

    async def create(
        self, session: Session, limit: int = 0, evicted: Evicted | None = None
    ) -> list[Session]:
        """Insert ``session``; with ``limit > 0`` evict the subject's oldest live sessions so
        that at most ``limit`` remain (the new one included) and return them.

        With ``evicted``, each evicted session's event is added to the outbox in the same
        transaction; ``evicted`` is called once per session id even if the transaction retries.
        """
        if session.sid[:8] != subject_tag(session.sub):
            raise ValueError("session id does not carry its subject's tag (use new_session_id)")
        index = self._index_key(session.sub)
        made: dict[str, Revocation] = {}

        def event_of(old: Session) -> Revocation:
            assert evicted is not None
            if old.sid not in made:
                made[old.sid] = evicted(old)
            return made[old.sid]

        if limit <= 0:  # nothing to read or decide: one call of the script
            async with self._guard():
                await self._write(*self._write_args(session.sid, session, time.time()))
            return []

        async def body(pipe: Pipeline) -> list[Session]:
            now = time.time()
            members = await self._members(pipe, index, now)
            members.pop(session.sid, None)
            gone: list[Session] = []
            if len(members) >= limit:
                live = await self._records(pipe, members)
                gone = live[: max(0, len(live) - limit + 1)]
            outgoing = [event_of(old) for old in gone] if evicted is not None else []
            _multi(pipe)
            if gone:
                pipe.delete(*(self._record_key(s.sid) for s in gone))
            drop = [s.sid for s in gone]
            self._queue_write(pipe, *self._write_args(session.sid, session, now, drop=drop))
            self._queue_outbox(pipe, outgoing)
            await pipe.execute()
            return gone

        return await self._transaction(index, body)

    async def get(self, sid: str) -> Session | None:
        """The live session ``sid``, or ``None``."""
        if not _SID.fullmatch(sid):
            return None
        async with self._guard():
            raw = await self._redis.get(self._record_key(sid))
        return _live(raw, time.time())

    async def update(self, sid: str, change: Change[R]) -> R:
        """Apply ``change`` to live session ``sid`` atomically; see the store protocol.

        ``change`` runs again when another writer got in first, so it must be pure.
        """
        if not _SID.fullmatch(sid):
            raise SessionNotFound()
        record = self._record_key(sid)

        async def attempt() -> R | _Conflict:
            async with self._guard():
                raw = await self._redis.get(record)
                now = time.time()
                session = _live(raw, now)
                if session is None:
                    raise SessionNotFound()
                new, result = change(session)
                if new is not None and (new.sid, new.sub) != (session.sid, session.sub):
                    raise ValueError("a change must not alter a session's sid or sub")
                keep = new if new is not None and new.alive(now) else None
                args = self._write_args(sid, keep, now, session.sub, cast(bytes, raw))
                written = await self._write(*args)
            return result if written else _CONFLICT

        return await self._retrying(attempt)

    async def delete(self, sid: str, event: Revocation | None = None) -> Session | None:
        """Delete session ``sid``; return it if it was live.

        With ``event``, add it to the outbox in the same transaction, live session or not.
        """
        if not _SID.fullmatch(sid):
            if event is not None:
                await self.outbox_add(event)
            return None
        record = self._record_key(sid)

        async def body(pipe: Pipeline) -> Session | None:
            now = time.time()
            session = _live(await pipe.get(record), now)
            if session is None and event is None:
                return None
            _multi(pipe)
            if session is not None:
                self._queue_write(pipe, *self._write_args(sid, None, now, session.sub))
            self._queue_outbox(pipe, [event] if event is not None else [])
            await pipe.execute()
            return session

        return await self._transaction(record, body)

    async def list_subject(self, sub: str) -> list[Session]:
        """The subject's live sessions, oldest first."""
        async with self._guard():
            min_score = f"({_floor_ms(time.time())}"
            sids = await self._redis.zrange(self._index_key(sub), min_score, "+inf", byscore=True)
            return await self._records(self._redis, (s.decode() for s in _list(sids)))

    async def delete_subject(self, sub: str, event: Revocation | None = None) -> list[Session]:
        """Delete every session of ``sub``; return the ones that were live, oldest first.

        With ``event``, add it to the outbox in the same transaction, live sessions or not.
        """
        index = self._index_key(sub)

        async def body(pipe: Pipeline) -> list[Session]:
            sids = [s.decode() for s in _list(await pipe.zrange(index, 0, -1))]
            live = await self._records(pipe, sids)
            _multi(pipe)
            pipe.delete(index, *(self._record_key(sid) for sid in sids))
            self._queue_outbox(pipe, [event] if event is not None else [])
            await pipe.execute()
            return live

        return await self._transaction(index, body)

    async def outbox_add(self, event: Revocation) -> None:
        """Add ``event`` to the outbox."""
        async with self._guard():
            await self._redis.hset(self._outbox_key, event.id, events.encode(event))

    async def outbox_remove(self, event_id: str) -> None:
        """Remove event ``event_id`` from the outbox, if it is there."""
        async with self._guard():
            await self._redis.hdel(self._outbox_key, event_id)

    async def outbox_pending(self, older_than: float) -> list[Revocation]:
        """The outbox's events with ``at < older_than``, oldest first.

        Read with HSCAN, so an event added meanwhile may show up only on the next call. An
        entry that does not decode to an event stored under its own id is logged and removed.
        """
        found: list[Revocation] = []
        malformed: list[bytes] = []
        async with self._guard():
            entries: dict[bytes, bytes] = {}
            async for field, value in self._redis.hscan_iter(self._outbox_key, count=_SCAN_COUNT):
                entries[field] = value
            for field, value in entries.items():
                try:
                    event = _stored_event(field, value)
                except ValueError as exc:
                    log.error(  # noqa: TRY400 - one line, no traceback
                        "outbox: dropping malformed entry %r (%s): %r", field, exc, value[:200]
                    )
                    malformed.append(field)
                    continue
                if event.at < older_than:
                    found.append(event)
            if malformed:
                await self._redis.hdel(self._outbox_key, *malformed)
        return sorted(found, key=lambda e: (e.at, e.id))

    async def outbox_depth(self) -> int:
        """How many events the outbox holds."""
        async with self._guard():
            return int(await self._redis.hlen(self._outbox_key))

    async def stream_position(self) -> StreamPosition | None:
        """The last position saved, or ``None`` (also for a value that does not decode)."""
        async with self._guard():
            raw = await self._redis.get(self._position_key)
        try:
            return None if raw is None else _decode_position(raw)
        except msgspec.DecodeError:
            log.error("ignoring a malformed stream position: %r", raw)  # noqa: TRY400
            return None

    async def save_stream_position(self, position: StreamPosition) -> None:
        """Save ``position``."""
        async with self._guard():
            await self._redis.set(self._position_key, msgspec.json.encode(position))

    async def ping(self) -> None:
        """Return if Redis answers; raise ``StoreUnavailable`` otherwise."""
        async with self._guard():
            await self._redis.ping()

    async def server_time(self) -> float:
        """Redis's clock (``TIME``), seconds since the epoch: the clock replicas are checked
        against (:mod:`sessiond.sessions.clock`)."""
        async with self._guard():
            seconds, microseconds = await self._redis.time()
        return float(seconds) + microseconds / 1e6

    async def aclose(self) -> None:
        """Close the client and its connection pool."""
        await self._redis.aclose()

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except UNREACHABLE as exc:
            raise StoreUnavailable(_UNREACHABLE) from exc

    async def _transaction(self, watch: str, body: Callable[[Pipeline], Awaitable[T]]) -> T:
        """Run ``body`` on a pipeline WATCHing ``watch`` until it commits without a conflict.

        ``body`` reads, then calls ``multi()``, queues its writes and executes. A connection
        lost mid-transaction is not retried, since EXEC may have run.
        """

        async def attempt() -> T | _Conflict:
            try:
                async with self._guard(), self._redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(watch)
                    return await body(pipe)
            except WatchError as exc:
                if isinstance(exc.__context__, UNREACHABLE):
                    raise StoreUnavailable(_UNREACHABLE) from exc
                return _CONFLICT

        return await self._retrying(attempt)

    async def _retrying(self, attempt: Callable[[], Awaitable[T | _Conflict]]) -> T:
        """``attempt`` until no other writer got in first, after a short jittered back-off
        each time one did; ``StoreUnavailable`` after ``max_attempts``."""
        for n in range(self._max_attempts):
            outcome = await attempt()
            if not isinstance(outcome, _Conflict):
                return outcome
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**n)))  # noqa: S311 - retry jitter, not a secret
        raise StoreUnavailable(
            f"session store (Redis) too contended: gave up after {self._max_attempts} attempts"
        )

    async def _members(self, pipe: Pipeline, index: str, now: float) -> dict[str, int]:
        """The index's live members (score after now) and their scores, read under WATCH."""
        min_score = f"({_floor_ms(now)}"
        rows = await pipe.zrange(index, min_score, "+inf", byscore=True, withscores=True)
        return {sid.decode(): int(score) for sid, score in _list(rows)}

    async def _records(self, redis: Redis, sids: Iterable[str]) -> list[Session]:
        """The live sessions among ``sids``, oldest first."""
        keys = [self._record_key(sid) for sid in sids]
        if not keys:
            return []
        now = time.time()
        found = (_live(raw, now) for raw in await redis.mget(keys))
        return sorted((s for s in found if s is not None), key=lambda s: s.created_at)

    def _queue_outbox(self, pipe: Pipeline, outgoing: list[Revocation]) -> None:
        """Queue adding ``outgoing`` to the outbox after MULTI."""
        if outgoing:
            pipe.hset(self._outbox_key, mapping={e.id: events.encode(e) for e in outgoing})

    def _write_args(
        self,
        sid: str,
        new: Session | None,
        now: float,
        sub: str | None = None,
        expect: bytes | None = None,
        drop: Iterable[str] = (),
    ) -> tuple[list[str], list[Any]]:
        """Keys and arguments of ``session.lua``: write ``new`` as session ``sid`` (``None``:
        delete it, ``sub`` naming its subject), only if the record holds ``expect`` if given;
        also drop the sessions ``drop`` from the index."""
        subject = new.sub if new is not None else sub
        assert subject is not None
        value, expires = (_encode(new), _ms(new.ends_at)) if new is not None else (b"", 0)
        check = (b"1", expect) if expect is not None else (b"0", b"")
        keys = [self._record_key(sid), self._index_key(subject)]
        return keys, [*check, value, expires, _floor_ms(now), sid, *drop]

    async def _write(self, keys: list[str], args: list[Any]) -> bool:
        """Call ``session.lua``; whether it wrote (a compare-and-set may find another value)."""
        return bool(await self._script(keys=keys, args=args))

    def _queue_write(self, pipe: Pipeline, keys: list[str], args: list[Any]) -> None:
        """Queue ``session.lua`` after MULTI (by its text: a transaction cannot load it)."""
        pipe.eval(_SCRIPT, len(keys), *keys, *args)


def _multi(pipe: Pipeline) -> None:
    pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py 8.1


def _list(response: Any) -> list[Any]:
    """A list reply, which redis-py 8.1 types as a union of every reply shape."""
    return cast(list[Any], response)


def _stored_event(field: bytes, value: bytes) -> Revocation:
    """The event of one outbox entry; ``ValueError`` unless it is one, under its own id."""
    try:
        event = events.decode(value)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ValueError(str(exc)) from None
    if event.id.encode() != field:
        raise ValueError(f"stored under another id: {event.id!r}")
    return event


def _live(raw: Any, now: float) -> Session | None:
    if raw is None:
        return None
    session = _decode(raw)
    return session if session.alive(now) else None
