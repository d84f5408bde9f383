"""Request and response bodies of the public HTTP contract (v1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response

from sessiond.api import sizes
from sessiond.events import Kind, Reason, ReasonCode, kind_of
from sessiond.sessions.lifetimes import Lifetime, Preset, lifetime
from sessiond.sessions.models import Authentication, Device, Session
from sessiond.sessions.revocations import Revoked
from sessiond.settings import ACR_PATTERN, Settings
from sessiond.tokens.claims import AccessClaims, Confirmation, check_custom_claims

Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Short = Annotated[str, msgspec.Meta(max_length=255)]
Opaque = Annotated[str, msgspec.Meta(min_length=1, max_length=16384)]


class DeviceIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    label: Short | None = None
    user_agent: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None

    def model(self) -> Device:
        return Device(label=self.label, user_agent=self.user_agent, ip=self.ip)


Acr = Annotated[str, msgspec.Meta(max_length=255, pattern=f"^{ACR_PATTERN}$")]
#: Authentication method reference values: RFC 8176 section 2 (the IANA registry's first
#: entries), so that every verifier knows what a token's ``amr`` means.
AmrValue = Literal[
    "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pop", "pwd",
    "rba", "retina", "sc", "sms", "swk", "tel", "user", "vbm", "wia",
]  # fmt: skip
Amr = Annotated[list[AmrValue], msgspec.Meta(max_length=16)]
#: Unix seconds; from 1 (a schema minimum of 0 is lost on the way to the OpenAPI document).
NumericDate = Annotated[int, msgspec.Meta(ge=1, le=2**53)]


class AuthenticationIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the subject just authenticated (OpenID Connect ``acr``, ``amr``, ``auth_time``
    in Unix seconds, default now): the body of ``POST /v1/sessions/{sid}/authentication``."""

    acr: Acr | None = None
    amr: Amr = []
    auth_time: NumericDate | None = None

    def authentication(self) -> Authentication:
        return Authentication(acr=self.acr, amr=tuple(self.amr), auth_time=self.auth_time)


class LifetimeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A session's own lifetimes: a NIST SP 800-63B-4 ``preset`` and/or seconds, within
    ``SESSIOND_SESSION_MAX_IDLE_TTL`` and ``SESSIOND_SESSION_MAX_ABSOLUTE_TTL``."""

    preset: Preset | None = None
    idle_ttl: Annotated[int, msgspec.Meta(ge=1, le=10 * 365 * 86400)] | None = None
    absolute_ttl: Annotated[int, msgspec.Meta(ge=1, le=10 * 365 * 86400)] | None = None

    def model(self, settings: Settings) -> Lifetime:
        return lifetime(
            settings, preset=self.preset, idle=self.idle_ttl, absolute=self.absolute_ttl
        )


class CreateSession(AuthenticationIn, kw_only=True, forbid_unknown_fields=True):
    subject: Subject
    claims: dict[str, Any] = {}
    data: dict[str, Any] = {}
    device: DeviceIn | None = None
    scope: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    lifetime: LifetimeIn | None = None

    def __post_init__(self) -> None:
        # Not a msgspec.Meta(max_length=...): the limit is a setting (SESSIOND_MAX_CUSTOM_CLAIMS)
        # of the app serving the request, published by api.sizes.RequestLimits.
        check_custom_claims(self.claims, sizes.current().custom_claims)


class RefreshRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    refresh_token: Opaque


class TokenResponse(msgspec.Struct, kw_only=True):
    """OAuth 2.0 token response fields plus the session id.

    In browser cookie mode (``api.cookies``) a token that travels in a cookie is left out.
    """

    access_token: str | msgspec.UnsetType = msgspec.UNSET
    expires_in: int
    refresh_token: str | msgspec.UnsetType = msgspec.UNSET
    refresh_expires_in: int
    session_id: str
    #: ``DPoP`` when the tokens are bound to the client's key (RFC 9449 section 5).
    token_type: Literal["Bearer", "DPoP"] = "Bearer"  # noqa: S105 - the OAuth token type


class SessionView(msgspec.Struct, kw_only=True):
    session_id: str
    subject: str
    created_at: datetime
    last_seen_at: datetime
    idle_expires_at: datetime
    expires_at: datetime
    device: Device
    data: dict[str, Any]
    acr: str | None
    amr: list[str]
    auth_time: datetime

    @classmethod
    def of(cls, session: Session) -> SessionView:
        return cls(
            session_id=session.sid,
            subject=session.sub,
            created_at=utc(session.created_at),
            last_seen_at=utc(session.last_seen_at),
            idle_expires_at=utc(session.idle_expires_at),
            expires_at=utc(session.expires_at),
            device=session.device,
            data=session.data,
            acr=session.acr,
            amr=list(session.amr),
            auth_time=utc(session.authenticated_at),
        )


class SessionList(msgspec.Struct, kw_only=True):
    sessions: list[SessionView]


class _Revocation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """The body of ``POST /v1/revocations``, one shape per ``kind`` (so the OpenAPI document
    says which field each kind needs)."""

    reason: Reason | None = None
    #: What the 401 of a token this revokes tells the app; ``admin`` unless the caller says.
    reason_code: ReasonCode = "admin"


class _NotBefore(_Revocation, kw_only=True, forbid_unknown_fields=True):
    #: Revoke what was issued at or before this past time (RFC 3339 with an offset, or Unix
    #: seconds) instead of now.
    not_before: Annotated[datetime, msgspec.Meta(tz=True)] | float | None = None

    @property
    def not_before_epoch(self) -> float | None:
        """:attr:`not_before` as Unix seconds."""
        if isinstance(self.not_before, datetime):
            return self.not_before.timestamp()
        return None if self.not_before is None else float(self.not_before)


class TokenRevocation(_Revocation, tag="token", kw_only=True, forbid_unknown_fields=True):
    jti: Subject


class SessionRevocation(_Revocation, tag="session", kw_only=True, forbid_unknown_fields=True):
    session_id: Subject


class SubjectRevocation(_NotBefore, tag="subject", kw_only=True, forbid_unknown_fields=True):
    subject: Subject


class AllRevocation(_NotBefore, tag="all", kw_only=True, forbid_unknown_fields=True):
    pass


RevocationRequest = TokenRevocation | SessionRevocation | SubjectRevocation | AllRevocation


class RevocationView(msgspec.Struct, kw_only=True):
    """A stored revocation: ``pending`` means every replica gets it once the stream is back."""

    id: str
    kind: Kind
    at: datetime
    status: Literal["propagated", "pending"]

    @classmethod
    def of(cls, revoked: Revoked) -> RevocationView:
        event = revoked.event
        status: Literal["propagated", "pending"] = "propagated" if revoked.propagated else "pending"
        return cls(id=event.id, kind=kind_of(event), at=utc(event.at), status=status)


def revocation_response(revoked: Revoked, status_code: int) -> Response[RevocationView | None]:
    """``status_code`` once the stream has the revocation, 202 Accepted while it is pending."""
    if not revoked.propagated:
        return Response(RevocationView.of(revoked), status_code=202)
    body = None if status_code == 204 else RevocationView.of(revoked)
    return Response(body, status_code=status_code)


class WhoAmI(msgspec.Struct, kw_only=True, omit_defaults=True):
    sub: str
    sid: str
    jti: str
    iss: str
    aud: str
    iat: int
    exp: int
    scope: str | None = None
    client_id: str | None = None
    acr: str | None = None
    amr: tuple[str, ...] | None = None
    auth_time: int | None = None
    cnf: Confirmation | None = None
    claims: dict[str, Any] = {}

    @classmethod
    def of(cls, access: AccessClaims) -> WhoAmI:
        registered = msgspec.structs.asdict(access)
        extra = registered.pop("extra")
        return cls(**registered, claims=extra)


class RefreshGrant(msgspec.Struct, kw_only=True):
    """RFC 6749 section 6 request of ``POST /v1/token``: form-encoded (or JSON). Other
    parameters (``client_id``, ``scope``) are ignored, as section 3.2 asks: the new tokens
    have the session's scope."""

    grant_type: Short
    refresh_token: Opaque


class TokenForm(msgspec.Struct, kw_only=True):
    """RFC 7662 / RFC 7009 request: form-encoded (or JSON) ``token`` and optional hint."""

    token: Opaque
    token_type_hint: Short | None = None


class Introspection(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 7662 response; only ``active`` when the token is not active. ``token_type`` is the
    access token's OAuth type (``Bearer``, or ``DPoP`` if bound); a refresh token has none."""

    active: bool
    token_type: str | None = None
    sub: str | None = None
    sid: str | None = None
    jti: str | None = None
    iss: str | None = None
    aud: str | None = None
    iat: int | None = None
    exp: int | None = None
    scope: str | None = None
    client_id: str | None = None
    acr: str | None = None
    amr: tuple[str, ...] | None = None
    auth_time: int | None = None
    #: The key a DPoP-bound token is bound to (RFC 9449 section 6.2).
    cnf: Confirmation | None = None

    @classmethod
    def of_access_token(cls, access: AccessClaims) -> Introspection:
        registered = msgspec.structs.asdict(access)
        del registered["extra"]
        return cls(active=True, token_type=access.token_type, **registered)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
