"""The revocation bus interface: how a revocation reaches every replica's denylist."""

from __future__ import annotations

from typing import Protocol

from sessiond.events import Revocation


class RevocationBus(Protocol):
    """Carries revocation events from the replica that made them to every replica."""

    async def start(self) -> None:
        """Begin feeding the local denylist: connect, replay what can still matter, follow.

        Never fails because the broker is down: connecting and catching up go on in the
        background, and :meth:`staleness` says ``inf`` until the denylist is caught up.
        """
        ...

    async def publish(self, event: Revocation) -> None:
        """Return once ``event`` is durable and bound to reach every replica (I4).

        Raises :class:`~sessiond.errors.BroadcastUnavailable`, quickly, when it cannot.
        """
        ...

    def staleness(self, now: float) -> float:
        """Seconds since the denylist was last known to hold every published event.

        ``now`` is ``time.time()``. ``inf`` until the first catch-up; ``0.0`` for a bus that
        cannot fall behind (in-process).
        """
        ...

    async def aclose(self) -> None:
        """Stop following and release the connection."""
        ...
