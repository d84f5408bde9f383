"""Receipts: every follower tells the authority how far it has applied the stream.

I1 says that once a revocation is acknowledged to its caller, every connected replica rejects
it. The stream's acknowledgement only says the event is stored: each follower receives it a
moment later, and on a busy host a backend can serve a request in between. So each follower,
once caught up, publishes a :class:`Receipt` (core NATS, never stored) on its own receipts
subject, ``<prefix>-applied.<identity>``, where ``identity`` is its NATS identity
(``SESSIOND_NATS_IDENTITY``, by default its NATS user):

* after applying events: at most one per millisecond, and always when the server has nothing
  more to deliver;
* every heartbeat, as a sign of presence;
* once with ``leaving`` set when it stops.

The authority's :class:`Receipts` tracks the followers heard from within ``presence`` seconds
and :meth:`Receipts.wait` holds the answer to a revocation until each of them has applied its
sequence, for at most a capped wait. A follower that falls silent (killed, partitioned) stops
being waited for after ``presence`` seconds; from then on its own staleness budget (I2)
covers it.

A receipt counts only if its follower id starts with ``<identity>/`` of the subject it came
on. NATS lets each user publish receipts only under its own identity, so a backend cannot
speak for another follower (and make a revocation's answer wait on receipts it forges).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Annotated

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger("sessiond.broadcast")

#: Seconds without a receipt after which a follower is no longer waited for.
PRESENCE = 1.5


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """A follower has applied every event of the stream up to ``seq``."""

    follower: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=128,
            description="Unique per follower: its NATS identity (the receipt subject's last "
            "token), host name (the pod, in Kubernetes), process id and a random suffix, so "
            "that a log line can say who lags.",
        ),
    ]
    seq: Annotated[
        int,
        msgspec.Meta(ge=0, description="Every stream sequence up to this one is applied."),
    ]
    leaving: Annotated[
        bool, msgspec.Meta(description="The follower stops: do not wait for it any more.")
    ] = False


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Receipt)


def encode(receipt: Receipt) -> bytes:
    return _encoder.encode(receipt)


def follower_id(identity: str) -> str:
    """A :attr:`Receipt.follower` for a new follower of this process, of NATS ``identity``."""
    return f"{identity}/{socket.gethostname()[:40]}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Receipts:
    """What each follower heard from in the last ``presence`` seconds has applied.

    ``subject``: the receipts filter, ``<prefix>-applied.>``.
    """

    def __init__(self, subject: str, *, presence: float = PRESENCE) -> None:
        self.subject = subject
        self._base = subject.removesuffix(">")
        self.forged = 0  # receipts ignored: the follower id is not of the subject's identity
        self._presence = presence
        self._followers: dict[str, tuple[int, float]] = {}  # id -> (seq, monotonic seen)
        self._changed: asyncio.Future[None] | None = None
        self._sub: Subscription | None = None

    async def start(self, nc: NATS) -> None:
        self._sub = await nc.subscribe(self.subject, cb=self._received)

    def present(self) -> dict[str, int]:
        """Each follower heard from within ``presence`` seconds: how far it has applied."""
        now = time.monotonic()
        for gone in [f for f, (_, seen) in self._followers.items() if now - seen > self._presence]:
            del self._followers[gone]
        return {f: applied for f, (applied, _) in self._followers.items()}

    def behind(self, seq: int) -> list[str]:
        """The present followers that have not applied ``seq`` yet."""
        return [f for f, applied in self.present().items() if applied < seq]

    async def wait(self, seq: int, within: float) -> list[str]:
        """Wait until every present follower has applied ``seq``; return those that had not
        when ``within`` seconds passed (none if all had)."""
        deadline = time.monotonic() + within
        while (behind := self.behind(seq)) and (left := deadline - time.monotonic()) > 0:
            if self._changed is None:
                self._changed = asyncio.get_running_loop().create_future()
            # asyncio.wait, not a timeout: other waiters share the future, it must not be
            # cancelled when this one gives up.
            await asyncio.wait({self._changed}, timeout=min(left, self._presence))
        return behind

    def record(self, receipt: Receipt) -> None:
        if receipt.leaving:
            self._followers.pop(receipt.follower, None)
        else:
            self._followers[receipt.follower] = (receipt.seq, time.monotonic())
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set_result(None)

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # closing anyway: the connection goes next
                log.debug("receipts: unsubscribe failed: %s", exc)

    async def _received(self, msg: Msg) -> None:
        try:
            receipt = _decoder.decode(msg.data)
        except msgspec.MsgspecError as exc:
            log.warning("ignoring a malformed receipt on %s: %s", msg.subject, exc)
            return
        identity = msg.subject.removeprefix(self._base)
        if "." in identity or not receipt.follower.startswith(f"{identity}/"):
            self.forged += 1
            log.log(
                logging.WARNING if self.forged == 1 else logging.DEBUG,  # a flood: one line
                "ignoring a receipt on %s for follower %s of another identity",
                msg.subject,
                receipt.follower,
            )
            return
        self.record(receipt)
