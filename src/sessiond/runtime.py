"""Everything one sessiond process holds, assembled once from :class:`Settings`.

With no ``SESSIOND_REDIS_URL`` this is the embedded mode: in-memory store and broadcast, an
ephemeral signing key and a one-time service credential, for one process only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client as NATS

from sessiond.audit import Auditor, audit_subject
from sessiond.broadcast.base import RevocationBus
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.memory import MemoryBus
from sessiond.broadcast.signing import EventSigner, EventVerifier
from sessiond.credentials.store import CredentialSet
from sessiond.denylist.denylist import Denylist
from sessiond.errors import StoreUnavailable
from sessiond.metrics import Metrics
from sessiond.ratelimit.limits import RateLimits
from sessiond.receivers.config import Catalog, load_receivers
from sessiond.receivers.memory import MemoryReceiverRegistry
from sessiond.receivers.redis import RedisReceiverRegistry
from sessiond.redis_client import RedisTarget, first_contact
from sessiond.sessions.base import SessionStore
from sessiond.sessions.clock import ClockCheck, bound
from sessiond.sessions.memory import MemorySessionStore
from sessiond.sessions.redis import RedisSessionStore
from sessiond.sessions.service import SessionService
from sessiond.settings import Settings
from sessiond.tokens.access import AccessTokenDecoder, key_retention
from sessiond.tokens.claims import AccessClaims
from sessiond.tokens.dpop import ProofChecker
from sessiond.tokens.keys import Keyset
from sessiond.verifier.engine import Verifier
from sessiond.verifier.keys import LocalKeys

log = logging.getLogger("sessiond")

#: How often the outbox depth is measured.
HOUSEKEEPING_INTERVAL = 2.0


class Runtime:
    """The assembled process: store, keys, credentials, denylist, bus, verifier, service.

    ``clock`` is the wall clock the process signs, verifies and revokes with; in the
    distributed mode it is checked against Redis's and refused while skewed (:meth:`now`).
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self.keys = LocalKeys.load(settings.keyset_file, settings.key_algorithm)
        self.one_time_credential: str | None = None
        if settings.credentials_file:
            self.credentials = CredentialSet.load(settings.credentials_file)
        else:
            self.one_time_credential, self.credentials = CredentialSet.ephemeral()
        self._redis = RedisTarget.from_settings(settings) if settings.redis_url else None
        self.store: SessionStore = (
            RedisSessionStore.from_url(self._redis) if self._redis else MemorySessionStore()
        )
        self.limits = RateLimits.from_settings(settings)
        registry = RedisReceiverRegistry.from_url(self._redis) if self._redis else None
        self.receivers = Catalog(
            registry or MemoryReceiverRegistry(), load_receivers(settings.receivers_file)
        )
        self.denylist = Denylist()
        self.metrics = Metrics(self.denylist.sizes, lambda now: self.bus.staleness(now))
        self.clock_check = (
            ClockCheck(
                self.store.server_time,
                bound(settings.leeway),
                clock=clock,
                on_sample=self.metrics.clock_skew.set,
            )
            if isinstance(self.store, RedisSessionStore)
            else None  # the embedded mode has one clock only
        )
        self.bus: RevocationBus = (
            JetStreamBus.from_settings(
                settings,
                self.denylist,
                verifier=EventVerifier.from_settings(settings, self.keys),
                signer=EventSigner(lambda: self.keyset),
                on_applied=self.metrics.applied,
                on_rejected=self.metrics.rejected,
            )
            if settings.nats_url
            else MemoryBus(self.denylist)
        )
        self.verifier = Verifier(
            AccessTokenDecoder.from_settings(settings, self.keys.current),
            self.keys,
            self.denylist,
            staleness=self.bus.staleness,
            budget=settings.staleness_budget,
            policy=settings.stale_policy,
            session_exists=self._session_exists,
            on_stale=self.metrics.stale_decision,
            clock=self.now,
            proofs=ProofChecker.from_settings(settings),
        )
        self.auditor = Auditor(audit_subject(settings.nats_subject), self._nats_connection)
        self.sessions = SessionService(
            settings,
            self.store,
            self.denylist,
            self.bus,
            lambda: self.keyset,
            self.metrics,
            clock=self.now,
            auditor=self.auditor,
        )
        self._housekeeping: asyncio.Task[None] | None = None
        self._clock_checking: asyncio.Task[None] | None = None

    @property
    def keyset(self) -> Keyset:
        """The signing keys now (the keyset file is re-read when it changes)."""
        return self.keys.keyset

    @property
    def key_retention(self) -> int:
        """How long a retired key keeps verifying: the longest a token it signed can live."""
        return key_retention(self.settings)

    def now(self) -> float:
        """The time to sign, verify and revoke with; ``ClockSkewed`` while the clock is off."""
        return self.clock_check.now() if self.clock_check else self._clock()

    def _nats_connection(self) -> NATS | None:
        """The JetStream bus's connection, shared by the audit trail (``None`` without NATS)."""
        return self.bus.nc if isinstance(self.bus, JetStreamBus) else None

    async def _session_exists(self, claims: AccessClaims) -> bool:
        return await self.store.get(claims.sid) is not None

    async def start(self) -> None:
        if self._redis is not None:
            await first_contact(self.store.ping, self._redis)
        await self.bus.start()
        await self.verifier.start()
        self._housekeeping = asyncio.create_task(self._housekeep(), name="sessiond-housekeeping")
        if self.clock_check is not None:
            self._clock_checking = asyncio.create_task(
                self.clock_check.run(), name="sessiond-clock-check"
            )

    async def aclose(self) -> None:
        for task in (self._housekeeping, self._clock_checking):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.verifier.aclose()
        await self.bus.aclose()
        await self.store.aclose()
        await self.limits.aclose()
        await self.receivers.registry.aclose()

    def banner(self) -> list[str]:
        """What ``sessiond serve`` tells the operator at start."""
        lines = []
        if self.settings.embedded:
            key = (
                "signing keys from SESSIOND_KEYSET_FILE"
                if self.settings.keyset_file
                else "an ephemeral signing key"
            )
            lines.append(
                f"embedded mode: in-memory sessions and revocations, {key}. For ONE process "
                "only: sessions and revocations are neither shared between processes nor kept "
                "across restarts. Set SESSIOND_REDIS_URL for the distributed mode."
            )
        elif self.settings.nats_url is None:
            lines.append(
                "no SESSIOND_NATS_URL: revocations reach this process's denylist only; run a "
                "single replica or configure NATS."
            )
        if self.one_time_credential:
            lines.append(
                "one-time service credential (all scopes; shown once): " + self.one_time_credential
            )
        return lines

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            with contextlib.suppress(StoreUnavailable):
                self.metrics.outbox_depth.set(await self.store.outbox_depth())
