"""The verifier engine: what a resource server does with every access token it receives.

It checks the signature against the keyset (algorithm pinned per key), the claims, and the
local denylist; it never asks the session store while the denylist is current. When the
denylist has been stale for longer than the budget (I2), the configured policy decides:

- ``fail_closed`` (default): reject with ``DenylistStale`` (503), since a revocation may be
  missing;
- ``fallback``: ask the session store whether the token's session still exists (revocations
  of single tokens made during the outage are not covered by that check);
- ``fail_open``: accept, log a warning, and count it.

Framework adapters sit beside this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from sessiond.denylist.denylist import Denylist
from sessiond.errors import ConfigError, DenylistStale, TokenRevoked
from sessiond.settings import StalePolicy
from sessiond.tokens.access import AccessClaims, AccessTokenDecoder

log = logging.getLogger("sessiond.verifier")

#: Whether the session of these claims still exists, asked only under the fallback policy.
SessionCheck = Callable[[AccessClaims], Awaitable[bool]]


class Verifier:
    """Turns a bearer token into trusted claims or raises ``InvalidToken``/``DenylistStale``."""

    def __init__(
        self,
        decoder: AccessTokenDecoder,
        denylist: Denylist,
        *,
        staleness: Callable[[float], float] = lambda now: 0.0,
        budget: float = 1.0,
        policy: StalePolicy = "fail_closed",
        session_exists: SessionCheck | None = None,
        on_stale: Callable[[StalePolicy, bool], None] | None = None,
    ) -> None:
        if policy == "fallback" and session_exists is None:
            raise ConfigError("SESSIOND_STALE_POLICY=fallback needs a session store to ask")
        self._decoder = decoder
        self._denylist = denylist
        self._staleness = staleness
        self._budget = budget
        self._policy = policy
        self._session_exists = session_exists
        self._on_stale = on_stale

    async def verify(self, token: str) -> AccessClaims:
        """The token's claims if it is valid and not revoked."""
        claims = self._decoder.decode(token)
        revoked = self._denylist.denies(claims)
        if revoked is not None:
            raise TokenRevoked(f"the token's {revoked} was revoked")
        if self._staleness(time.time()) > self._budget:
            await self._when_stale(claims)
        return claims

    async def _when_stale(self, claims: AccessClaims) -> None:
        accepted = self._policy == "fail_open"
        if self._policy == "fallback" and self._session_exists is not None:
            accepted = await self._session_exists(claims)
        if self._on_stale is not None:
            self._on_stale(self._policy, accepted)
        if accepted:
            if self._policy == "fail_open":
                log.warning("denylist stale: token %s accepted (fail_open)", claims.jti)
            return
        if self._policy == "fallback":
            raise TokenRevoked("the token's session no longer exists")
        raise DenylistStale("the revocation list is not current; try again shortly")
