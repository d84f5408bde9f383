"""Self-service: a subject lists its own sessions and signs them out ("your devices").

Every sign-out here is a session revocation with ``reason_code`` ``logout``. A subject reaches
only its own sessions: another subject's is answered exactly as one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessiond.audit import NO_CONTEXT, AuditContext
from sessiond.errors import SessionNotFound
from sessiond.sessions.base import SessionStore
from sessiond.sessions.models import Session
from sessiond.sessions.revocations import Revocations, Revoked


@dataclass(frozen=True)
class OwnSession:
    """One of the caller's sessions, as self-service lists them: ``current`` is the session
    of the token that asked ("this device")."""

    session: Session
    current: bool


class SelfService:
    """What a signed-in subject may do about its own sessions."""

    def __init__(self, store: SessionStore, revocations: Revocations) -> None:
        self._store = store
        self._revocations = revocations

    async def list_own(self, sub: str, current: str) -> list[OwnSession]:
        """The live sessions of ``sub``, oldest first, the caller's own session (id
        ``current``) marked. A session's ``last_seen_at`` is its sign-in or its latest refresh,
        so it is accurate to one access-token lifetime without a write per request."""
        sessions = await self._store.list_subject(sub)
        return [OwnSession(s, s.sid == current) for s in sessions]

    async def revoke_own(self, sub: str, sid: str, by: AuditContext = NO_CONTEXT) -> Revoked:
        """``sub`` signs its session ``sid`` out.

        Raises ``SessionNotFound`` if ``sid`` is not a live session of ``sub``, so a caller
        learns nothing about sessions that are not its own.
        """
        session = await self._store.get(sid)
        if session is None or session.sub != sub:
            raise SessionNotFound()
        return await self._revocations.revoke_session(
            sid, "signed out by its user", by, code="logout"
        )

    async def revoke_others(
        self, sub: str, keep: str, by: AuditContext = NO_CONTEXT
    ) -> list[Revoked]:
        """ "Sign out everywhere else": revoke every live session of ``sub`` but ``keep`` (the
        caller's), one session event each.

        Not a subject revocation: its not-before would reject the caller's own access token
        too. A session signed in after the list was read is left alive, as a sign-in made
        just after the call would be.
        """
        sessions = await self._store.list_subject(sub)
        return [
            await self._revocations.revoke_session(
                s.sid, "signed out from another device", by, code="logout"
            )
            for s in sessions
            if s.sid != keep
        ]
