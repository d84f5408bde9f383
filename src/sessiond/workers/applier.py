"""The store applier: applies the revocation stream to the session store (invariant I7).

A revocation made while Redis was down is published to the stream alone (the stream is its
durable record), so the session records it ends are still in Redis when Redis comes back. The
relay worker runs one :class:`StoreApplier`: it follows the stream (a follower of its own,
signatures checked like every follower's, I8) and applies every event to the store:

- ``session``: deletes the session record;
- ``subject``: deletes every session of the subject created at or before the event;
- ``token`` and ``all``: nothing (no session ends with them).

Each step is idempotent, so applying events that the service already applied in its
transaction, or applying one twice, changes nothing. After each batch it saves how far it got
as a :class:`~sessiond.sessions.base.StreamPosition` in the store itself, and a restarted
relay resumes after it: while Redis is down the position cannot move, so the events of the
outage are applied, in order, as soon as Redis answers again. A position older than the
stream's first event (a relay down during a Redis outage longer than the stream keeps events)
is logged as an error: the sessions those events revoked may still refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client as NATS

from sessiond.broadcast.follower import JetStreamFollower
from sessiond.broadcast.signing import EventVerifier
from sessiond.broadcast.snapshots import stream_created
from sessiond.broadcast.stream import API_TIMEOUT, StreamSpec
from sessiond.denylist.denylist import Denylist
from sessiond.errors import StoreUnavailable
from sessiond.events import Revocation, SessionRevoked, SubjectRevoked
from sessiond.sessions.base import SessionStore, StreamPosition

__all__ = ("StoreApplier", "apply_to_store")

log = logging.getLogger("sessiond.relay")
T = TypeVar("T")


async def apply_to_store(store: SessionStore, event: Revocation) -> None:
    """Delete the session state ``event`` ends, if the store still has it."""
    if isinstance(event, SessionRevoked):
        await store.delete(event.sid)
    elif isinstance(event, SubjectRevoked):
        for session in await store.list_subject(event.sub):
            if int(session.created_at) <= event.not_before:
                await store.delete(session.sid)


class _Stopped(Exception):
    """The worker was asked to stop while waiting for the store."""


class StoreApplier:
    """Follows the revocation stream and applies each event to the session store."""

    def __init__(
        self, store: SessionStore, spec: StreamSpec, verifier: EventVerifier, *, retry: float = 1.0
    ) -> None:
        """
        Args:
            store: The session store to apply events to; it also keeps the position.
            spec: The revocation stream.
            verifier: Checks each event's signature before it is applied.
            retry: Seconds between attempts while the store is unreachable.
        """
        if retry <= 0:
            raise ValueError("retry must be > 0")
        self._store = store
        self._spec = spec
        self._retry = retry
        self._arrivals: asyncio.Queue[tuple[Revocation, StreamPosition]] = asyncio.Queue()
        self._denylist = Denylist()  # the follower needs one; only pruned here
        self.follower = JetStreamFollower(  # no receipts: it answers no requests
            spec, self._denylist, verifier=verifier, receipts=False, on_applied=self._arrived
        )
        #: The last position saved in the store.
        self.position: StreamPosition | None = None
        self._problem: str | None = None

    async def run(self, nc: NATS, stop: asyncio.Event) -> None:
        """Read the saved position, follow the stream from there on ``nc`` (connected) and
        apply what arrives until ``stop`` is set; store outages are logged and waited out."""
        try:
            self.position = await self._until_stored(self._store.stream_position, stop)
            after = self.position.seq if self.position is not None else 0
            await self._check_gap(nc, after)
            created = self.position.stream if self.position is not None else None
            await self.follower.start(
                nc,
                after=after,
                stream_created=datetime.datetime.fromisoformat(created) if created else None,
            )
            log.info("applying stream %s to the session store after %d", self._spec.name, after)
            while not stop.is_set():
                await self._apply_arrivals(stop)
        except _Stopped:
            return
        finally:
            await self.follower.aclose()

    def _arrived(self, event: Revocation, seq: int, _stored_at: float) -> None:
        position = StreamPosition(seq, stream_created(self.follower.stream_created))
        self._arrivals.put_nowait((event, position))

    async def _apply_arrivals(self, stop: asyncio.Event) -> None:
        """Apply the events that arrived (waiting up to ``retry`` for one), then save the
        position reached."""
        try:
            async with asyncio.timeout(self._retry):
                batch = [await self._arrivals.get()]
        except TimeoutError:
            return
        while not self._arrivals.empty():
            batch.append(self._arrivals.get_nowait())
        for event, _ in batch:
            await self._until_stored(functools.partial(apply_to_store, self._store, event), stop)
        reached = batch[-1][1]
        save = functools.partial(self._store.save_stream_position, reached)
        await self._until_stored(save, stop)
        self.position = reached
        self._denylist.prune(time.time())

    async def _until_stored(self, call: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T:
        """``call()``, again every ``retry`` seconds while the store is unreachable;
        ``_Stopped`` if ``stop`` is set meanwhile."""
        while not stop.is_set():
            try:
                result = await call()
            except StoreUnavailable as exc:
                if self._problem is None:
                    log.warning("cannot apply the stream to the session store: %s", exc.detail)
                self._problem = exc.detail
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._retry):
                        await stop.wait()
                continue
            if self._problem is not None:
                log.info("applying the stream to the session store again")
                self._problem = None
            return result
        raise _Stopped

    async def _check_gap(self, nc: NATS, after: int) -> None:
        """Log an error if events after ``after`` have left the stream unapplied."""
        if after == 0 or self.position is None:
            return
        try:
            info = await nc.jetstream(timeout=API_TIMEOUT).stream_info(self._spec.name)
        except Exception as exc:  # the follower finds out again, and says so
            log.debug("cannot check the stream for a gap: %s", exc)
            return
        same = stream_created(info.created) == self.position.stream
        if same and info.state.first_seq > after + 1:
            log.error(
                "events %d to %d of stream %s left it before they were applied to the session "
                "store: sessions they revoked while Redis was down may still refresh",
                after + 1,
                info.state.first_seq - 1,
                self._spec.name,
            )
