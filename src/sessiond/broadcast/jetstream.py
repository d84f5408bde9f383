"""Revocations over NATS JetStream, as a :class:`~sessiond.broadcast.base.RevocationBus`.

The pieces live beside this module: ``stream.py`` (stream settings, connection, publisher),
``follower.py`` (replay and follow into the denylist, freshness), ``receipts.py`` (how far
each follower is), ``snapshots.py`` (fast start-up from a denylist snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api

from sessiond.broadcast.access import NatsAccess
from sessiond.broadcast.follower import JetStreamFollower, OnApplied, OnRejected
from sessiond.broadcast.receipts import Receipts
from sessiond.broadcast.signing import EventSigner, EventVerifier
from sessiond.broadcast.snapshots import read_snapshot, stream_created
from sessiond.broadcast.stream import (
    API_TIMEOUT,
    CONFIRM_WAIT,
    PUBLISH_BUDGET,
    TRANSIENT,
    JetStreamPublisher,
    StreamSpec,
    cancel_task,
    connect,
    open_stream,
)
from sessiond.denylist.denylist import Denylist
from sessiond.errors import BroadcastUnavailable, ConfigError
from sessiond.events import Revocation
from sessiond.settings import Settings

log = logging.getLogger("sessiond.broadcast")


class JetStreamBus:
    """:class:`~sessiond.broadcast.base.RevocationBus` over JetStream, on one connection.

    :meth:`start` waits up to ``connect_wait`` seconds for NATS, then goes on connecting,
    creating the stream and catching up in the background; until then :meth:`publish`
    raises :class:`BroadcastUnavailable` and :meth:`staleness` is ``inf``. With ``confirm``
    (the authority) it tracks the followers' receipts, and :meth:`publish` waits for them; a
    verifier that never publishes leaves it off. ``access``: how it signs in to NATS, and
    the identity its receipts go under. ``publish_budget``: how long a publish rides out a
    leader election or a reconnect (:class:`~sessiond.broadcast.stream.JetStreamPublisher`).

    ``verifier`` checks the signature of every event and of the snapshot before they reach
    the denylist; ``signer`` signs what :meth:`publish` publishes (a bus without one only
    follows).
    """

    def __init__(
        self,
        url: str,
        spec: StreamSpec,
        denylist: Denylist,
        *,
        verifier: EventVerifier,
        signer: EventSigner | None = None,
        name: str = "sessiond",
        budget: float = 1.0,
        on_applied: OnApplied | None = None,
        on_rejected: OnRejected | None = None,
        connect_wait: float = 1.0,
        confirm: bool = True,
        access: NatsAccess | None = None,
        publish_budget: float = PUBLISH_BUDGET,
    ) -> None:
        self.url, self.spec, self.name = url, spec, name
        self.access = access or NatsAccess()
        self._denylist = denylist
        self._verifier = verifier
        self._signer = signer
        self.snapshot_seq = 0  # the stream sequence of the snapshot loaded at start, if any
        self.follower = JetStreamFollower(
            spec,
            denylist,
            verifier=verifier,
            on_applied=on_applied,
            on_rejected=on_rejected,
            stall_after=max(0.2, budget / 2),
            identity=self.access.identity,
        )
        self.nc: NATS | None = None
        self._publisher: JetStreamPublisher | None = None
        self._connect_wait = connect_wait
        self._publish_budget = publish_budget
        self.receipts = Receipts(spec.receipts_filter) if confirm else None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        denylist: Denylist,
        *,
        verifier: EventVerifier,
        signer: EventSigner,
        name: str = "sessiond",
        on_applied: OnApplied | None = None,
        on_rejected: OnRejected | None = None,
    ) -> JetStreamBus:
        if not settings.nats_url:
            raise ConfigError("SESSIOND_NATS_URL: required for the JetStream bus")
        return cls(
            settings.nats_url,
            StreamSpec.from_settings(settings),
            denylist,
            name=name,
            verifier=verifier,
            signer=signer,
            budget=settings.staleness_budget,
            on_applied=on_applied,
            on_rejected=on_rejected,
            access=NatsAccess.from_settings(settings),
            publish_budget=settings.publish_budget,
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="sessiond-nats-connect")
        await asyncio.wait({self._task}, timeout=self._connect_wait)
        if self._task.done():
            self._task.result()  # a bug, not an outage: surface it
        else:
            log.warning("NATS not ready yet: connecting in the background (not ready until then)")

    async def _connect(self) -> None:
        self.nc = nc = await connect(self.url, self.name, self.access)
        js = nc.jetstream(timeout=API_TIMEOUT)
        failing = False
        while True:
            try:
                info = await open_stream(js, self.spec)
                break
            except TRANSIENT as exc:  # a refused config, or a stream not ours to create, too
                level = logging.DEBUG if failing else logging.ERROR
                log.log(level, "cannot set up stream %s: %s (retrying)", self.spec.name, exc)
                failing = True
                await asyncio.sleep(0.5)
        if self.receipts is not None:
            await self.receipts.start(nc)
        if self._signer is not None:
            self._publisher = JetStreamPublisher(
                nc, self.spec, self._signer, budget=self._publish_budget
            )
        after = await self._load_snapshot(js, info)
        await self.follower.start(nc, after=after, stream_created=info.created if after else None)

    async def _load_snapshot(self, js: JetStreamContext, info: api.StreamInfo) -> int:
        """Load the stream's snapshot if it fits this stream; the sequence it covers, else 0.

        Never raises: without a usable snapshot the follower replays the whole stream.
        """
        snapshot = await read_snapshot(js, self.spec, self._verifier)
        if snapshot is None:
            return 0
        last = info.state.last_seq
        if snapshot.stream_created != stream_created(info.created) or snapshot.seq > last:
            log.warning(
                "ignoring the denylist snapshot of stream %s: it is of another stream "
                "(created %s, sequence %d; the stream: created %s, last sequence %d)",
                self.spec.name,
                snapshot.stream_created,
                snapshot.seq,
                stream_created(info.created),
                last,
            )
            return 0
        start = time.perf_counter()
        try:
            self._denylist.load_snapshot(snapshot.data)  # decodes fully before merging
        except Exception as exc:
            log.warning(
                "cannot load the denylist snapshot of stream %s: %s (replaying it all)",
                self.spec.name,
                exc,
            )
            return 0
        log.info(
            "loaded the denylist snapshot of stream %s at sequence %d in %.2f s",
            self.spec.name,
            snapshot.seq,
            time.perf_counter() - start,
        )
        self.snapshot_seq = snapshot.seq
        return snapshot.seq

    async def publish(self, event: Revocation) -> None:
        """Publish; once the stream acknowledged, wait until this replica and every follower
        that sends receipts have applied the event.

        So a revocation is rejected everywhere as soon as the revoke call returns (I1), not
        only within a bound. The wait is capped at :data:`CONFIRM_WAIT`: durability was
        settled by the acknowledgement, and a follower that falls behind is logged.
        """
        ack = await self.publish_ack(event)
        deadline = time.monotonic() + CONFIRM_WAIT
        await self.follower.wait_applied(ack.seq, CONFIRM_WAIT)
        if self.receipts is None:
            return
        behind = await self.receipts.wait(ack.seq, deadline - time.monotonic())
        if behind:
            log.warning(
                "revocation at sequence %d answered before %d follower(s) confirmed it "
                "within %.0f ms: %s",
                ack.seq,
                len(behind),
                CONFIRM_WAIT * 1000,
                ", ".join(behind),
            )

    async def publish_ack(self, event: Revocation) -> api.PubAck:
        """:meth:`publish`, returning the stream's acknowledgement (``duplicate``, ``seq``)."""
        if self._signer is None:
            raise ConfigError("this bus only follows the stream: it has no key to sign with")
        if self._publisher is None:
            raise BroadcastUnavailable("not connected to NATS yet: the revocation is not published")
        return await self._publisher.publish(event)

    def staleness(self, now: float) -> float:
        return self.follower.staleness(now)

    async def aclose(self) -> None:
        await cancel_task(self._task)
        if self.receipts is not None:
            await self.receipts.aclose()
        await self.follower.aclose()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
