"""Opaque refresh tokens: ``<sid>.<secret>`` with 256 random bits, kept only as hashes.

The session id in front lets the store find the record without an index on hashes; the
secret is what proves possession. :func:`mask` and :func:`unmask` let the store keep the
successor of a rotated token readable only by whoever presents its predecessor (the grace
window for concurrent refreshes) without ever storing a usable token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from sessiond.errors import InvalidGrant

_SECRET_BYTES = 32
_FORMAT = re.compile(r"([0-9a-f]{32})\.([A-Za-z0-9_-]{43})")


class RefreshToken:
    """A parsed refresh token: the session it belongs to and its secret."""

    __slots__ = ("secret", "sid")

    def __init__(self, sid: str, secret: bytes) -> None:
        self.sid = sid
        self.secret = secret

    @classmethod
    def new(cls, sid: str) -> RefreshToken:
        return cls(sid, secrets.token_bytes(_SECRET_BYTES))

    @classmethod
    def parse(cls, token: str) -> RefreshToken:
        """Parse a presented token; anything malformed is an ``InvalidGrant``."""
        match = _FORMAT.fullmatch(token)
        if match is None:
            raise InvalidGrant("malformed refresh token")
        return cls(match.group(1), base64.urlsafe_b64decode(match.group(2) + "="))

    def __str__(self) -> str:
        return f"{self.sid}.{base64.urlsafe_b64encode(self.secret).rstrip(b'=').decode()}"

    @property
    def hash(self) -> str:
        """What the store keeps instead of the token."""
        return hashlib.sha256(b"sessiond/refresh\x00" + self.secret).hexdigest()

    def mask(self, successor: RefreshToken) -> str:
        """The successor's secret, readable only with this token's secret."""
        return _xor(successor.secret, self._pad()).hex()

    def unmask(self, box: str) -> RefreshToken:
        """The successor that :meth:`mask` hid in ``box``."""
        try:
            masked = bytes.fromhex(box)
        except (ValueError, binascii.Error):
            raise InvalidGrant("refresh token state is corrupt") from None
        return RefreshToken(self.sid, _xor(masked, self._pad()))

    def matches(self, stored_hash: str | None) -> bool:
        return stored_hash is not None and hmac.compare_digest(self.hash, stored_hash)

    def _pad(self) -> bytes:
        return hashlib.sha256(b"sessiond/successor\x00" + self.secret).digest()


def _xor(data: bytes, pad: bytes) -> bytes:
    if len(data) != len(pad):
        raise InvalidGrant("refresh token state is corrupt")
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))
