"""A resource backend's copy of the authority's published keys (its JWK Set, RFC 7517).

The authority publishes only keys that may verify now (staged, active, or retired within the
longest token lifetime), so a published key verifies until the next fetch drops it. Each JWK
is read as hostile input: it must name a ``kid`` and one of the asymmetric algorithms sessiond
signs with (``ES256``, ``EdDSA``, ``RS256``), carry a key of that algorithm's type (checked by
PyJWT's ``PyJWK``), say ``use: sig`` if it says ``use`` at all, and never be symmetric: a
verifier that took an ``oct`` key from a JWKS could be handed any HMAC secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from sessiond.errors import ConfigError
from sessiond.tokens.keys import PublicKey

__all__ = ["PublishedKey", "PublishedKeys"]

_ALGORITHMS: Final = frozenset({"ES256", "EdDSA", "RS256"})
_MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """One published verification key, pinned to its algorithm."""

    kid: str
    alg: str
    public: PublicKey


@dataclass(frozen=True, slots=True)
class PublishedKeys:
    """The keys of one JWKS document, by ``kid``: a :class:`~sessiond.tokens.access.KeyLookup`."""

    by_kid: Mapping[str, PublishedKey]

    @classmethod
    def from_jwks(cls, document: object) -> PublishedKeys:
        """Read a JWK Set; raise :class:`ConfigError` saying what is wrong with it."""
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise ConfigError("JWKS: not a JWK Set (no 'keys' list)")
        by_kid: dict[str, PublishedKey] = {}
        for jwk in keys:
            key = _read(jwk)
            if key.kid in by_kid:
                raise ConfigError(f"JWKS: duplicate kid {key.kid!r}")
            by_kid[key.kid] = key
        return cls(by_kid)

    def verification_key(self, kid: str, now: float, retain: float) -> PublishedKey | None:
        """The published key ``kid``; ``now`` and ``retain`` are the authority's business."""
        return self.by_kid.get(kid)


def _read(jwk: Any) -> PublishedKey:
    if not isinstance(jwk, dict):
        raise ConfigError("JWKS: a key is not a JSON object")
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not kid:
        raise ConfigError("JWKS: a key has no kid")
    if alg not in _ALGORITHMS:
        raise ConfigError(f"JWKS: key {kid!r}: algorithm {alg!r} is not one sessiond signs with")
    if jwk.get("use", "sig") != "sig" or jwk.get("kty") == "oct":
        raise ConfigError(f"JWKS: key {kid!r} is not an asymmetric signing key")
    try:
        public = jwt.PyJWK(jwk, algorithm=alg).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"JWKS: key {kid!r}: {exc}") from None
    if hasattr(public, "private_bytes"):
        raise ConfigError(f"JWKS: key {kid!r} is a private key; publish only public keys")
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < _MIN_RSA_BITS:
        raise ConfigError(f"JWKS: key {kid!r}: RSA keys must have at least 2048 bits")
    return PublishedKey(kid=kid, alg=alg, public=public)
