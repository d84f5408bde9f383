"""The verifier engine: what a resource server does with every access token it receives.

It checks the signature against the keyset (algorithm pinned per key), the claims, and the
local denylist; it never asks the session store. Framework adapters sit beside this module.
"""

from __future__ import annotations

from sessiond.denylist.denylist import Denylist
from sessiond.errors import TokenRevoked
from sessiond.tokens.access import AccessClaims, AccessTokenDecoder


class Verifier:
    """Turns a bearer token into trusted claims or raises ``InvalidToken``."""

    def __init__(self, decoder: AccessTokenDecoder, denylist: Denylist) -> None:
        self._decoder = decoder
        self._denylist = denylist

    async def verify(self, token: str) -> AccessClaims:
        """The token's claims if it is valid and not revoked."""
        claims = self._decoder.decode(token)
        revoked = self._denylist.denies(claims)
        if revoked is not None:
            raise TokenRevoked(f"the token's {revoked} was revoked")
        return claims
