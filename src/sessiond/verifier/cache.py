"""Tokens already verified, so that a token seen before costs one dictionary lookup.

The key is the whole token string, never a hash of its signature: ECDSA signatures are
malleable, so a rewritten signature is another token and is verified again from scratch
(revocation matches ``jti``/``sid``, which a rewrite cannot change). An entry remembers the
key set it was verified with; once the keys change (a reload or a JWKS fetch), entries verified
before are verified again, so a key withdrawn from the JWKS stops every token it signed.

The cache is bounded: when full, the oldest entry is dropped (insertion order), which costs
nothing on a hit, unlike least-recently-used bookkeeping. Expiry and the denylist are checked
by the verifier on every hit.
"""

from __future__ import annotations

from sessiond.tokens.access import KeyLookup
from sessiond.tokens.claims import AccessClaims

DEFAULT_SIZE = 10_000


class TokenCache:
    """At most ``size`` verified tokens with their claims (``size`` 0 disables caching)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: dict[str, tuple[AccessClaims, KeyLookup]] = {}

    def get(self, token: str, keys: KeyLookup) -> AccessClaims | None:
        """The claims of ``token`` if it was verified with ``keys``."""
        entry = self._entries.get(token)
        if entry is None or entry[1] is not keys:
            return None
        return entry[0]

    def put(self, token: str, claims: AccessClaims, keys: KeyLookup) -> None:
        entries = self._entries
        if token not in entries and len(entries) >= self.size:
            if self.size == 0:
                return
            del entries[next(iter(entries))]
        entries[token] = (claims, keys)

    def discard(self, token: str) -> None:
        self._entries.pop(token, None)

    def __len__(self) -> int:
        return len(self._entries)
