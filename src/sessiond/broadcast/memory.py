"""In-process bus for the embedded single-process mode: publishing is applying."""

from __future__ import annotations

from sessiond.denylist.denylist import Denylist
from sessiond.events import Revocation


class MemoryBus:
    """:class:`~sessiond.broadcast.base.RevocationBus` for one process: no other replica."""

    def __init__(self, denylist: Denylist) -> None:
        self._denylist = denylist

    async def start(self) -> None:
        return None

    async def publish(self, event: Revocation) -> None:
        self._denylist.apply(event)

    def staleness(self, now: float) -> float:
        """Always current: publishing is applying, in this very process."""
        return 0.0

    async def aclose(self) -> None:
        return None
