"""Rate limiter in this process's memory, for the embedded single-process mode."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sessiond.ratelimit.base import Decision

__all__ = ("MemoryRateLimiter",)

#: Seconds between two sweeps of ended windows.
_SWEEP_INTERVAL = 10.0


class MemoryRateLimiter:
    """:class:`~sessiond.ratelimit.base.RateLimiter` on a dict: key -> (count, window end)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, float]] = {}
        self._next_sweep = clock() + _SWEEP_INTERVAL

    async def hit(self, key: str, limit: int, window: float) -> Decision:
        return (await self.hits([(key, limit)], window))[0]

    async def hits(self, hits: Sequence[tuple[str, int]], window: float) -> list[Decision]:
        now = self._clock()
        if now >= self._next_sweep:
            self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
            self._next_sweep = now + _SWEEP_INTERVAL
        return [self._count(key, limit, window, now) for key, limit in hits]

    def _count(self, key: str, limit: int, window: float, now: float) -> Decision:
        count, ends = self._windows.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window
        count += 1
        self._windows[key] = (count, ends)
        return Decision(allowed=count <= limit, retry_after=ends - now)

    async def aclose(self) -> None:
        self._windows.clear()
