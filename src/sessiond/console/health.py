"""The cluster's health as the administrator console shows it.

Every follower of the revocation stream that sends receipts (replicas, verifiers in backends)
reports how far it has applied the stream (:mod:`sessiond.broadcast.receipts`); its lag is how
many events it is behind the furthest sequence known here. Besides: this replica's staleness
(I2) and the outbox's depth (revocations not yet on the stream, I4).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sessiond.broadcast.base import RevocationBus
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.errors import StoreUnavailable
from sessiond.sessions.base import SessionStore


@dataclass(frozen=True)
class Follower:
    """One follower of the stream: its id, the last sequence it applied, how far behind."""

    id: str
    applied: int
    lag: int


@dataclass(frozen=True)
class Health:
    """What the console's health panel shows. ``outbox`` is ``None`` if the store is down;
    ``followers`` is ``None`` without a stream (the embedded mode's in-process bus)."""

    staleness: float
    budget: float
    outbox: int | None
    head: int
    followers: list[Follower] | None

    @property
    def stale(self) -> bool:
        """This replica's denylist may miss events for longer than its budget (I2)."""
        return math.isinf(self.staleness) or self.staleness > self.budget

    @property
    def behind(self) -> str:
        """The staleness as people read it."""
        return "never caught up" if math.isinf(self.staleness) else f"{self.staleness:.2f} s"


async def health(bus: RevocationBus, store: SessionStore, budget: float) -> Health:
    """Read the health of this replica and of the followers it hears receipts from."""
    try:
        outbox: int | None = await store.outbox_depth()
    except StoreUnavailable:
        outbox = None
    staleness = bus.staleness(time.time())
    if not isinstance(bus, JetStreamBus):
        return Health(staleness, budget, outbox, 0, None)
    applied = {bus.follower.id: bus.follower.last_applied}
    if bus.receipts is not None:
        applied.update(bus.receipts.present())
    head = max(applied.values())
    followers = [Follower(f, seq, head - seq) for f, seq in sorted(applied.items())]
    return Health(staleness, budget, outbox, head, followers)
