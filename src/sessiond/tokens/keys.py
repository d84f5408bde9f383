"""Signing keys with ids, and the keyset that holds the active key and recently retired ones.

The active key signs; a retired key still verifies for ``retain`` seconds after it was retired
(the longest access-token lifetime plus leeway), so a rotation needs no downtime. Every key is
pinned to one algorithm: a verifier never takes the algorithm from a token header, and a keyset
never mixes HMAC (HS256) with asymmetric keys, since a verifier that accepts both can be fooled
into checking an HMAC made with a public key as the secret (key confusion, CVE-2022-29217).

Keysets are stored as JSON (``Keyset.save``/``Keyset.load``), private keys as PKCS#8 PEM and
HS256 secrets as base64url, in a file of mode 0600 that is replaced atomically.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, TypeAlias, cast

import jwt
import msgspec
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sessiond.errors import ConfigError
from sessiond.files import read_json, write_json
from sessiond.settings import Algorithm

__all__ = [
    "HMAC_SECRET_BYTES",
    "JWKS_MAX_AGE",
    "ROTATION_DELAY",
    "RSA_KEY_BITS",
    "Algorithm",
    "KeyStatus",
    "Keyset",
    "PrivateKey",
    "PublicKey",
    "SigningKey",
]

PrivateKey: TypeAlias = (
    ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | bytes
)
PublicKey: TypeAlias = (
    ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey | bytes
)
KeyStatus = Literal["staged", "active", "retired", "expired"]

#: Length of a generated HS256 secret (256 bits, the SHA-256 output size, RFC 7518 section 3.2).
HMAC_SECRET_BYTES = 32
#: Modulus size of generated RS256 keys (NIST SP 800-57: acceptable through 2030; keys rotate).
RSA_KEY_BITS = 2048
_MIN_RSA_BITS = 2048
_KID_BYTES = 12  # 16 url-safe characters

#: Seconds the published JWKS may be cached (its ``Cache-Control: max-age``).
JWKS_MAX_AGE: Final = 60
#: Seconds a new key is published before it signs (``sessiond keys rotate``'s default): a
#: verifier that caches the JWKS for max-age, even a copy a shared cache already held for
#: max-age, and then waits out a refetch cooldown (node ``jose``: 30 s; sessiond's: 10 s) has
#: the new key before the first token it signs, with a minute to spare for every replica of
#: the authority to read the new keyset file.
ROTATION_DELAY: Final = 2 * JWKS_MAX_AGE + 30 + 60
_FILE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key, pinned to one algorithm. For HS256 ``private`` and ``public`` are the secret.

    Key material is kept out of ``repr`` and comparisons so that it never lands in a log.
    """

    kid: str
    alg: Algorithm
    private: PrivateKey = field(repr=False, compare=False)
    public: PublicKey = field(repr=False, compare=False)
    created_at: float
    retired_at: float | None = None
    signs_from: float = 0.0

    def __post_init__(self) -> None:
        if self.symmetric and len(cast(bytes, self.private)) < HMAC_SECRET_BYTES:
            raise ConfigError(f"key {self.kid}: HS256 secret is shorter than 256 bits")

    @classmethod
    def generate(cls, alg: Algorithm, now: float, signs_from: float = 0.0) -> SigningKey:
        """A new random key for ``alg`` with a new random ``kid``."""
        private = _generate_private(alg)
        return cls(
            kid=secrets.token_urlsafe(_KID_BYTES),
            alg=alg,
            private=private,
            public=_public_of(private),
            created_at=now,
            signs_from=signs_from,
        )

    @property
    def symmetric(self) -> bool:
        """True for HMAC keys, whose secret must never be published."""
        return self.alg == "HS256"

    def retire(self, now: float) -> SigningKey:
        """This key, retired at ``now`` (no-op if it already was)."""
        if self.retired_at is not None:
            return self
        return dataclasses.replace(self, retired_at=now)

    def verifies_at(self, now: float, retain: float) -> bool:
        """True while this key may verify: not retired, or retired less than ``retain`` ago."""
        return self.retired_at is None or now < self.retired_at + retain

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (RFC 7517) of an asymmetric key, with ``kid``, ``alg`` and ``use``."""
        if self.symmetric:
            raise ConfigError(f"key {self.kid}: an HS256 secret has no public form")
        jwk: dict[str, Any] = dict(jwt.get_algorithm_by_name(self.alg).to_jwk(self.public, True))
        jwk.pop("key_ops", None)  # RFC 7517 4.3: "use" and "key_ops" should not both appear
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def _generate_private(alg: Algorithm) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return _generate_secret()


def _generate_secret() -> bytes:
    hmac_alg = jwt.get_algorithm_by_name("HS256")
    while True:
        secret = secrets.token_bytes(HMAC_SECRET_BYTES)
        # PyJWT refuses secrets that look like PEM/DER/JWK; random bytes almost never do.
        with contextlib.suppress(jwt.InvalidKeyError):
            hmac_alg.prepare_key(secret)
            return secret


def _public_of(private: PrivateKey) -> PublicKey:
    if isinstance(private, bytes):
        return private
    return private.public_key()


@dataclass(frozen=True, slots=True)
class Keyset:
    """An immutable set of signing keys: exactly one active key, the others retired.

    Raises :class:`ConfigError` on an inconsistent set (no or duplicate ids, an active id not
    in the set, a non-active key that was never retired, HS256 mixed with asymmetric keys).
    """

    active_kid: str
    keys: tuple[SigningKey, ...]
    _by_kid: Mapping[str, SigningKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kid = {key.kid: key for key in self.keys}
        if len(by_kid) != len(self.keys):
            raise ConfigError("keyset: duplicate key id")
        active = by_kid.get(self.active_kid)
        if active is None:
            raise ConfigError(f"keyset: active key {self.active_kid!r} is not in the set")
        if active.retired_at is not None:
            raise ConfigError(f"keyset: active key {self.active_kid!r} is retired")
        if any(k.retired_at is None for k in self.keys if k.kid != self.active_kid):
            raise ConfigError("keyset: every key but the active one must be retired")
        if len({key.symmetric for key in self.keys}) > 1:
            raise ConfigError(
                "keyset: HS256 cannot be mixed with asymmetric keys (key confusion); "
                "rotate with a retention and a delay of 0 to switch families"
            )
        object.__setattr__(self, "_by_kid", by_kid)

    @property
    def active(self) -> SigningKey:
        """The newest key: it signs new tokens from its ``signs_from`` on."""
        return self._by_kid[self.active_kid]

    def signing_key(self, now: float) -> SigningKey:
        """The key that signs at ``now``: the active one, or while it is still staged (see
        :meth:`rotate`), the one it replaces."""
        if self.active.signs_from <= now:
            return self.active
        replaced = [
            k for k in self.keys if k.retired_at is not None and k.signs_from <= now < k.retired_at
        ]
        return max(replaced, key=lambda k: k.created_at, default=self.active)

    @classmethod
    def generate(cls, alg: Algorithm = "ES256", now: float | None = None) -> Keyset:
        """A keyset of one new active key."""
        key = SigningKey.generate(alg, time.time() if now is None else now)
        return cls(active_kid=key.kid, keys=(key,))

    def rotate(
        self, now: float, alg: Algorithm | None = None, *, retain: float, delay: float = 0.0
    ) -> Keyset:
        """A new active key (same algorithm by default) that signs from ``now + delay``; the
        old one keeps signing until then and is retired at that moment. ``delay`` 0 (a key
        compromise) switches at once; :data:`ROTATION_DELAY` is safe for every verifier.

        The new key verifies (and is in the JWKS) at once, so a ``delay`` longer than it takes
        every replica to see the new file (a Kubernetes Secret: about a minute) means no replica
        ever meets a token signed by a key it does not know yet. Keys that no longer verify
        (retired ``retain`` seconds or more ago) are dropped.
        """
        switch = now + delay
        new = SigningKey.generate(alg or self.active.alg, now, signs_from=switch)
        kept = (key.retire(switch) for key in self.keys)
        return Keyset(
            active_kid=new.kid, keys=(new, *(k for k in kept if k.verifies_at(now, retain)))
        )

    def verification_key(self, kid: str, now: float, retain: float) -> SigningKey | None:
        """The key ``kid`` if it may verify at ``now``: active, or retired < ``retain`` ago."""
        key = self._by_kid.get(kid)
        if key is None or not key.verifies_at(now, retain):
            return None
        return key

    def status(self, key: SigningKey, now: float, retain: float) -> KeyStatus:
        """``staged`` (verifies, signs later), ``active`` (signs now), ``retired`` (still
        verifies) or ``expired`` (verifies no more)."""
        if key is self.signing_key(now):
            return "active"
        if key.kid == self.active_kid:
            return "staged"
        return "retired" if key.verifies_at(now, retain) else "expired"

    def jwks(self, now: float, retain: float) -> dict[str, list[dict[str, Any]]]:
        """The public JWK Set of every key that may verify at ``now``; HS256 keys never appear."""
        return {
            "keys": [
                key.public_jwk()
                for key in self.keys
                if not key.symmetric and key.verifies_at(now, retain)
            ]
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keyset:
        """Read a keyset file; any problem raises :class:`ConfigError` naming the file."""
        stored = read_json(path, _KeysetFile, "keyset file")
        try:
            return cls(active_kid=stored.active, keys=tuple(_from_record(r) for r in stored.keys))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.detail}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write this keyset atomically to ``path`` with mode 0600."""
        stored = _KeysetFile(
            version=_FILE_VERSION,
            active=self.active_kid,
            keys=[_to_record(key) for key in self.keys],
        )
        write_json(path, stored, "keyset file")


# --- file format -------------------------------------------------------------------------


class _KeyRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kid: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    alg: Algorithm
    private: str
    created_at: float
    retired_at: float | None = None
    signs_from: float = 0.0


class _KeysetFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    version: Literal[1]
    active: str
    keys: Annotated[list[_KeyRecord], msgspec.Meta(min_length=1)]


def _to_record(key: SigningKey) -> _KeyRecord:
    if isinstance(key.private, bytes):
        private = base64.urlsafe_b64encode(key.private).rstrip(b"=").decode()
    else:
        private = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    return _KeyRecord(
        kid=key.kid,
        alg=key.alg,
        private=private,
        created_at=key.created_at,
        retired_at=key.retired_at,
        signs_from=key.signs_from,
    )


def _from_record(record: _KeyRecord) -> SigningKey:
    private = _load_private(record)
    return SigningKey(
        kid=record.kid,
        alg=record.alg,
        private=private,
        public=_public_of(private),
        created_at=record.created_at,
        retired_at=record.retired_at,
        signs_from=record.signs_from,
    )


def _load_private(record: _KeyRecord) -> PrivateKey:
    if record.alg == "HS256":
        return _load_secret(record)
    try:
        private = serialization.load_pem_private_key(record.private.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"key {record.kid}: not a readable PKCS#8 PEM private key") from None
    if not _fits(record.alg, private):
        raise ConfigError(f"key {record.kid}: the private key does not fit {record.alg}")
    return cast(PrivateKey, private)


def _fits(alg: Algorithm, private: object) -> bool:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return alg == "ES256" and isinstance(private.curve, ec.SECP256R1)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return alg == "EdDSA"
    if isinstance(private, rsa.RSAPrivateKey):
        return alg == "RS256" and private.key_size >= _MIN_RSA_BITS
    return False


def _load_secret(record: _KeyRecord) -> bytes:
    text = record.private
    try:
        secret = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        raise ConfigError(f"key {record.kid}: HS256 secret is not base64url") from None
    if len(secret) < HMAC_SECRET_BYTES:
        raise ConfigError(f"key {record.kid}: HS256 secret is shorter than 256 bits")
    try:
        jwt.get_algorithm_by_name("HS256").prepare_key(secret)
    except jwt.InvalidKeyError:
        raise ConfigError(f"key {record.kid}: HS256 secret looks like a public key") from None
    return secret
