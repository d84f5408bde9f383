"""The revocation bus interface: how a revocation reaches every replica's denylist."""

from __future__ import annotations

from typing import Protocol

from sessiond.broadcast.events import Revocation


class RevocationBus(Protocol):
    """Carries revocation events from the replica that made them to every replica."""

    async def start(self) -> None:
        """Connect, catch up, and begin feeding the local denylist."""
        ...

    async def publish(self, event: Revocation) -> None:
        """Return once ``event`` is durable and bound to reach every replica (I4)."""
        ...

    async def aclose(self) -> None: ...
