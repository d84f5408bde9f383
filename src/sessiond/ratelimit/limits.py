"""The configured rate limits of one process, checked by the API before it does any work.

``await runtime.limits.check(kind, key)`` counts one hit and raises
:class:`~sessiond.errors.RateLimited` (429 with ``Retry-After``) over the limit;
``check_all`` counts the hits of several limits of one request in one go. Keys are never
secrets: a credential id, a subject, a session id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from sessiond.errors import RateLimited
from sessiond.ratelimit.base import RateLimiter
from sessiond.ratelimit.memory import MemoryRateLimiter
from sessiond.ratelimit.redis import RedisRateLimiter
from sessiond.redis_client import RedisTarget
from sessiond.settings import Settings

Kind = Literal[
    "sessions_per_subject",
    "sessions_per_client",
    "refresh_per_session",
    "revocations_per_client",
    "introspections_per_client",
]

_WHAT: dict[str, str] = {
    "sessions_per_subject": "sessions created for this subject",
    "sessions_per_client": "sessions created by this credential",
    "refresh_per_session": "refreshes of this session",
    "revocations_per_client": "revocations by this credential",
    "introspections_per_client": "introspections by this credential",
}


class RateLimits:
    """The ``rate_*`` settings over a :class:`RateLimiter` (a limit of 0 is off)."""

    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self.settings = settings
        self.limiter = limiter

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        """On Redis when the settings have one (global limits), else in memory."""
        limiter: RateLimiter = (
            RedisRateLimiter.from_url(RedisTarget.from_settings(settings))
            if settings.redis_url
            else MemoryRateLimiter()
        )
        return cls(settings, limiter)

    def limit(self, kind: Kind) -> int:
        limit: int = getattr(self.settings, f"rate_{kind}")
        return limit

    async def check(self, kind: Kind, key: str) -> None:
        """Count one hit of ``kind`` for ``key``; raise ``RateLimited`` over the limit."""
        await self.check_all([(kind, key)])

    async def check_all(self, hits: Sequence[tuple[Kind, str]]) -> None:
        """Count one hit of each ``(kind, key)`` together (one round trip on Redis); raise
        ``RateLimited`` for the first one over its limit."""
        counted = [(kind, key, limit) for kind, key in hits if (limit := self.limit(kind)) > 0]
        if not counted:
            return
        window = self.settings.rate_window
        decisions = await self.limiter.hits(
            [(f"{kind}:{key}", limit) for kind, key, limit in counted], window
        )
        for (kind, _, limit), decision in zip(counted, decisions, strict=True):
            if not decision.allowed:
                raise RateLimited(
                    f"more than {limit} {_WHAT[kind]} in {window:g} s",
                    retry_after=math.ceil(decision.retry_after),
                )

    async def aclose(self) -> None:
        await self.limiter.aclose()
