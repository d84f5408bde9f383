"""The administrator console's sign-in sessions, kept on the server.

An administrator signs in with a service credential holding the ``console:admin`` scope and
gets a random 256-bit session token in a ``__Host-`` cookie; only its SHA-256 is kept here.
A session lasts :data:`TTL` seconds from sign-in, never extended, and is checked against the
credential set at every request, so that a credential removed from the file (or stripped of
the scope) ends its sessions at the next reload.

Sessions live in this process's memory: reach the console through one replica (a port-forward
to one pod, or sticky routing), and an administrator signs in again after a restart.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sessiond.credentials.store import Credential, CredentialSet, Scope

#: Seconds an administrator's console session lasts.
TTL = 15 * 60
_SCOPE: Scope = "console:admin"


@dataclass(frozen=True)
class Admin:
    """A signed-in administrator: the credential's id and name (what the audit trail shows)."""

    credential_id: str
    name: str
    expires_at: float


class AdminSessions:
    """Console sessions of administrators, by the hash of their cookie's token."""

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._clock = clock
        self._sessions: dict[str, Admin] = {}

    def open(self, credential: Credential) -> str:
        """A new session of ``credential`` (which must hold ``console:admin``): its token."""
        credential.require(_SCOPE)
        now = self._clock()
        self._sessions = {k: a for k, a in self._sessions.items() if a.expires_at > now}
        token = secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = Admin(credential.id, credential.name, now + self._ttl)
        return token

    def get(self, token: str | None, credentials: CredentialSet) -> Admin | None:
        """The administrator of ``token``, if its session is live and its credential still
        holds ``console:admin``."""
        if not token:
            return None
        admin = self._sessions.get(_digest(token))
        if admin is None or admin.expires_at <= self._clock():
            return None
        credential = credentials.get(admin.credential_id)
        return admin if credential is not None and credential.has(_SCOPE) else None

    def close(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
