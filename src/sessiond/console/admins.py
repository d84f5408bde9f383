"""The administrator console's sign-in sessions, kept on the server.

An administrator signs in with a service credential holding the ``console:admin`` scope and
gets a random 256-bit session token in a ``__Host-`` cookie; only its SHA-256 is stored. A
session lasts :data:`TTL` seconds from sign-in, never extended, and is checked against the
credential set at every request, so that a credential removed from the file (or stripped of
the scope) ends its sessions.

In the distributed mode sessions are kept in Redis (``<prefix>console-admin:<hash>``, expiring
with the session), so that any replica serves the administrator; in the embedded mode in the
process's memory.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import msgspec
from redis.asyncio import Redis

from sessiond.credentials.store import Credential, CredentialSet, Scope
from sessiond.errors import StoreUnavailable
from sessiond.redis_client import DEFAULT_PREFIX, UNREACHABLE, check_prefix

#: Seconds an administrator's console session lasts.
TTL = 15 * 60
_SCOPE: Scope = "console:admin"


class Admin(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in administrator: the credential's id and name (what the audit trail shows)."""

    credential_id: str
    name: str
    expires_at: float


_decode = msgspec.json.Decoder(Admin).decode


class AdminSessions:
    """Administrators' console sessions, by the hash of their cookie's token; where they are
    kept is a subclass's :meth:`_put`, :meth:`_get` and :meth:`_delete`."""

    def __init__(self, ttl: int = TTL, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._clock = clock

    async def open(self, credential: Credential) -> str:
        """A new session of ``credential`` (which must hold ``console:admin``): its token."""
        credential.require(_SCOPE)
        token = secrets.token_urlsafe(32)
        admin = Admin(
            credential_id=credential.id, name=credential.name, expires_at=self._clock() + self._ttl
        )
        await self._put(_digest(token), admin, self._ttl)
        return token

    async def get(self, token: str | None, credentials: CredentialSet) -> Admin | None:
        """The administrator of ``token``, if its session is live and its credential still
        holds ``console:admin``."""
        if not token:
            return None
        admin = await self._get(_digest(token))
        if admin is None or admin.expires_at <= self._clock():
            return None
        credential = credentials.get(admin.credential_id)
        return admin if credential is not None and credential.has(_SCOPE) else None

    async def close(self, token: str | None) -> None:
        if token:
            await self._delete(_digest(token))

    async def aclose(self) -> None:
        return None

    async def _put(self, key: str, admin: Admin, ttl: int) -> None:
        raise NotImplementedError

    async def _get(self, key: str) -> Admin | None:
        raise NotImplementedError

    async def _delete(self, key: str) -> None:
        raise NotImplementedError


class MemoryAdminSessions(AdminSessions):
    """In this process's memory (the embedded mode); expired sessions go at each sign-in."""

    def __init__(self, ttl: int = TTL, clock: Callable[[], float] = time.time) -> None:
        super().__init__(ttl, clock)
        self._sessions: dict[str, Admin] = {}

    async def _put(self, key: str, admin: Admin, ttl: int) -> None:
        now = self._clock()
        self._sessions = {k: a for k, a in self._sessions.items() if a.expires_at > now}
        self._sessions[key] = admin

    async def _get(self, key: str) -> Admin | None:
        return self._sessions.get(key)

    async def _delete(self, key: str) -> None:
        self._sessions.pop(key, None)


class RedisAdminSessions(AdminSessions):
    """In Redis, shared by every replica; each key expires with its session."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl: int = TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(ttl, clock)
        self._redis = redis
        self._prefix = f"{check_prefix(prefix)}console-admin:"

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _put(self, key: str, admin: Admin, ttl: int) -> None:
        with _reachable():
            await self._redis.set(self._prefix + key, msgspec.json.encode(admin), ex=ttl)

    async def _get(self, key: str) -> Admin | None:
        with _reachable():
            raw = await self._redis.get(self._prefix + key)
        return None if raw is None else _decode(raw)

    async def _delete(self, key: str) -> None:
        with _reachable():
            await self._redis.delete(self._prefix + key)


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except UNREACHABLE as exc:
        raise StoreUnavailable("console sessions (Redis) unreachable") from exc


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
