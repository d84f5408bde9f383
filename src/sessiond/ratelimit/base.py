"""The rate limiter interface, implemented in memory (``memory.py``) and on Redis (``redis.py``).

Both count **fixed windows** that start at a key's first hit: the first hit of ``key`` opens a
window of ``window`` seconds, every hit in it (allowed or not) adds one, and a hit is allowed
while the count is at most ``limit``. When the window ends the count starts again from zero.
Denied hits do not extend the window, so a caller who keeps hammering is let through again
exactly ``retry_after`` seconds later. The price of the fixed window is its edge: up to twice
``limit`` hits can pass within one window length straddling two windows. That is acceptable for
abuse limits and costs one counter per key (a sliding log would cost one entry per hit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Decision:
    """The answer to one hit."""

    allowed: bool
    #: Seconds until the current window of the key ends (then the count restarts).
    retry_after: float


class RateLimiter(Protocol):
    """Counts hits per key. Implementations raise ``StoreUnavailable`` on outage (fail closed)."""

    async def hit(self, key: str, limit: int, window: float) -> Decision:
        """Count one hit of ``key``; allowed while at most ``limit`` hits fell in its window."""
        ...

    async def hits(self, hits: Sequence[tuple[str, int]], window: float) -> list[Decision]:
        """Count one hit of each ``(key, limit)`` as :meth:`hit` does, all at once (on Redis,
        in one round trip); the decisions in the same order."""
        ...

    async def aclose(self) -> None: ...
