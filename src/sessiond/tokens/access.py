"""Access tokens: a JWS (``tokens/jws.py``) whose payload is :class:`AccessClaims`
(``tokens/claims.py``), in the RFC 9068 profile (header ``typ: at+jwt`` and ``kid``).

Decoding treats the token as hostile: the size is capped before anything is parsed, the key is
chosen by the header's ``kid`` and its algorithm is pinned (the header's ``alg`` must equal it),
the signature is checked, and only then the payload is read. Every failure is an
:class:`~sessiond.errors.InvalidToken` with a short fixed detail that never quotes the token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import jwt

from sessiond.errors import InvalidToken, UnknownSigningKey
from sessiond.tokens import jws
from sessiond.tokens.claims import AccessClaims, ClaimRules, Confirmation, check_custom_claims
from sessiond.tokens.jws import VerifyingKey
from sessiond.tokens.keys import SigningKey

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "AccessTokenDecoder",
    "KeyLookup",
    "TokenSettings",
    "key_retention",
    "sign_access_token",
]

#: The ``typ`` header of an access token (RFC 9068 section 2.1).
ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 (a media type, not a secret)
_ACCEPTED_TYPES = frozenset({ACCESS_TOKEN_TYPE, "application/at+jwt"})
_JTI_BYTES = 16  # 128 bits


def sign_access_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    sub: str,
    sid: str,
    scope: str | None = None,
    client_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
    ttl: int,
    now: float,
    acr: str | None = None,
    amr: Sequence[str] = (),
    auth_time: float | None = None,
    jkt: str | None = None,
) -> tuple[str, AccessClaims]:
    """Sign a new access token with ``key``; return it and its claims.

    ``iat`` is ``int(now)`` and ``exp`` is ``iat + ttl``; ``jti`` is 128 random bits.
    ``client_id`` (RFC 9068) names the service credential that created the session.
    ``acr``, ``amr`` (left out when empty) and ``auth_time`` (whole seconds) say how the
    subject authenticated. ``jkt``, the thumbprint of a client's key, binds the token to it
    (``cnf``, RFC 9449 section 6).
    Raises :class:`~sessiond.errors.ClaimNotAllowed` if ``extra`` uses a reserved claim name.
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
        client_id=client_id,
        acr=acr,
        amr=tuple(amr) or None,
        auth_time=None if auth_time is None else int(auth_time),
        cnf=None if jkt is None else Confirmation(jkt),
        extra=custom,
    )
    headers = {"alg": key.alg, "typ": ACCESS_TOKEN_TYPE, "kid": key.kid}
    token = jwt.encode(claims.payload(), key.private, algorithm=key.alg, headers=headers)
    return token, claims


class KeyLookup(Protocol):
    """Finds the key of a ``kid``: a :class:`~sessiond.tokens.keys.Keyset` (the authority's
    file) or a :class:`~sessiond.tokens.jwks.PublishedKeys` (a backend's copy of the JWKS)."""

    def verification_key(self, kid: str, now: float, retain: float) -> VerifyingKey | None: ...


class TokenSettings(Protocol):
    """The settings a decoder is built from, which the service's
    :class:`~sessiond.settings.Settings` and a backend's
    :class:`~sessiond.verifier.settings.VerifierSettings` share (same names, same meaning)."""

    @property
    def issuer(self) -> str: ...
    @property
    def audience(self) -> str: ...
    @property
    def access_ttl(self) -> int: ...
    @property
    def leeway(self) -> int: ...
    @property
    def max_token_bytes(self) -> int: ...


def key_retention(settings: TokenSettings) -> int:
    """How long a retired key keeps verifying: the longest a token it signed can live."""
    return settings.access_ttl + settings.leeway


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
        self._claims = ClaimRules(issuer=issuer, audience=audience, leeway=leeway)
        self._max_bytes = max_bytes
        self._retain = retain

    @classmethod
    def from_settings(
        cls, settings: TokenSettings, keyset_getter: Callable[[], KeyLookup]
    ) -> AccessTokenDecoder:
        """The decoder of the service or of a backend's verifier, configured alike."""
        return cls(
            keyset_getter,
            issuer=settings.issuer,
            audience=settings.audience,
            leeway=settings.leeway,
            max_bytes=settings.max_token_bytes,
            retain=key_retention(settings),
        )

    def decode(self, token: str, now: float | None = None) -> AccessClaims:
        """The verified claims of ``token``; raise :class:`InvalidToken` for anything wrong.

        The steps, in order (each failure stops there): size cap; the compact form; the header
        (its members and ``typ``; the key by ``kid``, its ``alg`` pinned); every segment
        canonical; the signature; only then the payload's claims and times. So an unsigned or
        forged token learns nothing about which claim check it would have failed.
        """
        if not isinstance(token, str):
            raise InvalidToken("malformed token")
        if len(token) > self._max_bytes:
            raise InvalidToken("token too large")
        header, payload, signature = jws.segments(token)
        now = time.time() if now is None else now
        kid, alg = jws.header_kid_alg(header, _ACCEPTED_TYPES)
        key = self._key_for(kid, alg, now)
        return self._claims.read(jws.verified_payload(header, payload, signature, key), now)

    def check_expiry(self, claims: AccessClaims, now: float) -> None:
        """Raise :class:`InvalidToken` if ``claims`` expired at ``now`` (leeway included): the
        one check a token verified before (and cached) still needs."""
        self._claims.check_expiry(claims, now)

    def _key_for(self, kid: str, alg: str, now: float) -> VerifyingKey:
        key = self._keyset().verification_key(kid, now, self._retain)
        if key is None:
            raise UnknownSigningKey("unknown signing key")
        if alg != key.alg:
            raise InvalidToken("algorithm not allowed for this key")
        return key
