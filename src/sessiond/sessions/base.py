"""The session store interface, implemented in memory (``memory.py``) and on Redis (``redis.py``).

Stores are deliberately dumb: they keep records, a per-subject index and expiry, and apply
changes atomically. What a change *means* (refresh rotation, reuse detection) is decided by
plain functions over :class:`Session` values in ``lifecycle.py``, passed to :meth:`update`, so
both stores share one implementation of every rule.

The store also keeps the revocation **outbox** (invariant I4): a revocation event is written in
the same atomic step as the session state change it belongs to (``create`` evicting over the
limit, ``delete``, ``delete_subject``), or alone with ``outbox_add`` when it touches no session.
Whoever then gets the event acknowledged by the revocation stream removes it with
``outbox_remove``; what is left behind (the stream was down, the process crashed) is found by
``outbox_pending`` and published by the relay worker (:mod:`sessiond.workers.relay`). Events are
deduplicated by id downstream, so publishing one twice is harmless.

A revocation made while the store was down is on the stream only (invariant I7): the relay's
applier (:mod:`sessiond.workers.applier`) deletes the session state it ends once the store is
back, and keeps its :class:`StreamPosition` in the store, so that a restart resumes there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import msgspec

from sessiond.events import Revocation
from sessiond.sessions.models import Session

R = TypeVar("R")

#: Given the live session, return its new state (``None`` deletes it) and a result.
Change = Callable[[Session], tuple[Session | None, R]]

#: Given a session that ``create`` evicts over the limit, the event that revokes it.
Evicted = Callable[[Session], Revocation]


class StreamPosition(msgspec.Struct, frozen=True):
    """Every event of the revocation stream up to ``seq`` is applied to the store; ``stream``
    is the stream's creation time (ISO 8601), since a stream created again starts over."""

    seq: int
    stream: str


class SessionStore(Protocol):
    """Where session records live. Every method raises ``StoreUnavailable`` on outage."""

    async def create(
        self, session: Session, limit: int = 0, evicted: Evicted | None = None
    ) -> list[Session]:
        """Insert ``session``; with ``limit > 0``, evict the subject's oldest live sessions so
        that at most ``limit`` remain, and return the evicted ones.

        With ``evicted``, the event ``evicted(old)`` of every evicted session goes into the
        outbox in the same atomic step. It is called at most once per session id in one call
        of ``create``; an optimistic store that retries may call it for a session that is in
        the end not evicted (not returned), whose event is then not stored.
        """
        ...

    async def get(self, sid: str) -> Session | None:
        """The live session ``sid``, or ``None`` if it never existed, expired or was deleted."""
        ...

    async def update(self, sid: str, change: Change[R]) -> R:
        """Apply ``change`` to live session ``sid`` atomically and return its result.

        Raises ``SessionNotFound`` when there is no live session ``sid``. An exception raised
        by ``change`` leaves the record untouched. ``change`` must be a pure function of the
        session: an optimistic store calls it again when a concurrent write wins the race.
        """
        ...

    async def delete(self, sid: str, event: Revocation | None = None) -> Session | None:
        """Delete session ``sid``; return it if it was live.

        With ``event``, add it to the outbox in the same atomic step, even if there is no
        live session ``sid`` (its access tokens may still be alive).
        """
        ...

    async def list_subject(self, sub: str) -> list[Session]:
        """The subject's live sessions, oldest first."""
        ...

    async def delete_subject(self, sub: str, event: Revocation | None = None) -> list[Session]:
        """Delete every session of ``sub``; return the ones that were live, oldest first.

        With ``event``, add it to the outbox in the same atomic step, even if ``sub`` has no
        live session.
        """
        ...

    async def outbox_add(self, event: Revocation) -> None:
        """Add ``event`` to the outbox (a revocation that touches no session record)."""
        ...

    async def outbox_remove(self, event_id: str) -> None:
        """Remove the event ``event_id`` from the outbox; nothing happens if it is not there."""
        ...

    async def outbox_pending(self, older_than: float) -> list[Revocation]:
        """The outbox's events with ``event.at < older_than``, oldest first (by ``at``, then id).

        An entry that cannot be read back as an event is logged and removed, never raised.
        """
        ...

    async def outbox_depth(self) -> int:
        """How many events the outbox holds (of any age)."""
        ...

    async def stream_position(self) -> StreamPosition | None:
        """The last :class:`StreamPosition` saved, or ``None`` if none was."""
        ...

    async def save_stream_position(self, position: StreamPosition) -> None:
        """Save ``position`` (replacing the last one)."""
        ...

    async def ping(self) -> None:
        """Return if the store answers; raise ``StoreUnavailable`` otherwise."""
        ...

    async def aclose(self) -> None: ...
