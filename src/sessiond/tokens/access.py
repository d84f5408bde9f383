"""The access token: a JWS in the RFC 9068 profile (header ``typ: at+jwt`` and ``kid``).

Signing puts the registered claims and the custom ones side by side in the payload. Decoding
treats the token as hostile: the size is capped before anything is parsed, the header may hold
only ``alg``, ``typ`` and ``kid``, the key is chosen by ``kid`` and its algorithm is pinned (the
header's ``alg`` must equal it), then PyJWT checks the signature, ``iss`` (exact), ``aud``
(exact, one string) and the presence of the required claims, and msgspec checks every claim's
type. Time claims are checked here against an injectable clock, with a leeway. Every failure is
an :class:`InvalidToken` with a short fixed detail that never quotes the token.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Protocol

import jwt
import msgspec

from sessiond.errors import ClaimNotAllowed, InvalidToken, UnknownSigningKey
from sessiond.tokens.keys import PublicKey, SigningKey

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "REQUIRED_CLAIMS",
    "RESERVED_CLAIMS",
    "AccessClaims",
    "AccessTokenDecoder",
    "KeyLookup",
    "VerifyingKey",
    "check_custom_claims",
    "sign_access_token",
]

#: The ``typ`` header of an access token (RFC 9068 section 2.1).
ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 (a media type, not a secret)
_ACCEPTED_TYPES = frozenset({ACCESS_TOKEN_TYPE, "application/at+jwt"})
_HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})
_JTI_BYTES = 16  # 128 bits

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
_Text = Annotated[str, msgspec.Meta(min_length=1)]
_SEGMENTS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", re.ASCII)


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
    extra: dict[str, Any] = {}

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
        return {**self.extra, **body}


def check_custom_claims(claims: Mapping[str, Any]) -> None:
    """Raise :class:`ClaimNotAllowed` naming the first custom claim that is reserved."""
    for name in claims:
        if not isinstance(name, str) or name in RESERVED_CLAIMS:
            raise ClaimNotAllowed(f"claim {name!r} is reserved and cannot be set")


def sign_access_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    sub: str,
    sid: str,
    scope: str | None = None,
    extra: Mapping[str, Any] | None = None,
    ttl: int,
    now: float,
) -> tuple[str, AccessClaims]:
    """Sign a new access token with ``key``; return it and its claims.

    ``iat`` is ``int(now)`` and ``exp`` is ``iat + ttl``; ``jti`` is 128 random bits.
    Raises :class:`ClaimNotAllowed` if ``extra`` uses a reserved claim name.
    """
    custom = dict(extra or {})
    check_custom_claims(custom)
    iat = int(now)
    claims = AccessClaims(
        iss=issuer,
        aud=audience,
        sub=sub,
        sid=sid,
        jti=secrets.token_urlsafe(_JTI_BYTES),
        iat=iat,
        exp=iat + ttl,
        scope=scope,
        extra=custom,
    )
    headers = {"alg": key.alg, "typ": ACCESS_TOKEN_TYPE, "kid": key.kid}
    token = jwt.encode(claims.payload(), key.private, algorithm=key.alg, headers=headers)
    return token, claims


class VerifyingKey(Protocol):
    """What verifying needs of a key: its algorithm (pinned) and its public key."""

    @property
    def alg(self) -> str: ...
    @property
    def public(self) -> PublicKey: ...


class KeyLookup(Protocol):
    """Finds the key of a ``kid``: a :class:`~sessiond.tokens.keys.Keyset` (the authority's
    file) or a :class:`~sessiond.tokens.jwks.PublishedKeys` (a backend's copy of the JWKS)."""

    def verification_key(self, kid: str, now: float, retain: float) -> VerifyingKey | None: ...


class AccessTokenDecoder:
    """Verifies access tokens against the keys of ``keyset_getter()`` (called per token, so a
    reloaded keyset takes effect at once). ``retain`` is how long a retired key still verifies."""

    def __init__(
        self,
        keyset_getter: Callable[[], KeyLookup],
        *,
        issuer: str,
        audience: str,
        leeway: float,
        max_bytes: int,
        retain: float,
    ) -> None:
        self._keyset = keyset_getter
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._max_bytes = max_bytes
        self._retain = retain
        self._jwt = jwt.PyJWT(
            {
                "require": list(REQUIRED_CLAIMS),
                "strict_aud": True,
                # Time claims are checked in _check_times against the caller's clock.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            }
        )

    def decode(self, token: str, now: float | None = None) -> AccessClaims:
        """The verified claims of ``token``; raise :class:`InvalidToken` for anything wrong."""
        if not isinstance(token, str):
            raise InvalidToken("malformed token")
        if len(token) > self._max_bytes:
            raise InvalidToken("token too large")
        if _SEGMENTS.fullmatch(token) is None:
            raise InvalidToken("malformed token")
        now = time.time() if now is None else now
        key = self._key_for(_read_header(token), now)
        payload = self._verify(token, key)
        claims = _to_claims(payload)
        self._check_times(claims, payload, now)
        return claims

    def _key_for(self, header: dict[str, Any], now: float) -> VerifyingKey:
        if not _HEADER_MEMBERS.issuperset(header):
            raise InvalidToken("unexpected header parameter")
        typ, kid, alg = header.get("typ"), header.get("kid"), header.get("alg")
        if not isinstance(typ, str) or typ not in _ACCEPTED_TYPES:
            raise InvalidToken("not an access token (typ)")
        if not isinstance(kid, str) or not isinstance(alg, str):
            raise InvalidToken("malformed header")
        key = self._keyset().verification_key(kid, now, self._retain)
        if key is None:
            raise UnknownSigningKey("unknown signing key")
        if alg != key.alg:
            raise InvalidToken("algorithm not allowed for this key")
        return key

    def _verify(self, token: str, key: VerifyingKey) -> dict[str, Any]:
        try:
            return self._jwt.decode(
                token,
                key.public,
                algorithms=[key.alg],
                audience=self._audience,
                issuer=self._issuer,
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim {exc.claim}") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(_explain(exc)) from None
        except (ValueError, TypeError, RecursionError, OverflowError):
            raise InvalidToken("malformed token") from None

    def _check_times(self, claims: AccessClaims, payload: dict[str, Any], now: float) -> None:
        if claims.exp + self._leeway <= now:
            raise InvalidToken("token expired")
        if claims.iat - self._leeway > now:
            raise InvalidToken("token issued in the future")
        nbf = payload.get("nbf")
        if nbf is not None:
            if type(nbf) is not int:
                raise InvalidToken("claim nbf has the wrong type")
            if nbf - self._leeway > now:
                raise InvalidToken("token not yet valid")


def _read_header(token: str) -> dict[str, Any]:
    segment = token[: token.index(".")]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = msgspec.json.decode(raw)
    except (ValueError, binascii.Error, RecursionError, msgspec.MsgspecError):
        raise InvalidToken("malformed header") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed header")
    return header


_FIELDS: Final = frozenset(AccessClaims.__struct_fields__) - {"extra"}


def _to_claims(payload: dict[str, Any]) -> AccessClaims:
    known = {name: value for name, value in payload.items() if name in _FIELDS}
    extra = {name: value for name, value in payload.items() if name not in RESERVED_CLAIMS}
    try:
        return msgspec.convert({**known, "extra": extra}, AccessClaims)
    except msgspec.ValidationError as exc:
        raise InvalidToken(_wrong_type(str(exc))) from None


def _wrong_type(message: str) -> str:
    match = re.search(r"at `\$\.(\w+)`$", message)
    if match is None or match.group(1) not in _FIELDS:
        return "claim of the wrong type"
    return f"claim {match.group(1)} has the wrong type"


_DETAILS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed for this key"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.exceptions.InvalidSubjectError, "claim sub has the wrong type"),
    (jwt.exceptions.InvalidJTIError, "claim jti has the wrong type"),
    (jwt.DecodeError, "malformed token"),
)


def _explain(exc: jwt.PyJWTError) -> str:
    for kind, detail in _DETAILS:
        if isinstance(exc, kind):
            return detail
    return "invalid token"
