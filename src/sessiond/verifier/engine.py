"""The verifier engine: what the service and every resource backend do with an access token.

``await verifier.verify(token)`` returns the token's :class:`AccessClaims` or raises an
:class:`~sessiond.errors.InvalidToken` (401, ``RevokedToken`` for a revoked one) or an
:class:`~sessiond.errors.Unavailable` (503). It checks, in this order:

1. the token cache: a token verified before (with the same keys) skips the signature and
   claim checks and costs a dictionary lookup plus the expiry check;
2. otherwise the signature against the keys (algorithm pinned per key) and the claims; a token
   naming an unknown ``kid`` makes the key source look for new keys once (rate-limited) before
   it is rejected, so key rotation needs no restart;
3. the local denylist, fed by the revocation stream: no store lookup while it is current;
4. the staleness policy, when the denylist has been stale longer than the budget (I2):

   - ``fail_closed`` (default): reject with ``DenylistStale`` (503), since a revocation may be
     missing;
   - ``fallback``: ask ``session_exists`` whether the token's session still exists (single
     token revocations made during the outage are not covered by that check);
   - ``fail_open``: accept, log a warning, and count it;

5. the sender: a token bound to a client's key (``cnf.jkt``, DPoP) needs
   ``verify(token, DpopRequest(proof, method, url))``, a proof by that key for this very
   request (``tokens/dpop.py``; its ``jti`` is then spent on this replica), and is refused
   without one; an unbound token is refused with one. A bearer token pays one attribute check.

The same engine serves the sessiond service (its keys come from the keyset file, its denylist
from the service's own bus) and backends (:meth:`Verifier.from_settings`: keys from the JWKS,
denylist from a follower that reads the stream, checks each event's signature with the same
keys, and sends receipts; ``async with`` starts it and closes it). Framework adapters sit
beside this module: ``asgi.py`` (any ASGI app) and ``litestar.py`` (a plugin).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final, Self

from sessiond.broadcast.access import NatsAccess
from sessiond.broadcast.base import RevocationBus
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.signing import EventVerifier
from sessiond.broadcast.stream import StreamSpec, cancel_task
from sessiond.denylist.denylist import Denylist
from sessiond.errors import (
    ConfigError,
    DenylistStale,
    DpopTokenMisused,
    InvalidToken,
    KeysUnavailable,
    RevokedToken,
    UnknownSigningKey,
)
from sessiond.settings import StalePolicy, acr_order
from sessiond.tokens.access import AccessTokenDecoder
from sessiond.tokens.assurance import AcrLevels, Assurance
from sessiond.tokens.claims import AccessClaims
from sessiond.tokens.dpop import DpopRequest, ProofChecker
from sessiond.verifier.cache import DEFAULT_SIZE, TokenCache
from sessiond.verifier.keys import KeySource, LocalKeys, RemoteJwks
from sessiond.verifier.live import LiveConnections
from sessiond.verifier.settings import VerifierSettings

log = logging.getLogger("sessiond.verifier")
#: What :meth:`Verifier.inspect` passes for ``dpop``: no sender check.
_INSPECTION: Final = DpopRequest("", "", "")

#: Whether the session of these claims still exists, asked only under the fallback policy.
SessionCheck = Callable[[AccessClaims], Awaitable[bool]]
#: How often expired denylist entries are dropped (I5).
PRUNE_INTERVAL = 2.0


class Verifier:
    """Turns a bearer token into trusted claims, or raises a :class:`SessiondError`.

    ``bus``, if given, is owned: :meth:`start` starts it and :meth:`aclose` closes it, and its
    staleness is the denylist's. The service passes ``staleness`` instead, since its bus also
    publishes and is the service's to run. ``clock`` judges ``iat`` and ``exp``; the service's
    raises while its skew from Redis is too large.
    """

    def __init__(
        self,
        decoder: AccessTokenDecoder,
        keys: KeySource,
        denylist: Denylist,
        *,
        bus: RevocationBus | None = None,
        staleness: Callable[[float], float] | None = None,
        budget: float = 1.0,
        policy: StalePolicy = "fail_closed",
        session_exists: SessionCheck | None = None,
        on_stale: Callable[[StalePolicy, bool], None] | None = None,
        cache_size: int = DEFAULT_SIZE,
        clock: Callable[[], float] = time.time,
        acr_levels: AcrLevels | None = None,
        proofs: ProofChecker | None = None,
    ) -> None:
        if policy == "fallback" and session_exists is None:
            raise ConfigError("SESSIOND_STALE_POLICY=fallback needs a session store to ask")
        self.keys = keys
        self.denylist = denylist
        self.live = LiveConnections(denylist)
        self.cache = TokenCache(cache_size)
        self._decoder = decoder
        self._bus = bus
        self._staleness = staleness or (bus.staleness if bus else lambda now: 0.0)
        self._budget = budget
        self._policy = policy
        self._session_exists = session_exists
        self._on_stale = on_stale
        self._clock = clock
        #: The order of ``acr`` values that :meth:`assurance` requirements rank by.
        self.acr_levels = acr_levels or AcrLevels()
        #: Checks the DPoP proofs of bound tokens, and remembers their ``jti`` (this replica's).
        self.proofs = proofs or ProofChecker()
        self._housekeeping: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: VerifierSettings,
        *,
        session_exists: SessionCheck | None = None,
        name: str = "sessiond-verifier",
    ) -> Verifier:
        """A backend's verifier: keys from the JWKS (or a keyset file), revocations from a
        follower that reads the stream (and sends receipts). ``name``: its NATS connection."""
        keys: KeySource
        if settings.jwks_url is not None:
            keys = RemoteJwks(
                settings.jwks_url,
                cooldown=settings.jwks_cooldown,
                refresh_every=settings.jwks_refresh,
            )
        else:
            keys = LocalKeys.load(settings.keyset_file)
        if settings.nats_url is None:
            raise ConfigError("SESSIOND_NATS_URL: required")
        denylist = Denylist()
        spec = StreamSpec(
            name=settings.nats_stream,
            subject_prefix=settings.nats_subject,
            max_age=0.0,  # not ours to set: the stream is read, never created or updated
            duplicate_window=0.0,
            managed=False,
        )
        bus = JetStreamBus(
            settings.nats_url,
            spec,
            denylist,
            verifier=EventVerifier.from_settings(settings, keys),  # the tokens' keys
            name=name,
            budget=settings.staleness_budget,
            confirm=False,  # it never publishes
            access=NatsAccess.from_settings(settings),
        )
        return cls(
            AccessTokenDecoder.from_settings(settings, keys.current),
            keys,
            denylist,
            bus=bus,
            budget=settings.staleness_budget,
            policy=settings.stale_policy,
            session_exists=session_exists,
            cache_size=settings.token_cache_size,
            acr_levels=AcrLevels(acr_order(settings.acr_levels)),
            proofs=ProofChecker.from_settings(settings),
        )

    async def verify(self, token: str, dpop: DpopRequest | None = None) -> AccessClaims:
        """The token's claims if it is valid and not revoked, and sent as its binding says: a
        token bound to a key (``cnf``) only with ``dpop``, a proof by that key for this
        request (RFC 9449 section 7.1), an unbound token only without."""
        now = self._clock()
        keys = self.keys.current()
        claims = self.cache.get(token, keys)
        if claims is None:
            claims = await self._first_sight(token, now)
        else:
            try:
                self._decoder.check_expiry(claims, now)
            except InvalidToken:
                self.cache.discard(token)
                raise
        revoked = self.denylist.denies(claims)
        if revoked is not None:
            raise RevokedToken(
                f"the token's {revoked.kind} was revoked",
                reason_code=revoked.reason_code,
                reason=revoked.reason,
            )
        if self._staleness(now) > self._budget:
            await self._when_stale(claims)
        if claims.cnf is not None or dpop is not None:
            self._check_sender(token, claims, dpop, now)
        return claims

    async def inspect(self, token: str) -> AccessClaims:
        """:meth:`verify` without the sender check: for the authority's introspection and
        revocation, where the token is what a request is about, not its credential."""
        return await self.verify(token, _INSPECTION)

    def _check_sender(
        self, token: str, claims: AccessClaims, dpop: DpopRequest | None, now: float
    ) -> None:
        if dpop is _INSPECTION:
            return
        if claims.cnf is None:
            raise DpopTokenMisused("the token is not bound to a key: send it as a Bearer token")
        if dpop is None:
            raise DpopTokenMisused(
                "the token is bound to a key: send 'Authorization: DPoP <token>' and a DPoP proof"
            )
        self.proofs.check(dpop, now, access_token=token, jkt=claims.cnf.jkt)

    def assurance(self, *, acr: str | None = None, max_age: int | None = None) -> Assurance:
        """A step-up requirement ranked by this verifier's ``acr`` levels: ``acr`` at least
        ``acr``, ``auth_time`` at most ``max_age`` seconds ago. ``.check(claims)`` raises
        :class:`~sessiond.errors.InsufficientUserAuthentication` (401, RFC 9470) otherwise."""
        return Assurance(self.acr_levels, acr=acr, max_age=max_age, clock=self._clock)

    def check_ready(self) -> None:
        """Raise ``KeysUnavailable`` or ``DenylistStale`` unless this verifier has its keys and
        a current denylist (a readiness probe)."""
        if not self.keys.loaded:
            raise KeysUnavailable("the signing keys have not been fetched yet")
        staleness = self._staleness(time.time())
        if staleness > self._budget:
            raise DenylistStale(
                "catching up with the revocation stream"
                if staleness == math.inf
                else f"revocation stream silent for {staleness:.1f} s"
            )

    async def start(self) -> None:
        """Load the keys, start following revocations (if the bus is ours), prune the
        denylist periodically. Never fails for an unreachable JWKS or NATS: readiness tells."""
        await self.keys.start()
        if self._bus is not None:
            await self._bus.start()
        self._housekeeping = asyncio.create_task(self._prune(), name="sessiond-denylist-prune")

    async def aclose(self) -> None:
        """Stop pruning, stop following revocations (if the bus is ours), release the keys."""
        await cancel_task(self._housekeeping)
        if self._bus is not None:
            await self._bus.aclose()
        await self.keys.aclose()

    async def __aenter__(self) -> Self:
        """``async with verifier:`` is :meth:`start`, then :meth:`aclose` on leaving."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _first_sight(self, token: str, now: float) -> AccessClaims:
        try:
            claims = self._decoder.decode(token, now)
        except UnknownSigningKey:
            if not await self.keys.refresh():
                if not self.keys.loaded:
                    raise KeysUnavailable("the signing keys have not been fetched yet") from None
                raise
            claims = self._decoder.decode(token, now)
        self.cache.put(token, claims, self.keys.current())
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
            raise RevokedToken("the token's session no longer exists")
        raise DenylistStale("the revocation list is not current; try again shortly")

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            self.denylist.prune(time.time())
