"""DPoP nonces (RFC 9449 sections 8 and 9): values a server hands out and then wants in every
proof, so that a proof cannot be made in advance for later use.

Every replica must accept every replica's nonce without storing any: a nonce is the HMAC-SHA256,
under a secret the replicas share (``SESSIOND_DPOP_NONCE_SECRET``), of the number of the current
time window (``window`` seconds long). A nonce is accepted in its window and the next, so it
lives between one and two windows; a client asked for a new one (``use_dpop_nonce``) retries.
"""

from __future__ import annotations

import base64
import hmac
from typing import Final

__all__ = ["DpopNonces"]

_CONTEXT: Final = b"sessiond/dpop-nonce\x00"


class DpopNonces:
    """Issues and checks the nonces of one ``secret``, a new one every ``window`` seconds."""

    def __init__(self, secret: bytes, window: float) -> None:
        self._secret = secret
        self._window = window

    def current(self, now: float) -> str:
        """The nonce to hand out at ``now``."""
        return self._nonce(int(now // self._window))

    def accepts(self, nonce: str | None, now: float) -> bool:
        """Whether ``nonce`` is the current one or the one before it."""
        if nonce is None:
            return False
        index = int(now // self._window)
        return any(hmac.compare_digest(nonce, self._nonce(i)) for i in (index, index - 1))

    def _nonce(self, index: int) -> str:
        mac = hmac.new(self._secret, _CONTEXT + index.to_bytes(8, "big", signed=True), "sha256")
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")
