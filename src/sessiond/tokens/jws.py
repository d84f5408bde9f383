"""Compact JWS (RFC 7515 section 7.1), read as hostile input: the framing of an access token.

A token is three non-empty segments of the unpadded base64url alphabet joined by dots, and
nothing else. Each segment must be the canonical encoding of its bytes (the unused low bits of
the last character are zero), so a signed token has exactly one spelling. The header may hold
only ``alg``, ``typ`` and ``kid``: a member this code does not understand (``crit``, ``b64``,
``jku``, ``x5u``, ...) is refused rather than ignored. The signature is checked with PyJWT's
algorithm object for the key's own algorithm, which the header's ``alg`` must already equal.
Every failure is an :class:`~sessiond.errors.InvalidToken` with a short fixed detail.
"""

from __future__ import annotations

import binascii
import re
import warnings
from functools import cache, lru_cache
from typing import Final, Protocol

import jwt
import msgspec

from sessiond.errors import InvalidToken
from sessiond.tokens.keys import PublicKey

__all__ = ["VerifyingKey", "header_kid_alg", "segments", "verified_payload"]

_SEGMENTS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", re.ASCII)
_HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})


class VerifyingKey(Protocol):
    """What verifying needs of a key: its algorithm (pinned) and its public key."""

    @property
    def alg(self) -> str: ...
    @property
    def public(self) -> PublicKey: ...


def segments(token: str) -> tuple[bytes, bytes, bytes]:
    """The header, payload and signature segments of ``token`` in the compact form."""
    if _SEGMENTS.fullmatch(token) is None:
        raise InvalidToken("malformed token")
    header, payload, signature = token.encode("ascii").split(b".")
    return header, payload, signature


@lru_cache(maxsize=256)
def header_kid_alg(segment: bytes, types: frozenset[str]) -> tuple[str, str]:
    """The ``kid`` and ``alg`` of a header segment whose ``typ`` is one of ``types``.

    Checks everything that needs no key; the segment's canonical spelling is checked by
    :func:`verified_payload`, after the key lookup. Memoized (a pure function of its arguments;
    failures are not cached): the tokens of one key share their header, so a new token usually
    skips this parsing.
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
    if not isinstance(typ, str) or typ not in types:
        raise InvalidToken("not an access token (typ)")
    if not isinstance(kid, str) or not isinstance(alg, str):
        raise InvalidToken("malformed header")
    return kid, alg


def verified_payload(header: bytes, payload: bytes, signature: bytes, key: VerifyingKey) -> bytes:
    """The payload bytes, once every segment is canonical and the signature verifies with
    ``key`` (whose algorithm the caller matched against the header's ``alg``)."""
    if not _is_canonical(header):
        raise InvalidToken("malformed token")
    raw = _canonical_bytes(payload)
    _verify_signature(b".".join((header, payload)), _canonical_bytes(signature), key)
    return raw


# The characters that may end an unpadded base64url segment of length 2 or 3 (mod 4): those
# whose bits past the last whole byte are zero (RFC 4648 section 3.5).
_LAST_CHARACTERS: Final = {2: b"AQgw", 3: b"AEIMQUYcgkosw048"}


def _is_canonical(segment: bytes) -> bool:
    """Whether the base64url ``segment`` (already known to be unpadded and of the alphabet) is
    the only encoding of its bytes: the length is not 1 (mod 4) and the unused low bits of the
    last character are zero."""
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
    """Verify with PyJWT's algorithm object for the key's pinned algorithm: it prepares the key
    (type and, for ECDSA, curve checked), warns about a short key and verifies (ECDSA: raw
    ``r || s`` of the curve's exact length, else a bad signature)."""
    try:
        algorithm = _algorithm(key.alg)
    except NotImplementedError:
        raise InvalidToken("algorithm not allowed for this key") from None
    try:
        prepared = algorithm.prepare_key(key.public)
        weak = algorithm.check_key_length(prepared)
        if weak:
            # Attributed to the caller of AccessTokenDecoder.decode.
            warnings.warn(weak, jwt.InsecureKeyLengthWarning, stacklevel=4)
        valid = algorithm.verify(signing_input, prepared, signature)
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None
    except (ValueError, TypeError, OverflowError):
        raise InvalidToken("malformed token") from None
    if not valid:
        raise InvalidToken("bad signature")
