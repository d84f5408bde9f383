"""The session authority's use cases: sign in, refresh, and revoke.

The durable write path of a revocation (I4, I7):

1. the store deletes the session state and records the event in its outbox, atomically;
2. this replica's denylist applies the event at once;
3. the event is published to the revocation bus; once the stream acknowledged it, the outbox
   entry is removed and the caller is told ``propagated``;
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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from sessiond.audit import NO_CONTEXT, Actor, AuditContext, Auditor, event
from sessiond.audit import Action as AuditAction
from sessiond.broadcast.base import RevocationBus
from sessiond.denylist.denylist import Denylist
from sessiond.errors import (
    BadRequest,
    BroadcastUnavailable,
    DpopProofRefused,
    InvalidGrant,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    SessionNotFound,
    StoreUnavailable,
)
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
from sessiond.sessions.base import Change, SessionStore
from sessiond.sessions.data import ANY_VERSION, DataVersion, merge_patch
from sessiond.sessions.lifecycle import Outcome, Rotation, rotate
from sessiond.sessions.lifetimes import Lifetime
from sessiond.sessions.models import (
    Authentication,
    Device,
    RefreshState,
    Session,
    new_session_id,
)
from sessiond.settings import Settings, acr_order
from sessiond.tokens.access import sign_access_token
from sessiond.tokens.assurance import AcrLevels
from sessiond.tokens.claims import AccessClaims, check_custom_claims
from sessiond.tokens.keys import Keyset
from sessiond.tokens.refresh import RefreshToken

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
class _SessionProbe:
    """A session as the claims of its first access token, to ask the denylist about it."""

    sub: str
    sid: str
    iat: int
    jti: str = ""


@dataclass(frozen=True)
class Revoked:
    """A stored revocation, and whether the stream has it yet."""

    event: Revocation
    propagated: bool


@dataclass(frozen=True)
class OwnSession:
    """One of the caller's sessions, as self-service lists them: ``current`` is the session
    of the token that asked ("this device")."""

    session: Session
    current: bool


@dataclass(frozen=True)
class Issued:
    """What a sign-in or refresh hands to the client."""

    access_token: str
    claims: AccessClaims
    refresh_token: str | None  # None: a step-up, which leaves the client its refresh token
    session: Session


class SessionService:
    """Creates, refreshes and revokes sessions; the HTTP API is a thin layer over it."""

    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        denylist: Denylist,
        bus: RevocationBus,
        keyset: Callable[[], Keyset],
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        auditor: Auditor | None = None,
    ) -> None:
        self._settings = settings
        self._auditor = auditor or Auditor()
        self._metrics = metrics
        self._store = store
        self._denylist = denylist
        self._bus = bus
        self._keyset = keyset
        self._clock = clock
        self._levels = AcrLevels(acr_order(settings.acr_levels))

    async def create(
        self,
        subject: str,
        *,
        client_id: str,
        claims: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        device: Device | None = None,
        scope: str | None = None,
        authentication: Authentication | None = None,
        lifetime: Lifetime | None = None,
        jkt: str | None = None,
        by: AuditContext = NO_CONTEXT,
    ) -> Issued:
        """Sign ``subject`` in on a new session for the service credential ``client_id`` (its
        id); may evict its oldest over the limit.

        ``authentication`` is how the subject signed in (its ``auth_time`` defaults to now),
        ``lifetime`` the session's own (see :mod:`~sessiond.sessions.lifetimes`). ``jkt``, the
        thumbprint of the client's DPoP key, binds the session and its tokens to that key.
        """
        claims, data = claims or {}, data or {}
        check_custom_claims(claims)
        self._check_data_size(data)
        now = self._clock()
        auth = self._checked(authentication or Authentication(), now)
        life = lifetime or Lifetime(
            idle=self._settings.refresh_idle_ttl, absolute=self._settings.refresh_absolute_ttl
        )
        sid = new_session_id(subject)
        refresh = RefreshToken.new(sid)
        session = Session(
            sid=sid,
            sub=subject,
            created_at=now,
            last_seen_at=now,
            idle_expires_at=now + min(life.idle, life.absolute),
            expires_at=now + life.absolute,
            refresh=RefreshState(hash=refresh.hash),
            device=device or Device(),
            data=data,
            claims=claims,
            scope=scope,
            client_id=client_id,
            acr=auth.acr,
            amr=auth.amr,
            auth_time=auth.auth_time if auth.auth_time is not None else now,
            idle_ttl=None if lifetime is None else lifetime.idle,
            jkt=jkt,
        )
        # Keyed by sid: an optimistic store may call ``evict`` again when it retries.
        evictions: dict[str, SessionRevoked] = {}

        def evict(old: Session) -> Revocation:
            evictions[old.sid] = self._session_event(old.sid, "session_limit", now, "session limit")
            return evictions[old.sid]

        evicted = await self._store.create(session, self._settings.session_limit, evict)
        self._metrics.sign_ins.inc()
        await self._auditor.record(
            event("session.created", now, by, subject=subject, session_id=sid)
        )
        for old in evicted:
            revoked = await self._propagate(evictions[old.sid])
            await self._audit_revoked(revoked, by, subject=subject)
        return self._issue(session, refresh, now)

    async def refresh(
        self, token: str, by: AuditContext = NO_CONTEXT, jkt: str | None = None
    ) -> Issued:
        """Rotate a refresh token; reuse of a rotated one outside the grace window revokes.

        ``jkt`` is the thumbprint of the key whose DPoP proof came with the request: it must be
        the session's (RFC 9449 section 5), or ``None`` for an unbound session; if not, nothing
        changes (:class:`DpopProofRefused`). The audited actor is always the client holding
        the session's token; ``by`` gives the source of the request.
        """
        presented = RefreshToken.parse(token)
        by = AuditContext(actor=Actor.client(presented.sid), source=by.source)
        now = self._clock()
        change = rotate(
            presented,
            RefreshToken.new(presented.sid),
            now=now,
            grace=self._settings.refresh_grace,
            idle_ttl=self._settings.refresh_idle_ttl,
        )
        try:
            rotation = await self._store.update(
                presented.sid, self._unless_revoked(_held_by(jkt, change))
            )
        except SessionNotFound:
            rotation = None
        if rotation is None:
            self._metrics.refreshes.labels("expired").inc()
            raise InvalidGrant("session expired or revoked")
        self._metrics.refreshes.labels(rotation.outcome.value).inc()
        if rotation.outcome is Outcome.REUSED:
            reused = self._session_event(
                presented.sid, "refresh_reuse", self._clock(), "refresh token reuse"
            )
            await self._revoke(reused, by, action="refresh.reused", subject=rotation.session.sub)
            raise InvalidGrant("refresh token was already used; the session is revoked")
        if rotation.successor is None:
            raise InvalidGrant("unknown refresh token")
        await self._auditor.record(
            event(
                "session.refreshed", now, by, subject=rotation.session.sub, session_id=presented.sid
            )
        )
        return self._issue(rotation.session, rotation.successor, now)

    def _unless_revoked(self, change: Change[Rotation]) -> Change[Rotation | None]:
        """``change``, unless this replica's denylist holds a revocation of the session or its
        subject: its record outlived it (the store was down when it was revoked), and is
        deleted now. A global revocation since the session began hides a subject's here
        (``denies`` answers ``all``); the relay deletes that record in any case."""

        def guarded(session: Session) -> tuple[Session | None, Rotation | None]:
            probe = _SessionProbe(session.sub, session.sid, int(session.created_at))
            denial = self._denylist.denies(probe)
            if denial is not None and denial.kind in ("session", "subject"):
                return None, None
            return change(session)

        return guarded

    async def authenticate(
        self, sid: str, authentication: Authentication, by: AuditContext = NO_CONTEXT
    ) -> Issued:
        """Step up: the subject of session ``sid`` authenticated again, as ``authentication``
        says. The session keeps its id and refresh token; it records the new ``acr`` (which
        must not rank below the current one by ``SESSIOND_ACR_LEVELS``, if set), ``amr`` and
        ``auth_time`` (default now), and
        its next access tokens carry them. The first one is returned at once (no refresh
        token: the client keeps its own)."""
        now = self._clock()
        auth = self._checked(authentication, now)
        levels = self._levels

        def change(session: Session) -> tuple[Session, Session]:
            if auth.acr is None and session.acr is not None:
                raise BadRequest("a step-up must name its acr")
            if (
                session.acr is not None
                and levels.levels
                and not levels.satisfies(auth.acr, session.acr)
            ):
                raise BadRequest("a step-up must not lower the session's acr")
            raised = msgspec.structs.replace(
                session,
                acr=auth.acr,
                amr=auth.amr,
                auth_time=auth.auth_time if auth.auth_time is not None else now,
            )
            return raised, raised

        session = await self._store.update(sid, change)
        await self._auditor.record(
            event("session.authenticated", now, by, subject=session.sub, session_id=sid)
        )
        return self._issue(session, None, now)

    async def update_data(
        self,
        sid: str,
        patch: dict[str, Any],
        if_match: Sequence[DataVersion] | None,
        by: AuditContext = NO_CONTEXT,
    ) -> Session:
        """Apply the JSON merge patch (RFC 7396) ``patch`` to session ``sid``'s data if its
        version is one of ``if_match`` (:data:`ANY_VERSION`: whatever it is); raise
        :class:`PreconditionFailed` if it is not, :class:`PreconditionRequired` for no
        ``if_match`` (once the session is found), :class:`PayloadTooLarge` if the result
        exceeds the data limit. Atomic: a concurrent change makes exactly one of two fail."""
        check_data = self._check_data_size

        def change(session: Session) -> tuple[Session, Session]:
            if if_match is None:
                raise PreconditionRequired("send If-Match with the ETag of the data to change")
            if ANY_VERSION not in if_match and session.data_version not in if_match:
                raise PreconditionFailed("the session data changed since that version")
            data: dict[str, Any] = merge_patch(session.data, patch)
            check_data(data)
            updated = msgspec.structs.replace(
                session, data=data, data_version=session.data_version + 1
            )
            return updated, updated

        session = await self._store.update(sid, change)
        await self._auditor.record(
            event("session.data_updated", self._clock(), by, subject=session.sub, session_id=sid)
        )
        return session

    def _check_data_size(self, data: dict[str, Any]) -> None:
        if len(msgspec.json.encode(data)) > self._settings.max_data_bytes:
            raise PayloadTooLarge(f"session data exceeds {self._settings.max_data_bytes} bytes")

    def _checked(self, authentication: Authentication, now: float) -> Authentication:
        """``authentication`` if its ``acr`` is a known level, with an ``auth_time`` in the
        future taken as now: no token claims an authentication yet to happen."""
        acr, auth_time = authentication.acr, authentication.auth_time
        if acr is not None and not self._levels.known(acr):
            raise BadRequest("acr is not one of the configured levels (SESSIOND_ACR_LEVELS)")
        if auth_time is not None and auth_time > now:
            return msgspec.structs.replace(authentication, auth_time=now)
        return authentication

    async def get(self, sid: str) -> Session:
        session = await self._store.get(sid)
        if session is None:
            raise SessionNotFound()
        return session

    async def list_subject(self, sub: str) -> list[Session]:
        return await self._store.list_subject(sub)

    async def session_of_refresh(self, token: RefreshToken) -> Session | None:
        """The live session whose current refresh token is ``token``, if any."""
        session = await self._store.get(token.sid)
        return session if session is not None and token.matches(session.refresh.hash) else None

    async def revoke_session(
        self,
        sid: str,
        reason: str | None = None,
        by: AuditContext = NO_CONTEXT,
        *,
        code: ReasonCode = "admin",
    ) -> Revoked:
        """Revoke one session, whether or not the store still has it: tokens may outlive it.

        ``code`` is the event's ``reason_code`` (as for every ``revoke_*``): what the 401 of a
        token it rejects tells the app; ``reason`` is free text for people.
        """
        return await self._revoke(self._session_event(sid, code, self._clock(), reason), by)

    async def list_own(self, sub: str, current: str) -> list[OwnSession]:
        """Self-service: the live sessions of ``sub``, oldest first, the caller's own session
        (id ``current``) marked. A session's ``last_seen_at`` is its sign-in or its latest
        refresh, so it is accurate to one access-token lifetime without a write per request."""
        sessions = await self._store.list_subject(sub)
        return [OwnSession(s, s.sid == current) for s in sessions]

    async def revoke_own(self, sub: str, sid: str, by: AuditContext = NO_CONTEXT) -> Revoked:
        """Self-service: ``sub`` signs its session ``sid`` out (``reason_code`` ``logout``).

        Raises ``SessionNotFound`` if ``sid`` is not a live session of ``sub``: another
        subject's session is answered exactly as one that does not exist, so a caller learns
        nothing about sessions that are not its own.
        """
        session = await self._store.get(sid)
        if session is None or session.sub != sub:
            raise SessionNotFound()
        return await self.revoke_session(sid, "signed out by its user", by, code="logout")

    async def revoke_others(
        self, sub: str, keep: str, by: AuditContext = NO_CONTEXT
    ) -> list[Revoked]:
        """Self-service "sign out everywhere else": revoke every live session of ``sub`` but
        ``keep`` (the caller's), one session event each (``reason_code`` ``logout``).

        Not a subject revocation: its not-before would reject the caller's own access token
        too. A session signed in after the list was read is left alive, as a sign-in made
        just after the call would be.
        """
        sessions = await self._store.list_subject(sub)
        return [
            await self.revoke_session(s.sid, "signed out from another device", by, code="logout")
            for s in sessions
            if s.sid != keep
        ]

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
        nbf = self._not_before(not_before, now)
        if nbf < int(now):
            for sid in await self._sessions_begun_by(sub, nbf):
                await self._revoke(self._session_event(sid, code, now, reason), by)
        event = SubjectRevoked(
            id=new_event_id(),
            at=now,
            reason=reason,
            reason_code=code,
            sub=sub,
            not_before=nbf,
            expires_at=self._tokens_die_by(now),
        )
        return await self._revoke(event, by)

    async def _sessions_begun_by(self, sub: str, not_before: int) -> list[str]:
        """The ids of ``sub``'s live sessions begun at or before ``not_before``; none while
        the store is down (the relay ends them once it is back: ``workers/applier.py``)."""
        try:
            sessions = await self._store.list_subject(sub)
        except StoreUnavailable:
            log.warning("subject revocation: sessions not listed, store down; the relay ends them")
            return []
        return [s.sid for s in sessions if int(s.created_at) <= not_before]

    def _not_before(self, not_before: float | None, now: float) -> int:
        """``not_before`` in whole seconds, at most now (the default): a not-before in the
        future would refuse every sign-in until then, a lock-out rather than a revocation."""
        if not_before is None or not_before > now:
            return int(now)
        return max(0, int(not_before))

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
        event = TokenRevoked(
            id=new_event_id(), at=now, reason=reason, reason_code=code, jti=jti, expires_at=until
        )
        return await self._revoke(event, by)

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
        nbf = self._not_before(not_before, now)
        event = AllRevoked(
            id=new_event_id(), at=now, reason=reason, reason_code=code, not_before=nbf
        )
        return await self._revoke(event, by)

    async def _revoke(
        self,
        event: Revocation,
        by: AuditContext,
        *,
        action: AuditAction | None = None,
        subject: str | None = None,
    ) -> Revoked:
        """The write path for ``event`` (see the module), then the audit record."""
        try:
            await self._store_revocation(event)
        except StoreUnavailable as exc:
            log.warning(
                "revocation %s not stored (%s): the stream is its record", event.id, exc.detail
            )
            revoked = await self._propagate(event, stored=False)
        else:
            revoked = await self._propagate(event)
        await self._audit_revoked(revoked, by, action=action, subject=subject)
        return revoked

    async def _store_revocation(self, event: Revocation) -> None:
        """Step 1: the session state ``event`` ends is deleted with it going into the outbox."""
        if isinstance(event, SessionRevoked):
            await self._store.delete(event.sid, event)
        elif isinstance(event, SubjectRevoked) and event.not_before >= int(event.at):
            await self._store.delete_subject(event.sub, event)
        else:  # a token, every token, or a past not-before (its sessions ended one by one)
            await self._store.outbox_add(event)

    async def _audit_revoked(
        self,
        revoked: Revoked,
        by: AuditContext,
        *,
        action: AuditAction | None = None,
        subject: str | None = None,
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

    async def _propagate(self, event: Revocation, *, stored: bool = True) -> Revoked:
        """Steps 2-4 of the write path. ``stored``: the event is durable in the outbox; if
        not, an event the stream does not acknowledge is stored nowhere: ``StoreUnavailable``.
        """
        self._denylist.apply(event)
        try:
            await self._bus.publish(event)
        except BroadcastUnavailable as exc:
            if not stored:
                raise StoreUnavailable(_STORED_NOWHERE) from exc
            log.warning("revocation %s pending in the outbox: %s", event.id, exc.detail)
            propagated = False
        else:
            propagated = True
            if stored:
                await self._outbox_remove(event.id)
        self._metrics.revocations.labels(kind_of(event)).inc()
        return Revoked(event, propagated)

    async def _outbox_remove(self, event_id: str) -> None:
        try:
            await self._store.outbox_remove(event_id)
        except StoreUnavailable:  # the relay publishes it again, deduplicated by id
            log.warning("revocation %s published; outbox entry left for the relay", event_id)

    def _session_event(
        self, sid: str, code: ReasonCode, now: float, reason: str | None = None
    ) -> SessionRevoked:
        return SessionRevoked(
            id=new_event_id(),
            at=now,
            reason=reason,
            reason_code=code,
            sid=sid,
            expires_at=self._tokens_die_by(now),
        )

    def _tokens_die_by(self, now: float) -> float:
        return now + self._settings.access_ttl + self._settings.leeway

    def _issue(self, session: Session, refresh: RefreshToken | None, now: float) -> Issued:
        ttl = max(1, min(self._settings.access_ttl, int(session.expires_at - now)))
        token, claims = sign_access_token(
            self._keyset().signing_key(now),
            issuer=self._settings.issuer,
            audience=self._settings.audience,
            sub=session.sub,
            sid=session.sid,
            scope=session.scope,
            client_id=session.client_id,
            extra=session.claims,
            ttl=ttl,
            now=now,
            acr=session.acr,
            amr=session.amr,
            auth_time=session.authenticated_at,
            jkt=session.jkt,
        )
        return Issued(token, claims, None if refresh is None else str(refresh), session)


def _held_by(jkt: str | None, change: Change[Rotation]) -> Change[Rotation]:
    """``change``, if the session is bound to the key ``jkt`` (or unbound and ``jkt`` is
    ``None``): a refresh token bound to a key is useless without it."""

    def bound(session: Session) -> tuple[Session | None, Rotation]:
        if session.jkt != jkt:
            raise DpopProofRefused(
                "the session is bound to a key: send a DPoP proof signed with it"
                if session.jkt is not None
                else "the session is not bound to a key: send no DPoP proof"
            )
        return change(session)

    return bound
