"""DPoP proofs (RFC 9449): a client shows, request by request, that it holds the private key
its session is bound to.

A proof is a compact JWS the client signs for one HTTP request. :class:`ProofChecker` reads it
as hostile input and refuses it (:class:`~sessiond.errors.InvalidDpopProof`) unless:

- it is at most ``max_bytes`` long and in the compact form (``tokens/jws.py``'s framing);
- its header is ``typ: dpop+jwt``, an asymmetric ``alg`` of :data:`ALGORITHMS` (never ``none``
  nor HMAC) and a ``jwk`` that is a public key of that algorithm (private members refused),
  and nothing else;
- the signature verifies with that ``jwk``;
- ``htm`` is the request's method and ``htu`` its URL, both compared after RFC 3986's
  normalisation (:func:`normalize_url`) and without query and fragment (section 4.3);
- ``iat`` is at most ``max_age`` seconds old and not in the future (``leeway`` both ways);
- ``ath`` is the hash of the access token (:func:`token_hash`) when one is presented, and the
  key's thumbprint (:func:`thumbprint`) is the one the token or session is bound to;
- ``jti`` has not been seen by this checker within the window (:class:`ReplayCache`);
- with ``nonces`` (``SESSIOND_DPOP_NONCE_SECRET``), ``nonce`` is a current one
  (``tokens/dpop_nonces.py``), else :class:`~sessiond.errors.UseDpopNonce` tells the new one.

The checker answers the key's RFC 7638 thumbprint, the ``jkt`` a bound token carries in
``cnf``. Replays are caught per replica: a proof replayed to another replica within its
``max_age`` is refused only by its ``htu``, ``ath`` and binding, which is why the window is short.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa

from sessiond.errors import DPOP_ALGORITHMS, InvalidDpopProof, InvalidToken, UseDpopNonce
from sessiond.tokens import jws
from sessiond.tokens.dpop_nonces import DpopNonces
from sessiond.tokens.keys import PublicKey

__all__ = [
    "ALGORITHMS",
    "PROOF_TYPE",
    "DpopRequest",
    "DpopSettings",
    "ProofChecker",
    "ReplayCache",
    "normalize_url",
    "thumbprint",
    "token_hash",
]

#: The ``typ`` header of a DPoP proof (RFC 9449 section 4.2).
PROOF_TYPE: Final = "dpop+jwt"
#: The proof algorithms accepted: asymmetric only (RFC 9449 section 4.2), as ``algs`` tells.
ALGORITHMS: Final = DPOP_ALGORITHMS
_ALLOWED = frozenset(ALGORITHMS)
_HEADER_MEMBERS = frozenset({"typ", "alg", "jwk"})
#: JWK members that only a private or symmetric key has (RFC 7518 section 6).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: The required members of each key type, which its thumbprint hashes (RFC 7638 section 3.2).
_THUMBPRINT_MEMBERS: Final = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}
_MIN_RSA_BITS = 2048
_MAX_JTI = 256
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: Characters RFC 3986 section 2.3 calls unreserved: never percent-encoded in normal form.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


class DpopSettings(Protocol):
    """The settings a checker is built from, shared by the service's and a backend's."""

    @property
    def dpop_max_age(self) -> int: ...
    @property
    def leeway(self) -> int: ...
    @property
    def max_token_bytes(self) -> int: ...
    @property
    def dpop_nonce_secret(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DpopRequest:
    """What a proof must match: the ``DPoP`` header's value, the method and the URL (the one
    the client sent to; query and fragment are ignored)."""

    proof: str
    method: str
    url: str


class _Claims(msgspec.Struct, frozen=True):
    jti: str
    htm: str
    htu: str
    iat: int | float
    ath: str | None = None
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class _Key:
    alg: str
    public: PublicKey


class ReplayCache:
    """The ``jti`` of the proofs accepted in the last ``ttl`` seconds, at most ``max_entries``.

    Entries are kept in insertion order and all live ``ttl``, so expired ones are always at the
    front. Full, it forgets its oldest entry: a bound on memory that a flood of fresh, valid
    proofs (only a key holder can make them) may trade for a replay window.
    """

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._seen: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def first_use(self, key: str, now: float) -> bool:
        """Record ``key``; whether it was new (not seen within the window)."""
        self._expire(now)
        if key in self._seen:
            return False
        if len(self._seen) >= self._max:
            del self._seen[next(iter(self._seen))]
        self._seen[key] = now + self._ttl
        return True

    def _expire(self, now: float) -> None:
        seen = self._seen
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] > now:
                return
            del seen[oldest]


class ProofChecker:
    """Checks the DPoP proofs of one replica (see the module), with its own replay cache."""

    def __init__(
        self,
        *,
        max_age: float = 60,
        leeway: float = 5,
        max_bytes: int = 8192,
        nonces: DpopNonces | None = None,
    ) -> None:
        self._max_age = max_age
        self._leeway = leeway
        self._max_bytes = max_bytes
        self._nonces = nonces
        # A proof is accepted until iat + max_age + leeway, and iat is at most now + leeway.
        self._replays = ReplayCache(max_age + 2 * leeway)

    @classmethod
    def from_settings(cls, settings: DpopSettings) -> ProofChecker:
        secret = settings.dpop_nonce_secret
        return cls(
            max_age=settings.dpop_max_age,
            leeway=settings.leeway,
            max_bytes=settings.max_token_bytes,
            nonces=DpopNonces(secret.encode(), settings.dpop_max_age) if secret else None,
        )

    def check(
        self,
        request: DpopRequest,
        now: float,
        *,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> str:
        """The thumbprint of the key that signed ``request.proof``, if the proof is valid for
        ``request`` at ``now``, for ``access_token`` (its ``ath``) and, if given, by the key
        whose thumbprint is ``jkt``. Its ``jti`` is then spent."""
        header, payload, signature = self._segments(request.proof)
        key, jwk = _header_key(header)
        try:
            raw = jws.verified_payload(header, payload, signature, key)
        except InvalidToken as exc:
            raise InvalidDpopProof(f"proof: {exc.detail}") from None
        claims = _claims(raw)
        if claims.htm != request.method:
            raise InvalidDpopProof("htm is not the request's method")
        if normalize_url(claims.htu) != normalize_url(request.url):
            raise InvalidDpopProof("htu is not the request's URL")
        if claims.iat > now + self._leeway:
            raise InvalidDpopProof("proof issued in the future")
        if claims.iat < now - self._max_age - self._leeway:
            raise InvalidDpopProof("proof too old")
        if self._nonces is not None and not self._nonces.accepts(claims.nonce, now):
            raise UseDpopNonce("the proof needs the nonce of DPoP-Nonce", self._nonces.current(now))
        if access_token is not None and claims.ath != token_hash(access_token):
            raise InvalidDpopProof("ath is not the access token's hash")
        key_thumbprint = thumbprint(jwk)
        if jkt is not None and key_thumbprint != jkt:
            raise InvalidDpopProof("proof not signed by the key the token is bound to")
        if not self._replays.first_use(f"{key_thumbprint}:{claims.jti}", now):
            raise InvalidDpopProof("proof replayed (jti seen before)")
        return key_thumbprint

    def _segments(self, proof: str) -> tuple[bytes, bytes, bytes]:
        if len(proof) > self._max_bytes:
            raise InvalidDpopProof("proof too large")
        try:
            return jws.segments(proof)
        except InvalidToken:
            raise InvalidDpopProof("malformed proof") from None


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public ``jwk``, base64url: its ``jkt``."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None or not all(isinstance(jwk.get(m), str) for m in members):
        raise InvalidDpopProof("jwk is not a usable public key")
    canonical = msgspec.json.encode({m: jwk[m] for m in members})  # sorted, no whitespace
    return _b64(hashlib.sha256(canonical).digest())


def token_hash(access_token: str) -> str:
    """The ``ath`` of a proof sent with ``access_token``: base64url(SHA-256(token))."""
    return _b64(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


def normalize_url(url: str) -> str:
    """``url`` as RFC 9449 section 4.3 compares ``htu``: scheme and host in lower case, no
    default port, percent-encodings normalised (RFC 3986 section 6.2.2), an empty path as
    ``/``, and no user, query or fragment. A URL that does not parse is returned unchanged,
    so it matches nothing normalised."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if not scheme or not host:
        return url
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    return f"{scheme}://{netloc}{_PERCENT.sub(_normal_escape, parts.path) or '/'}"


def _normal_escape(match: re.Match[str]) -> str:
    byte = int(match.group(1), 16)
    return chr(byte) if byte in _UNRESERVED else f"%{byte:02X}"


def _header_key(segment: bytes) -> tuple[_Key, dict[str, Any]]:
    """The proof's verifying key and its JWK, from a header that passes every rule."""
    try:
        header = msgspec.json.decode(_b64decode(segment))
    except (ValueError, binascii.Error, RecursionError, msgspec.MsgspecError):
        raise InvalidDpopProof("malformed proof header") from None
    if type(header) is not dict:
        raise InvalidDpopProof("malformed proof header")
    if not _HEADER_MEMBERS.issuperset(header):
        raise InvalidDpopProof("unexpected proof header parameter")
    if header.get("typ") != PROOF_TYPE:
        raise InvalidDpopProof("not a DPoP proof (typ)")
    alg, jwk = header.get("alg"), header.get("jwk")
    if not isinstance(alg, str) or alg not in _ALLOWED:
        raise InvalidDpopProof("proof algorithm not allowed")
    if type(jwk) is not dict:
        raise InvalidDpopProof("proof header without a jwk")
    if not _PRIVATE_MEMBERS.isdisjoint(jwk):
        raise InvalidDpopProof("jwk holds private key material")
    try:
        public = jwt.get_algorithm_by_name(alg).from_jwk(jwk)
    except (jwt.PyJWTError, ValueError, TypeError, binascii.Error):
        raise InvalidDpopProof("jwk is not a usable public key") from None
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < _MIN_RSA_BITS:
        raise InvalidDpopProof("jwk is an RSA key shorter than 2048 bits")
    return _Key(alg, public), jwk


def _claims(raw: bytes) -> _Claims:
    try:
        claims = msgspec.json.decode(raw, type=_Claims)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        raise InvalidDpopProof("proof claims missing or of the wrong type") from None
    if not 0 < len(claims.jti) <= _MAX_JTI:
        raise InvalidDpopProof("proof jti missing or too long")
    return claims


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
