"""Revocations: their use cases and their durable write path (I4, I7).

The write path of a revocation:

1. the store deletes the session state it ends (if any) and records the event in its outbox,
   atomically;
2. this replica's denylist applies the event at once;
3. the event is published to the revocation bus; once the stream acknowledged it (and the
   followers applied it, waited for briefly: :meth:`RevocationBus.publish`), the outbox entry
   is removed and the caller is told ``propagated``;
4. if the stream is unreachable, the caller is told ``pending`` (HTTP 202): the event stays in
   the outbox and the relay worker publishes it when the stream is back (deduplicated by id).

If the store is unreachable in step 1, the event is published all the same and the stream is
its one durable record: the caller is told ``propagated`` once the stream acknowledged it, and
the relay deletes the session records it ends when the store is back
(:mod:`sessiond.workers.applier`). Until then a refresh of such a session is refused by this
replica's denylist. If the stream is unreachable too, nothing was stored: ``StoreUnavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sessiond.audit import NO_CONTEXT, AuditContext, Auditor, event
from sessiond.audit import Action as AuditAction
from sessiond.broadcast.base import RevocationBus
from sessiond.denylist.denylist import Denylist
from sessiond.errors import BroadcastUnavailable, StoreUnavailable
from sessiond.events import (
    AllRevoked,
    ReasonCode,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
    kind_of,
    new_event_id,
)
from sessiond.metrics import Metrics
from sessiond.sessions.base import SessionStore
from sessiond.settings import Settings

log = logging.getLogger("sessiond.sessions")

_REVOKED_ACTIONS: dict[str, AuditAction] = {
    "session": "session.revoked",
    "subject": "subject.revoked",
    "token": "token.revoked",
    "all": "all.revoked",
}

_STORED_NOWHERE = (
    "neither the session store (Redis) nor the revocation stream (NATS) could take the "
    "revocation; retry"
)


@dataclass(frozen=True)
class Revoked:
    """A stored revocation, and whether the stream has it yet."""

    event: Revocation
    propagated: bool


class Revocations:
    """Revokes sessions, subjects, tokens and all tokens, each along the write path (see the
    module), and audits each revocation once it is stored.

    ``code`` is the event's ``reason_code`` for every ``revoke_*``: what the 401 of a token it
    rejects tells the app; ``reason`` is free text for people.
    """

    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        denylist: Denylist,
        bus: RevocationBus,
        metrics: Metrics,
        clock: Callable[[], float],
        auditor: Auditor,
    ) -> None:
        self._settings = settings
        self._store = store
        self._denylist = denylist
        self._bus = bus
        self._metrics = metrics
        self._clock = clock
        self._auditor = auditor

    async def revoke_session(
        self,
        sid: str,
        reason: str | None = None,
        by: AuditContext = NO_CONTEXT,
        *,
        code: ReasonCode = "admin",
    ) -> Revoked:
        """Revoke one session, whether or not the store still has it: tokens may outlive it."""
        return await self.revoke(self.session_event(sid, code, self._clock(), reason), by)

    async def revoke_subject(
        self,
        sub: str,
        reason: str | None = None,
        by: AuditContext = NO_CONTEXT,
        *,
        code: ReasonCode = "admin",
        not_before: float | None = None,
    ) -> Revoked:
        """Forced sign-out of ``sub``: every access token issued at or before ``not_before``
        (a past Unix time; now by default or if later) is rejected and every session begun by
        then ends.

        A past ``not_before`` (when the password changed, say) spares the sessions begun
        after it. Each session it ends also gets a session revocation of its own: it may have
        been refreshed since ``not_before``, and its newer tokens must not outlive it.
        """
        now = self._clock()
        nbf = _not_before(not_before, now)
        if nbf < int(now):
            for sid in await self._sessions_begun_by(sub, nbf):
                await self.revoke(self.session_event(sid, code, now, reason), by)
        revocation = SubjectRevoked(
            id=new_event_id(),
            at=now,
            reason=reason,
            reason_code=code,
            sub=sub,
            not_before=nbf,
            expires_at=self._tokens_die_by(now),
        )
        return await self.revoke(revocation, by)

    async def revoke_token(
        self,
        jti: str,
        reason: str | None = None,
        expires_at: float | None = None,
        by: AuditContext = NO_CONTEXT,
        *,
        code: ReasonCode = "admin",
    ) -> Revoked:
        """Revoke one access token; ``expires_at`` defaults to the longest it could live."""
        now = self._clock()
        until = expires_at + self._settings.leeway if expires_at else self._tokens_die_by(now)
        revocation = TokenRevoked(
            id=new_event_id(), at=now, reason=reason, reason_code=code, jti=jti, expires_at=until
        )
        return await self.revoke(revocation, by)

    async def revoke_all(
        self,
        reason: str | None = None,
        by: AuditContext = NO_CONTEXT,
        *,
        code: ReasonCode = "admin",
        not_before: float | None = None,
    ) -> Revoked:
        """Reject every access token issued at or before ``not_before`` (a past Unix time; now
        by default or if later); sessions survive and can refresh."""
        now = self._clock()
        revocation = AllRevoked(
            id=new_event_id(),
            at=now,
            reason=reason,
            reason_code=code,
            not_before=_not_before(not_before, now),
        )
        return await self.revoke(revocation, by)

    def session_event(
        self, sid: str, code: ReasonCode, now: float, reason: str | None = None
    ) -> SessionRevoked:
        """A revocation of session ``sid`` at ``now``, kept until its last token expired."""
        return SessionRevoked(
            id=new_event_id(),
            at=now,
            reason=reason,
            reason_code=code,
            sid=sid,
            expires_at=self._tokens_die_by(now),
        )

    async def revoke(
        self,
        revocation: Revocation,
        by: AuditContext,
        *,
        action: AuditAction | None = None,
        subject: str | None = None,
    ) -> Revoked:
        """The whole write path for ``revocation``, then its audit record: ``action`` (by
        default its kind's ``*.revoked``), naming ``subject`` unless the event does."""
        stored = await self._store_revocation(revocation)
        return await self.propagate(revocation, by, stored=stored, action=action, subject=subject)

    async def propagate(
        self,
        revocation: Revocation,
        by: AuditContext,
        *,
        stored: bool = True,
        action: AuditAction | None = None,
        subject: str | None = None,
    ) -> Revoked:
        """Steps 2-4 of the write path, then the audit record (as :meth:`revoke`).

        ``stored``: ``revocation`` is durable in the outbox (step 1 is done: a sign-in's store
        write evicts a session this way); if not, one the stream does not acknowledge is stored
        nowhere: ``StoreUnavailable``.
        """
        self._denylist.apply(revocation)
        try:
            await self._bus.publish(revocation)
        except BroadcastUnavailable as exc:
            if not stored:
                raise StoreUnavailable(_STORED_NOWHERE) from exc
            log.warning("revocation %s pending in the outbox: %s", revocation.id, exc.detail)
            propagated = False
        else:
            propagated = True
            if stored:
                await self._outbox_remove(revocation.id)
        self._metrics.revocations.labels(kind_of(revocation)).inc()
        revoked = Revoked(revocation, propagated)
        await self._audit(revoked, by, action, subject)
        return revoked

    async def _store_revocation(self, revocation: Revocation) -> bool:
        """Step 1: the session state ``revocation`` ends is deleted with it going into the
        outbox. False if the store is down: the stream will be its record."""
        try:
            if isinstance(revocation, SessionRevoked):
                await self._store.delete(revocation.sid, revocation)
            elif isinstance(revocation, SubjectRevoked) and revocation.not_before >= int(
                revocation.at
            ):
                await self._store.delete_subject(revocation.sub, revocation)
            else:  # a token, every token, or a past not-before (its sessions ended one by one)
                await self._store.outbox_add(revocation)
        except StoreUnavailable as exc:
            log.warning(
                "revocation %s not stored (%s): the stream is its record", revocation.id, exc.detail
            )
            return False
        return True

    async def _outbox_remove(self, event_id: str) -> None:
        try:
            await self._store.outbox_remove(event_id)
        except StoreUnavailable:  # the relay publishes it again, deduplicated by id
            log.warning("revocation %s published; outbox entry left for the relay", event_id)

    async def _audit(
        self,
        revoked: Revoked,
        by: AuditContext,
        action: AuditAction | None,
        subject: str | None,
    ) -> None:
        """Record a stored revocation (after the fact: only what was done is audited)."""
        rev = revoked.event
        fields: dict[str, Any] = {
            "reason": rev.reason,
            "reason_code": rev.reason_code,
            "event_id": rev.id,
            "subject": subject,
        }
        if isinstance(rev, SessionRevoked):
            fields["session_id"] = rev.sid
        elif isinstance(rev, SubjectRevoked):
            fields["subject"] = rev.sub
        elif isinstance(rev, TokenRevoked):
            fields["jti"] = rev.jti
        await self._auditor.record(
            event(action or _REVOKED_ACTIONS[kind_of(rev)], rev.at, by, **fields)
        )

    async def _sessions_begun_by(self, sub: str, not_before: int) -> list[str]:
        """The ids of ``sub``'s live sessions begun at or before ``not_before``; none while
        the store is down (the relay ends them once it is back: ``workers/applier.py``)."""
        try:
            sessions = await self._store.list_subject(sub)
        except StoreUnavailable:
            log.warning("subject revocation: sessions not listed, store down; the relay ends them")
            return []
        return [s.sid for s in sessions if int(s.created_at) <= not_before]

    def _tokens_die_by(self, now: float) -> float:
        return now + self._settings.access_ttl + self._settings.leeway


def _not_before(not_before: float | None, now: float) -> int:
    """``not_before`` in whole seconds, at most now (the default): a not-before in the future
    would refuse every sign-in until then, a lock-out rather than a revocation."""
    if not_before is None or not_before > now:
        return int(now)
    return max(0, int(not_before))
