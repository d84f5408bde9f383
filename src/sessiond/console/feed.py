"""Revocations as they reach this process's denylist, for the console's live pages.

The feed listens to the denylist (:attr:`~sessiond.denylist.denylist.Denylist.listeners`) only
while a page is subscribed, so that applying an event costs nothing more when nobody watches.
Every path an event takes into this process passes there: the replica's own revocations, the
stream's (every replica's), and the in-process bus of the embedded mode. An event can arrive
twice (applied here first, then from the stream): a page that receives it only reloads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sessiond.denylist.denylist import Denylist
from sessiond.events import Revocation, SessionRevoked, SubjectRevoked
from sessiond.sessions.models import subject_tag

#: Events a slow page may have waiting; more are dropped, since one is enough to reload.
QUEUE = 16

Wants = Callable[[Revocation], bool]


class RevocationFeed:
    """Hands each revocation applied to ``denylist`` to the subscribers that want it."""

    def __init__(self, denylist: Denylist) -> None:
        self._denylist = denylist
        self._subscribers: dict[asyncio.Queue[Revocation | None], Wants] = {}

    @contextmanager
    def subscribe(self, wants: Wants) -> Iterator[asyncio.Queue[Revocation | None]]:
        """A queue of the events ``wants`` accepts; ``None`` in it means the feed closed."""
        queue: asyncio.Queue[Revocation | None] = asyncio.Queue(QUEUE)
        if not self._subscribers:
            self._denylist.listeners.append(self._deliver)
        self._subscribers[queue] = wants
        try:
            yield queue
        finally:
            del self._subscribers[queue]
            if not self._subscribers:
                self._denylist.listeners.remove(self._deliver)

    def close(self) -> None:
        """Tell every subscriber that no more events come (the process stops)."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    def _deliver(self, event: Revocation) -> None:
        for queue, wants in self._subscribers.items():
            if not queue.full() and wants(event):
                queue.put_nowait(event)


def concerns(sub: str) -> Wants:
    """Whether an event may end a session of ``sub``. A session event names only its session,
    whose id starts with the subject's tag: another subject with the same tag (1 in 2^32)
    costs its pages a needless reload, never a missed one."""
    tag = subject_tag(sub)

    def wants(event: Revocation) -> bool:
        if isinstance(event, SessionRevoked):
            return event.sid.startswith(tag)
        # A global revocation ends no session: the list stays as it is.
        return isinstance(event, SubjectRevoked) and event.sub == sub

    return wants
