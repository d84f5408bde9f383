"""Whether this replica's clock can be trusted: its skew from the session store's (Redis).

Every replica signs ``iat``/``exp``, judges them and stamps a forced sign-out's ``not_before``
with its own wall clock, so all of them must agree within ``SESSIOND_LEEWAY``. Redis is the one
clock they all reach: every :data:`INTERVAL` seconds :class:`ClockCheck` asks for its ``TIME``
and takes the skew as this clock at the round trip's midpoint minus Redis's. Two replicas each
within half the leeway of Redis are within the leeway of each other, so beyond :func:`bound`
the replica is *skewed*: :meth:`ClockCheck.now` raises :class:`ClockSkewed` and every use of
the clock (signing, verifying, revoking, readiness) answers 503 until it is back within.

A sample whose round trip is longer than :data:`MAX_ROUND_TRIP` says too little and is dropped;
with no sample for :data:`FORGET_AFTER` seconds (Redis unreachable) the verdict is unknown and
the replica is not refused for its clock: the store's outage has answers of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sessiond.errors import ClockSkewed, StoreUnavailable

log = logging.getLogger("sessiond.clock")

#: Seconds between two samples.
INTERVAL = 5.0
#: A sample whose round trip took longer (seconds) is dropped.
MAX_ROUND_TRIP = 0.05
#: Seconds without a sample after which the last verdict no longer holds.
FORGET_AFTER = 30.0
#: The smallest bound (seconds), whatever the leeway: a measurement is never exact.
MIN_BOUND = 0.5


def bound(leeway: float) -> float:
    """The largest skew (seconds) a replica may have: half the leeway, at least ``MIN_BOUND``."""
    return max(leeway / 2, MIN_BOUND)


class ClockCheck:
    """Samples the skew of ``clock`` from ``server_time`` (Redis ``TIME``) and refuses the
    clock while it is beyond ``limit``. ``monotonic`` times round trips and ages samples."""

    def __init__(
        self,
        server_time: Callable[[], Awaitable[float]],
        limit: float,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        self._server_time = server_time
        self._limit = limit
        self._clock = clock
        self._monotonic = monotonic
        self._on_sample = on_sample
        self._skew: float | None = None
        self._sampled_at = -float("inf")
        self._skewed = False

    @property
    def skew(self) -> float | None:
        """The last skew measured (seconds, this clock minus the server's), while it holds."""
        if self._monotonic() - self._sampled_at > FORGET_AFTER:
            return None
        return self._skew

    def now(self) -> float:
        """This clock's time, or :class:`ClockSkewed` while it is beyond the limit."""
        skew = self.skew
        if skew is not None and abs(skew) > self._limit:
            raise ClockSkewed(
                f"this replica's clock is {skew:+.1f} s from the session store's "
                f"(at most {self._limit:g} s allowed): fix its time synchronisation (NTP)"
            )
        return self._clock()

    async def measure(self) -> float | None:
        """Take one sample; return the skew, or ``None`` if the round trip was too long."""
        started, before = self._monotonic(), self._clock()
        server = await self._server_time()
        ended, after = self._monotonic(), self._clock()
        if ended - started > MAX_ROUND_TRIP:
            return None
        self._skew, self._sampled_at = (before + after) / 2 - server, ended
        if self._on_sample is not None:
            self._on_sample(self._skew)
        self._log_change(abs(self._skew) > self._limit)
        return self._skew

    async def run(self) -> None:
        """Sample every :data:`INTERVAL` seconds until cancelled."""
        while True:
            try:
                await self.measure()
            except StoreUnavailable:  # the last sample holds a while
                pass
            except Exception:  # e.g. TIME refused: say so, and keep trying
                log.exception("cannot measure the clock skew; trying again in %g s", INTERVAL)
            await asyncio.sleep(INTERVAL)

    def _log_change(self, skewed: bool) -> None:
        if skewed and not self._skewed:
            log.error(
                "clock skew %+.3f s from the session store (Redis TIME) is over %g s: this "
                "replica refuses to sign, verify and revoke and is not ready until it is "
                "within; fix its time synchronisation (NTP)",
                self._skew,
                self._limit,
            )
        elif self._skewed and not skewed:
            log.info("clock skew %+.3f s is within %g s again: serving", self._skew, self._limit)
        self._skewed = skewed
