"""What the console keeps in one process, and what the API tells it about its cookies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Response

from sessiond.console.admins import AdminSessions, MemoryAdminSessions, RedisAdminSessions
from sessiond.console.feed import RevocationFeed
from sessiond.console.trail import AuditTrail
from sessiond.redis_client import RedisTarget, blocking_client
from sessiond.runtime import Runtime
from sessiond.settings import Settings


@dataclass(frozen=True)
class UserCookies:
    """The API's cookie mode, as the devices page needs it: the name of the cookie that holds
    a browser's refresh token (which identifies its session), and how to expire the cookies
    when the browser signs its own session out."""

    refresh: str
    clear: Callable[[Response[Any], Settings], None]


class Console:
    """The console of one process: the live feed, the audit trail, administrators' sessions
    (in Redis in the distributed mode, shared by the replicas)."""

    def __init__(self, runtime: Runtime, cookies: UserCookies) -> None:
        self.runtime = runtime
        self.cookies = cookies
        self.feed = RevocationFeed(runtime.denylist)
        self.trail = AuditTrail()
        self.admins: AdminSessions = (
            RedisAdminSessions(
                blocking_client(
                    RedisTarget.from_settings(runtime.settings), max_connections=8, timeout=1.0
                )
            )
            if runtime.settings.redis_url
            else MemoryAdminSessions()
        )

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Keep the audit trail while the app runs; end the live pages' streams when it stops."""
        self.trail.attach()
        try:
            yield
        finally:
            self.feed.close()
            self.trail.detach()
            await self.admins.aclose()
