"""In-memory session store for the embedded single-process mode and fast tests.

Each method runs without awaiting, so on one event loop it is atomic like a Redis
transaction: a session change and its outbox event are one synchronous step. Expired records
are dropped when touched and by a sweep every ``sweep_every`` creations, so memory follows live
sessions only. The outbox lives as long as the process, like everything else here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sessiond.errors import SessionNotFound
from sessiond.events import Revocation
from sessiond.sessions.base import Change, Evicted, R, StreamPosition
from sessiond.sessions.models import Session


class MemorySessionStore:
    """:class:`~sessiond.sessions.base.SessionStore` kept in dictionaries."""

    def __init__(self, clock: Callable[[], float] = time.time, sweep_every: int = 1024) -> None:
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._by_subject: dict[str, set[str]] = {}
        self._sweep_every = sweep_every
        self._created = 0
        self._outbox: dict[str, Revocation] = {}
        self._position: StreamPosition | None = None

    async def create(
        self, session: Session, limit: int = 0, evicted: Evicted | None = None
    ) -> list[Session]:
        self._created += 1
        if self._created % self._sweep_every == 0:
            self._sweep()
        gone: list[Session] = []
        if limit > 0:
            live = [s for s in self._live_of(session.sub) if s.sid != session.sid]
            gone = live[: max(0, len(live) - limit + 1)]
        # Every event first: if ``evicted`` raises, nothing has changed.
        events = [evicted(old) for old in gone] if evicted is not None else []
        for old in gone:
            self._remove(old)
        self._outbox.update((event.id, event) for event in events)
        self._sessions[session.sid] = session
        self._by_subject.setdefault(session.sub, set()).add(session.sid)
        return gone

    async def get(self, sid: str) -> Session | None:
        return self._live(sid)

    async def update(self, sid: str, change: Change[R]) -> R:
        session = self._live(sid)
        if session is None:
            raise SessionNotFound()
        new, result = change(session)
        if new is None:
            self._remove(session)
        else:
            self._sessions[sid] = new
        return result

    async def delete(self, sid: str, event: Revocation | None = None) -> Session | None:
        session = self._live(sid)
        if session is not None:
            self._remove(session)
        if event is not None:
            self._outbox[event.id] = event
        return session

    async def list_subject(self, sub: str) -> list[Session]:
        return self._live_of(sub)

    async def delete_subject(self, sub: str, event: Revocation | None = None) -> list[Session]:
        live = self._live_of(sub)
        for session in live:
            self._remove(session)
        if event is not None:
            self._outbox[event.id] = event
        return live

    async def outbox_add(self, event: Revocation) -> None:
        self._outbox[event.id] = event

    async def outbox_remove(self, event_id: str) -> None:
        self._outbox.pop(event_id, None)

    async def outbox_pending(self, older_than: float) -> list[Revocation]:
        pending = (e for e in self._outbox.values() if e.at < older_than)
        return sorted(pending, key=lambda e: (e.at, e.id))

    async def outbox_depth(self) -> int:
        return len(self._outbox)

    async def stream_position(self) -> StreamPosition | None:
        return self._position

    async def save_stream_position(self, position: StreamPosition) -> None:
        self._position = position

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def _live(self, sid: str) -> Session | None:
        session = self._sessions.get(sid)
        if session is not None and not session.alive(self._clock()):
            self._remove(session)
            return None
        return session

    def _live_of(self, sub: str) -> list[Session]:
        found = (self._live(sid) for sid in list(self._by_subject.get(sub, ())))
        return sorted((s for s in found if s is not None), key=lambda s: s.created_at)

    def _remove(self, session: Session) -> None:
        self._sessions.pop(session.sid, None)
        sids = self._by_subject.get(session.sub)
        if sids is not None:
            sids.discard(session.sid)
            if not sids:
                del self._by_subject[session.sub]

    def _sweep(self) -> None:
        now = self._clock()
        for session in [s for s in self._sessions.values() if not s.alive(now)]:
            self._remove(session)
