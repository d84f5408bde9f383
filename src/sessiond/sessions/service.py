"""The session authority: sign in, refresh, step up and session data, and the one object the
HTTP API, the console and the command line call.

Revocations and their durable write path are :mod:`~sessiond.sessions.revocations`'s,
a subject's own sessions :mod:`~sessiond.sessions.selfservice`'s; :class:`SessionService`
offers their use cases too.
"""

from __future__ import annotations

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
    DpopProofRefused,
    InvalidGrant,
    PreconditionFailed,
    PreconditionRequired,
    SessionNotFound,
)
from sessiond.events import Revocation, SessionRevoked
from sessiond.metrics import Metrics
from sessiond.sessions import lifetimes
from sessiond.sessions.base import Change, SessionStore
from sessiond.sessions.data import ANY_VERSION, DataVersion, check_size, merge_patch
from sessiond.sessions.lifecycle import Outcome, Rotation, rotate
from sessiond.sessions.models import (
    Authentication,
    Device,
    RefreshState,
    Session,
    new_session_id,
)
from sessiond.sessions.revocations import Revocations
from sessiond.sessions.selfservice import SelfService
from sessiond.settings import Settings, acr_order
from sessiond.tokens.access import sign_access_token
from sessiond.tokens.assurance import AcrLevels
from sessiond.tokens.claims import AccessClaims, check_custom_claims
from sessiond.tokens.keys import Keyset
from sessiond.tokens.refresh import RefreshToken


@dataclass(frozen=True)
class _SessionProbe:
    """A session as the claims of its first access token, to ask the denylist about it."""

    sub: str
    sid: str
    iat: int
    jti: str = ""


@dataclass(frozen=True)
class Issued:
    """What a sign-in or refresh hands to the client."""

    access_token: str
    claims: AccessClaims
    refresh_token: str | None  # None: a step-up, which leaves the client its refresh token
    session: Session


class SessionService:
    """Signs in, refreshes, steps up and revokes sessions; the HTTP API is a thin layer over
    it. ``revoke_session``, ``revoke_subject``, ``revoke_token`` and ``revoke_all`` are
    :class:`Revocations`'s, ``list_own``, ``revoke_own`` and ``revoke_others``
    :class:`SelfService`'s."""

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
        self._keyset = keyset
        self._clock = clock
        self._levels = AcrLevels(acr_order(settings.acr_levels))
        self._revocations = Revocations(
            settings, store, denylist, bus, metrics, clock, self._auditor
        )
        self.revoke_session = self._revocations.revoke_session
        self.revoke_subject = self._revocations.revoke_subject
        self.revoke_token = self._revocations.revoke_token
        self.revoke_all = self._revocations.revoke_all
        own = SelfService(store, self._revocations)
        self.list_own = own.list_own
        self.revoke_own = own.revoke_own
        self.revoke_others = own.revoke_others

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
        lifetime: lifetimes.Lifetime | None = None,
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
        check_size(data, self._settings.max_data_bytes)
        now = self._clock()
        auth = self._checked(authentication or Authentication(), now)
        life = lifetime or lifetimes.lifetime(self._settings)
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
            auth_time=auth.auth_time,
            idle_ttl=None if lifetime is None else lifetime.idle,
            jkt=jkt,
        )
        # Keyed by sid: an optimistic store may call ``evict`` again when it retries.
        evictions: dict[str, SessionRevoked] = {}

        def evict(old: Session) -> Revocation:
            evictions[old.sid] = self._revocations.session_event(
                old.sid, "session_limit", now, "session limit"
            )
            return evictions[old.sid]

        evicted = await self._store.create(session, self._settings.session_limit, evict)
        self._metrics.sign_ins.inc()
        await self._audit("session.created", now, by, session)
        for old in evicted:
            await self._revocations.propagate(evictions[old.sid], by, subject=subject)
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
            reused = self._revocations.session_event(
                presented.sid, "refresh_reuse", self._clock(), "refresh token reuse"
            )
            await self._revocations.revoke(
                reused, by, action="refresh.reused", subject=rotation.session.sub
            )
            raise InvalidGrant("refresh token was already used; the session is revoked")
        if rotation.successor is None:
            raise InvalidGrant("unknown refresh token")
        await self._audit("session.refreshed", now, by, rotation.session)
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
        ``auth_time`` (default now), and its next access tokens carry them. The first one is
        returned at once (no refresh token: the client keeps its own)."""
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
                session, acr=auth.acr, amr=auth.amr, auth_time=auth.auth_time
            )
            return raised, raised

        session = await self._store.update(sid, change)
        await self._audit("session.authenticated", now, by, session)
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
        limit = self._settings.max_data_bytes

        def change(session: Session) -> tuple[Session, Session]:
            if if_match is None:
                raise PreconditionRequired("send If-Match with the ETag of the data to change")
            if ANY_VERSION not in if_match and session.data_version not in if_match:
                raise PreconditionFailed("the session data changed since that version")
            data: dict[str, Any] = merge_patch(session.data, patch)
            check_size(data, limit)
            updated = msgspec.structs.replace(
                session, data=data, data_version=session.data_version + 1
            )
            return updated, updated

        session = await self._store.update(sid, change)
        await self._audit("session.data_updated", self._clock(), by, session)
        return session

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

    def _checked(self, authentication: Authentication, now: float) -> Authentication:
        """``authentication`` if its ``acr`` is a known level, its ``auth_time`` now if none
        or in the future: no token claims an authentication yet to happen."""
        acr, auth_time = authentication.acr, authentication.auth_time
        if acr is not None and not self._levels.known(acr):
            raise BadRequest("acr is not one of the configured levels (SESSIOND_ACR_LEVELS)")
        if auth_time is None or auth_time > now:
            return msgspec.structs.replace(authentication, auth_time=now)
        return authentication

    async def _audit(
        self, action: AuditAction, at: float, by: AuditContext, session: Session
    ) -> None:
        await self._auditor.record(
            event(action, at, by, subject=session.sub, session_id=session.sid)
        )

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
