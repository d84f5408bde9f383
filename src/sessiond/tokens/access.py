"""The access token: a JWS in the RFC 9068 profile (header ``typ: at+jwt`` and ``kid``).

Signing puts the registered claims and the custom ones side by side in the payload. Decoding
treats the token as hostile: the size is capped before anything is parsed, the header may hold
only ``alg``, ``typ`` and ``kid``, the key is chosen by ``kid`` and its algorithm is pinned (the
header's ``alg`` must equal it), then the signature is checked with PyJWT's algorithm object for
that ``alg`` (only the cryptographic step: the JWS framing is done here, see
:meth:`AccessTokenDecoder.decode`), and only then the payload is read: ``iss`` (exact), ``aud``
(exact, one string), the presence of the required claims, and msgspec checks every claim's
type. Time claims are checked here against an injectable clock, with a leeway. Every failure is
an :class:`InvalidToken` with a short fixed detail that never quotes the token.
"""

from __future__ import annotations

import binascii
import re
import secrets
import time
import warnings
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
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

    def decode(self, token: str, now: float | None = None) -> AccessClaims:
        """The verified claims of ``token``; raise :class:`InvalidToken` for anything wrong.

        The steps, in order (each failure stops there): size cap; the compact form (three
        non-empty base64url segments, nothing else); the header (only ``alg``, ``typ``, ``kid``;
        the key by ``kid``, its ``alg`` pinned); every segment must be canonical base64url; the
        signature; only then the payload: a JSON object (UTF-8, no NaN/Infinity, no number out
        of range), the required claims, ``iss``, ``aud``, the claim types and the times. So an
        unsigned or forged token learns nothing about which claim check it would have failed.
        This is what ``PyJWT.decode`` did with our options, minus its generic parts that cannot
        apply here (``crit`` and ``b64`` cannot pass the header check, padding cannot pass the
        compact-form check), without its per-character Python loops over each segment.
        """
        if not isinstance(token, str):
            raise InvalidToken("malformed token")
        if len(token) > self._max_bytes:
            raise InvalidToken("token too large")
        if _SEGMENTS.fullmatch(token) is None:
            raise InvalidToken("malformed token")
        now = time.time() if now is None else now
        encoded = token.encode("ascii")
        header_segment, payload_segment, signature_segment = encoded.split(b".")
        kid, alg = _header(header_segment)
        key = self._key_for(kid, alg, now)
        if not _is_canonical(header_segment):
            raise InvalidToken("malformed token")
        raw_payload = _canonical_bytes(payload_segment)
        signing_input = encoded[: len(header_segment) + 1 + len(payload_segment)]
        _verify_signature(signing_input, _canonical_bytes(signature_segment), key)
        payload = self._check_payload(raw_payload)
        claims = _to_claims(payload)
        self._check_times(claims, payload, now)
        return claims

    def _key_for(self, kid: str, alg: str, now: float) -> VerifyingKey:
        key = self._keyset().verification_key(kid, now, self._retain)
        if key is None:
            raise UnknownSigningKey("unknown signing key")
        if alg != key.alg:
            raise InvalidToken("algorithm not allowed for this key")
        return key

    def _check_payload(self, raw: bytes) -> dict[str, Any]:
        """The payload as a JSON object whose registered claims PyJWT's ``decode`` would have
        accepted with ``require``, ``issuer``, ``audience`` and ``strict_aud`` (same order, so
        the same detail for a token that breaks several rules)."""
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

    def check_expiry(self, claims: AccessClaims, now: float) -> None:
        """Raise :class:`InvalidToken` if ``claims`` expired at ``now`` (leeway included): the
        one check a token verified before (and cached) still needs."""
        if claims.exp + self._leeway <= now:
            raise InvalidToken("token expired")

    def _check_times(self, claims: AccessClaims, payload: dict[str, Any], now: float) -> None:
        self.check_expiry(claims, now)
        if claims.iat - self._leeway > now:
            raise InvalidToken("token issued in the future")
        nbf = payload.get("nbf")
        if nbf is not None:
            if type(nbf) is not int:
                raise InvalidToken("claim nbf has the wrong type")
            if nbf - self._leeway > now:
                raise InvalidToken("token not yet valid")


@lru_cache(maxsize=256)
def _header(segment: bytes) -> tuple[str, str]:
    """The ``kid`` and ``alg`` of a header that passes every check not needing the keyset.

    Memoized (a pure function of the segment; failures are not cached): the tokens of one key
    share their header, so a new token usually skips this parsing.
    """
    try:
        header = msgspec.json.decode(_b64decode(segment))
    except (ValueError, RecursionError, msgspec.MsgspecError):
        raise InvalidToken("malformed header") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed header")
    if not _HEADER_MEMBERS.issuperset(header):
        raise InvalidToken("unexpected header parameter")
    typ, kid, alg = header.get("typ"), header.get("kid"), header.get("alg")
    if not isinstance(typ, str) or typ not in _ACCEPTED_TYPES:
        raise InvalidToken("not an access token (typ)")
    if not isinstance(kid, str) or not isinstance(alg, str):
        raise InvalidToken("malformed header")
    return kid, alg


# The characters that may end an unpadded base64url segment of length 2 or 3 (mod 4): those
# whose bits past the last whole byte are zero (RFC 4648 section 3.5).
_LAST_CHARACTERS: Final = {2: b"AQgw", 3: b"AEIMQUYcgkosw048"}


def _is_canonical(segment: bytes) -> bool:
    """Whether the base64url ``segment`` (already known to be unpadded and of the alphabet) is
    the only encoding of its bytes, as PyJWT requires (it re-encodes and compares): the length
    is not 1 (mod 4) and the unused low bits of the last character are zero."""
    rest = len(segment) % 4
    return rest == 0 or (rest != 1 and segment[-1] in _LAST_CHARACTERS[rest])


_PADDING: Final = (b"", b"===", b"==", b"=")
_FROM_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")


def _b64decode(segment: bytes) -> bytes:
    """The bytes of an unpadded segment of the base64url alphabet (the caller checked that),
    canonical or not; :class:`binascii.Error` if its length is 1 (mod 4)."""
    padded = (segment + _PADDING[len(segment) % 4]).translate(_FROM_URLSAFE)
    return binascii.a2b_base64(padded, strict_mode=True)


def _canonical_bytes(segment: bytes) -> bytes:
    if not _is_canonical(segment):
        raise InvalidToken("malformed token")
    try:
        return _b64decode(segment)
    except binascii.Error:  # pragma: no cover (a canonical segment always decodes)
        raise InvalidToken("malformed token") from None


@cache
def _algorithm(name: str) -> jwt.algorithms.Algorithm:
    return jwt.get_algorithm_by_name(name)


def _verify_signature(signing_input: bytes, signature: bytes, key: VerifyingKey) -> None:
    """PyJWS's signature step for a key pinned to its algorithm: PyJWT's algorithm object
    prepares the key (type and, for ECDSA, curve checked), warns about a short key and verifies
    (ECDSA: raw ``r || s`` of the curve's exact length, else a bad signature)."""
    try:
        algorithm = _algorithm(key.alg)
    except NotImplementedError:
        raise InvalidToken("algorithm not allowed for this key") from None
    try:
        prepared = algorithm.prepare_key(key.public)
        weak = algorithm.check_key_length(prepared)
        if weak:
            warnings.warn(weak, jwt.InsecureKeyLengthWarning, stacklevel=3)
        valid = algorithm.verify(signing_input, prepared, signature)
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None
    except (ValueError, TypeError, OverflowError):
        raise InvalidToken("malformed token") from None
    if not valid:
        raise InvalidToken("bad signature")


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
