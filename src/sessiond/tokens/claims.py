"""The claims of an access token (RFC 7519 and the RFC 9068 profile), and the rules they follow.

Registered claims and custom ones sit side by side in the JWT payload; custom claims may not use
a reserved name (:data:`RESERVED_CLAIMS`). :class:`ClaimRules` reads the payload of a token
whose signature verified: a JSON object, the required claims present, ``iss`` and ``aud`` exact
(``aud`` one string), every claim's type checked by msgspec, then the times against the given
clock with a leeway. Every failure is an :class:`~sessiond.errors.InvalidToken` with a short
fixed detail that never quotes the token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from sessiond.errors import ClaimNotAllowed, InvalidToken, TooManyClaims

__all__ = [
    "REQUIRED_CLAIMS",
    "RESERVED_CLAIMS",
    "AccessClaims",
    "ClaimRules",
    "Confirmation",
    "check_custom_claims",
]

#: Claims every access token carries; a token without one of them is rejected.
REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "sid", "jti", "iat", "exp")

#: Registered and profile claim names (RFC 7519, RFC 9068, RFC 8693, RFC 7800, OpenID Connect,
#: RFC 8417) that custom claims may not use: they mean something to every JWT consumer.
RESERVED_CLAIMS: Final = frozenset(
    {
        *REQUIRED_CLAIMS,
        "nbf",
        "scope",
        "scp",
        "typ",
        "cty",
        "azp",
        "client_id",
        "auth_time",
        "acr",
        "amr",
        "cnf",
        "act",
        "may_act",
        "nonce",
        "at_hash",
        "c_hash",
        "s_hash",
        "events",
        "txn",
        "toe",
        "htm",
        "htu",
        "ath",
    }
)

_NumericDate = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
_AUTHENTICATION: Final = ("acr", "amr", "auth_time")
_Text = Annotated[str, msgspec.Meta(min_length=1)]


class Confirmation(msgspec.Struct, frozen=True):
    """The ``cnf`` claim of a sender-constrained token (RFC 7800): ``jkt`` is the RFC 7638
    thumbprint of the key its DPoP proofs must be signed with (RFC 9449 section 6)."""

    jkt: _Text


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True):
    """The claims of one access token. ``extra`` holds the custom claims, which sit flat in
    the JWT payload next to the registered ones."""

    iss: _Text
    aud: _Text
    sub: _Text
    sid: _Text
    jti: _Text
    iat: _NumericDate
    exp: _NumericDate
    scope: str | None = None
    #: RFC 9068 ``client_id``: the id of the service credential that created the session.
    #: Absent only from tokens signed before sessiond set it.
    client_id: _Text | None = None
    #: How the subject authenticated (OpenID Connect Core section 2): set by the authority
    #: from the session, never by custom claims.
    acr: str | None = None
    amr: tuple[str, ...] | None = None
    auth_time: _NumericDate | None = None
    #: Set when the token is bound to a client's key (DPoP): sent only with a proof by it.
    cnf: Confirmation | None = None
    extra: dict[str, Any] = {}

    @property
    def token_type(self) -> Literal["Bearer", "DPoP"]:
        """The OAuth token type (RFC 6749 section 7.1) of this token: ``DPoP`` if bound."""
        return "Bearer" if self.cnf is None else "DPoP"

    @property
    def scopes(self) -> frozenset[str]:
        """The granted scopes: ``scope`` split on spaces (RFC 8693 section 4.2)."""
        return frozenset(self.scope.split()) if self.scope else frozenset()

    def payload(self) -> dict[str, Any]:
        """The JWT payload: registered claims plus the flattened custom claims."""
        body: dict[str, Any] = {
            "iss": self.iss,
            "aud": self.aud,
            "sub": self.sub,
            "sid": self.sid,
            "jti": self.jti,
            "iat": self.iat,
            "exp": self.exp,
        }
        if self.scope is not None:
            body["scope"] = self.scope
        if self.client_id is not None:
            body["client_id"] = self.client_id
        for name in _AUTHENTICATION:
            value = getattr(self, name)
            if value is not None:
                body[name] = list(value) if name == "amr" else value
        if self.cnf is not None:
            body["cnf"] = {"jkt": self.cnf.jkt}
        return {**self.extra, **body}


def check_custom_claims(claims: Mapping[str, Any], limit: int | None = None) -> None:
    """Raise :class:`TooManyClaims` if ``claims`` has more than ``limit`` members, then
    :class:`ClaimNotAllowed` naming the first one that is reserved."""
    if limit is not None and len(claims) > limit:
        raise TooManyClaims(f"{len(claims)} custom claims; at most {limit} are allowed")
    for name in claims:
        if not isinstance(name, str) or name in RESERVED_CLAIMS:
            raise ClaimNotAllowed(f"claim {name!r} is reserved and cannot be set")


class ClaimRules:
    """What the payload of a verified token must hold for ``issuer`` and ``audience``, with
    ``leeway`` seconds of clock skew allowed on the time claims."""

    def __init__(self, *, issuer: str, audience: str, leeway: float) -> None:
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    def read(self, raw: bytes, now: float) -> AccessClaims:
        """The claims of the payload ``raw``. The checks run in a fixed order, so a token that
        breaks several rules always gets the same detail."""
        payload = self._registered(raw)
        claims = _to_claims(payload)
        self.check_expiry(claims, now)
        if claims.iat - self._leeway > now:
            raise InvalidToken("token issued in the future")
        nbf = payload.get("nbf")
        if nbf is not None:
            if type(nbf) is not int:
                raise InvalidToken("claim nbf has the wrong type")
            if nbf - self._leeway > now:
                raise InvalidToken("token not yet valid")
        return claims

    def check_expiry(self, claims: AccessClaims, now: float) -> None:
        """Raise :class:`InvalidToken` if ``claims`` expired at ``now`` (leeway included)."""
        if claims.exp + self._leeway <= now:
            raise InvalidToken("token expired")

    def _registered(self, raw: bytes) -> dict[str, Any]:
        """The payload as a JSON object with the required claims, our ``iss`` and ``aud``."""
        try:
            payload = msgspec.json.decode(raw)
        except (ValueError, RecursionError, msgspec.MsgspecError):
            raise InvalidToken("malformed token") from None
        if type(payload) is not dict:
            raise InvalidToken("malformed token")
        for name in REQUIRED_CLAIMS:
            if payload.get(name) is None:
                raise InvalidToken(f"missing claim {name}")
        if type(payload["iss"]) is not str or payload["iss"] != self._issuer:
            raise InvalidToken("wrong issuer")
        aud = payload["aud"]
        if not aud:
            raise InvalidToken("missing claim aud")
        # One audience, as a string: a list is refused even if it holds only ours.
        if type(aud) is not str or aud != self._audience:
            raise InvalidToken("wrong audience")
        if type(payload["sub"]) is not str:
            raise InvalidToken("claim sub has the wrong type")
        if type(payload["jti"]) is not str:
            raise InvalidToken("claim jti has the wrong type")
        return payload


_FIELDS: Final = frozenset(AccessClaims.__struct_fields__) - {"extra"}


def _to_claims(payload: dict[str, Any]) -> AccessClaims:
    # convert ignores the members AccessClaims has no field for; a custom claim named "extra"
    # is overwritten here and kept in extra itself.
    fields = dict(payload)
    fields["extra"] = {
        name: value for name, value in payload.items() if name not in RESERVED_CLAIMS
    }
    try:
        return msgspec.convert(fields, AccessClaims)
    except msgspec.ValidationError as exc:
        raise InvalidToken(_wrong_type(str(exc))) from None


def _wrong_type(message: str) -> str:
    match = re.search(r"at `\$\.(\w+)`$", message)
    if match is None or match.group(1) not in _FIELDS:
        return "claim of the wrong type"
    return f"claim {match.group(1)} has the wrong type"
