"""The session store interface, implemented in memory (``memory.py``) and on Redis (``redis.py``).

Stores are deliberately dumb: they keep records, a per-subject index and expiry, and apply
changes atomically. What a change *means* (refresh rotation, reuse detection) is decided by
plain functions over :class:`Session` values in ``lifecycle.py``, passed to :meth:`update`, so
both stores share one implementation of every rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from sessiond.sessions.models import Session

R = TypeVar("R")

#: Given the live session, return its new state (``None`` deletes it) and a result.
Change = Callable[[Session], tuple[Session | None, R]]


class SessionStore(Protocol):
    """Where session records live. Every method raises ``StoreUnavailable`` on outage."""

    async def create(self, session: Session, limit: int = 0) -> list[Session]:
        """Insert ``session``; with ``limit > 0``, evict the subject's oldest live sessions so
        that at most ``limit`` remain, and return the evicted ones."""
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

    async def delete(self, sid: str) -> Session | None:
        """Delete session ``sid``; return it if it was live."""
        ...

    async def list_subject(self, sub: str) -> list[Session]:
        """The subject's live sessions, oldest first."""
        ...

    async def delete_subject(self, sub: str) -> list[Session]:
        """Delete every session of ``sub``; return the ones that were live."""
        ...

    async def ping(self) -> None:
        """Return if the store answers; raise ``StoreUnavailable`` otherwise."""
        ...

    async def aclose(self) -> None: ...
