"""The outbox relay: gets every stored revocation onto the stream, eventually (invariant I4).

A revocation is first written to the session store's outbox together with the session change
it belongs to; the service then publishes it and removes the outbox entry once the stream
acknowledged it. Whatever is left behind (the stream was unreachable, the service crashed
between the two steps) is published here::

    sessiond-relay        # needs SESSIOND_REDIS_URL and SESSIOND_NATS_URL

Each round takes the outbox's events older than ``grace`` seconds (younger ones are most
likely being published by the service right now), oldest first, publishes each and removes
it once the stream acknowledged it. The first publish failure ends the round: the rest keep
their order and wait for the next one. An event may be published twice (by the service and
by the relay, or again after a failed removal); the stream deduplicates by event id and
applying an event twice changes nothing, so that is harmless. For the same reason running
more than one relay is safe, merely wasteful.

Outages of Redis or NATS never end the worker: it logs one line when a problem starts or
changes (and a reminder every :data:`REMIND_EVERY` seconds while it lasts), one when it is
over, and keeps trying every ``interval`` seconds.

Every event it publishes is signed with the keyset's signing key (``broadcast/signing.py``),
so the relay mounts the keyset file like the service does.

The relay is also the one writer of denylist snapshots: it runs a
:class:`~sessiond.broadcast.snapshots.SnapshotWriter` on its NATS connection, so that a starting
replica replays only the events after the last snapshot. Snapshot failures never affect
relaying.

And it applies the stream back to Redis (:class:`~sessiond.workers.applier.StoreApplier`): a
revocation made while Redis was down is on the stream only, and the session records it ends
are deleted once Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable

from sessiond.broadcast.access import NatsAccess
from sessiond.broadcast.signing import EventSigner, EventVerifier
from sessiond.broadcast.snapshots import SnapshotWriter
from sessiond.broadcast.stream import JetStreamPublisher, StreamSpec, connect
from sessiond.errors import BroadcastUnavailable, ConfigError, StoreUnavailable
from sessiond.events import Revocation
from sessiond.redis_client import RedisTarget, first_contact
from sessiond.sessions.base import SessionStore
from sessiond.sessions.redis import RedisSessionStore
from sessiond.settings import Settings
from sessiond.verifier.keys import LocalKeys
from sessiond.workers.applier import StoreApplier

__all__ = ("Publish", "Relay", "main")

log = logging.getLogger("sessiond.relay")

#: Publishes one event; returns once the stream acknowledged it (whatever it returns is
#: ignored), else raises ``BroadcastUnavailable``.
Publish = Callable[[Revocation], Awaitable[object]]

#: Seconds between repeated log lines about an outage that goes on.
REMIND_EVERY = 60.0

EXIT_ERROR = 2


class Relay:
    """Moves events from a session store's outbox to the revocation stream."""

    def __init__(
        self,
        store: SessionStore,
        publish: Publish,
        *,
        grace: float = 2.0,
        interval: float = 1.0,
    ) -> None:
        """
        Args:
            store: Where the outbox lives.
            publish: Publishes one event (see :data:`Publish`).
            grace: Only events at least this many seconds old are relayed, so that the
                service's own publish right after the write usually wins.
            interval: Seconds between rounds in :meth:`run`.
        """
        if grace < 0 or interval <= 0:
            raise ValueError("grace must be >= 0 and interval > 0")
        self._store = store
        self._publish = publish
        self._grace = grace
        self._interval = interval
        self._stop: asyncio.Event | None = None
        self._problem: str | None = None
        self._problem_logged_at = 0.0

    async def run_once(self, now: float) -> int:
        """One round: relay the events older than ``now - grace``; return how many were.

        A ``BroadcastUnavailable`` from ``publish`` ends the round (logged, not raised);
        ``StoreUnavailable`` is raised, after logging what the round relayed before it.
        """
        pending = await self._store.outbox_pending(now - self._grace)
        relayed = 0
        try:
            for event in pending:
                if self._stop is not None and self._stop.is_set():
                    return relayed
                try:
                    await self._publish(event)
                except BroadcastUnavailable as exc:
                    self._report(f"revocation stream unavailable: {exc.detail}")
                    return relayed
                await self._store.outbox_remove(event.id)
                relayed += 1
        finally:
            if relayed:
                log.info(
                    "relayed %d of %d pending revocation(s) to the stream", relayed, len(pending)
                )
        self._report(None)
        return relayed

    async def run(self, stop: asyncio.Event) -> None:
        """Run a round every ``interval`` seconds until ``stop`` is set.

        ``StoreUnavailable`` and ``BroadcastUnavailable`` are logged and retried; any other
        exception is a bug and ends the worker.
        """
        self._stop = stop
        try:
            while not stop.is_set():
                try:
                    await self.run_once(time.time())
                except (StoreUnavailable, BroadcastUnavailable) as exc:
                    self._report(f"{exc.title.lower()}: {exc.detail}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._interval)
        finally:
            self._stop = None

    def _report(self, problem: str | None) -> None:
        """Log one line when a problem starts, changes or goes on for long, and when it ends."""
        now = time.monotonic()
        if problem is None:
            if self._problem is not None:
                log.info("relay recovered; was: %s", self._problem)
        elif problem != self._problem or now - self._problem_logged_at >= REMIND_EVERY:
            log.warning("%s; outbox events wait, retrying every %gs", problem, self._interval)
            self._problem_logged_at = now
        self._problem = problem


def main() -> None:
    """``sessiond-relay``: relay until SIGTERM or SIGINT."""
    try:
        settings = Settings.load(os.environ)
        _, nats_url = _required(settings.redis_url, settings.nats_url)
        access = NatsAccess.from_settings(settings)
        keys = LocalKeys.load(settings.keyset_file)
    except ConfigError as exc:
        print(f"sessiond-relay: error: {' '.join(exc.detail.split())}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    redis = RedisTarget.from_settings(settings)
    spec, verifier = StreamSpec.from_settings(settings), EventVerifier.from_settings(settings, keys)
    asyncio.run(
        _serve(
            redis,
            nats_url,
            spec,
            access,
            keys=keys,
            verifier=verifier,
            publish_budget=settings.publish_budget,
        )
    )


def _required(redis_url: str | None, nats_url: str | None) -> tuple[str, str]:
    if not (redis_url and nats_url):
        raise ConfigError(
            "SESSIOND_REDIS_URL and SESSIOND_NATS_URL are required: the relay moves "
            "revocations from the Redis outbox to the NATS stream"
        )
    return redis_url, nats_url


async def _serve(
    redis: RedisTarget,
    nats_url: str,
    spec: StreamSpec,
    access: NatsAccess | None = None,
    *,
    keys: LocalKeys,
    verifier: EventVerifier,
    publish_budget: float,
) -> None:
    """Relay until a signal; NATS is connected in the background, so a signal always works.

        ``keys`` (the keyset file, re-read when it changes) sign what the relay publishes and its
        snapshots; ``verifier`` checks the events its snapshot writer follows; a publish rides out a
    leader election for at most ``publish_budget`` seconds.

        The stream itself is created and kept in shape by the service replicas: until it exists,
        publishing fails and the events wait in the outbox (the snapshot writer's follower, like
        every follower, creates the stream with the same settings when it finds none).
    """
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    store = RedisSessionStore.from_url(redis)
    await first_contact(store.ping, redis)
    await keys.start()
    signer = EventSigner(keys.current)
    connecting = asyncio.create_task(connect(nats_url, "sessiond-relay", access))
    publishers: list[JetStreamPublisher] = []

    async def publish(event: Revocation) -> object:
        if not connecting.done():
            raise BroadcastUnavailable("not connected to NATS yet")
        if not publishers:
            publishers.append(
                JetStreamPublisher(connecting.result(), spec, signer, budget=publish_budget)
            )
        return await publishers[0].publish(event)

    snapshots = SnapshotWriter(spec, signer, verifier)

    async def write_snapshots() -> None:
        await snapshots.start(await connecting)
        await snapshots.run(stop)

    applier = StoreApplier(store, spec, verifier)

    async def apply_stream() -> None:
        await applier.run(await connecting, stop)

    tasks = (
        asyncio.create_task(write_snapshots(), name="sessiond-relay-snapshots"),
        asyncio.create_task(apply_stream(), name="sessiond-relay-applier"),
    )
    log.info("relay started: Redis outbox -> stream %s -> Redis", spec.name)
    try:
        await Relay(store, publish).run(stop)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await snapshots.aclose()
        connecting.cancel()  # no-op once connected
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await (await connecting).close()
        await store.aclose()
        await keys.aclose()
    log.info("relay stopped")


if __name__ == "__main__":
    main()
