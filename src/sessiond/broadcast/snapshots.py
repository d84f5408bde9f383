"""Denylist snapshots in a JetStream object store, so that a starting replica replays only the
tail of the stream.

One bucket per stream, ``<stream name>_SNAPSHOTS`` (file storage, the stream's replicas), holds
one object, ``denylist``: :meth:`~sessiond.denylist.denylist.Denylist.snapshot` bytes, with
headers naming the stream sequence it covers (every event up to it is in), the stream's
creation time (a snapshot of a replaced stream is worthless) and the format version.

:func:`read_snapshot` never raises: any problem (no bucket, no object, another format, a
digest mismatch, a timeout) is logged and gives ``None``, and the caller replays everything.
It reads the chunks with a pull consumer: nats-py's ``ObjectStore.get()`` uses an ordered push
consumer that is several times slower (about 1 s against 0.1-0.2 s for 27 MB).

The one writer is the relay worker's :class:`SnapshotWriter`: it follows the stream into a
denylist of its own and, every :data:`SNAPSHOT_INTERVAL` seconds when it applied something new,
stores a snapshot of it. Failures are logged and retried at the next interval.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError
from nats.js.object_store import ObjectStore

from sessiond.broadcast.follower import JetStreamFollower
from sessiond.broadcast.stream import StreamSpec
from sessiond.denylist.denylist import Denylist

log = logging.getLogger("sessiond.broadcast")

OBJECT_NAME = "denylist"
FORMAT_VERSION = "1"
SEQ_HEADER = "Sessiond-Stream-Seq"
CREATED_HEADER = "Sessiond-Stream-Created"
VERSION_HEADER = "Sessiond-Snapshot-Version"
READ_TIMEOUT = 1.0  # seconds each chunk fetch may wait
#: Seconds between denylist snapshots.
SNAPSHOT_INTERVAL = 10.0
SNAPSHOT_TIMEOUT = 5.0  # seconds for each JetStream request while writing a snapshot
_DIGEST_PREFIX = "SHA-256="


@dataclass(frozen=True)
class Snapshot:
    data: bytes  # Denylist.snapshot() bytes
    seq: int  # every stream sequence up to this one is in it
    stream_created: str  # the stream's creation time (ISO 8601) when it was taken


def bucket_name(spec: StreamSpec) -> str:
    return f"{spec.name}_SNAPSHOTS"


def stream_created(created: object) -> str:
    """The form of a stream's creation time (``StreamInfo.created``) kept with a snapshot."""
    isoformat = getattr(created, "isoformat", None)
    return isoformat() if callable(isoformat) else str(created)


async def _bucket(js: JetStreamContext, spec: StreamSpec, *, create: bool) -> ObjectStore | None:
    try:
        return await js.object_store(bucket_name(spec))
    except BucketNotFoundError:
        if not create:
            return None
    config = api.ObjectStoreConfig(
        description=f"sessiond denylist snapshots of stream {spec.name}",
        storage=api.StorageType.FILE,
        replicas=spec.num_replicas,
    )
    return await js.create_object_store(bucket_name(spec), config=config)


async def write_snapshot(
    js: JetStreamContext, spec: StreamSpec, denylist: Denylist, seq: int, created: object
) -> api.ObjectInfo:
    """Store ``denylist`` as covering stream sequences up to ``seq`` of the stream created at
    ``created``; the caller must not let the denylist change between reading ``seq`` and this
    call (the bytes are taken before the first await). Raises on NATS errors."""
    data = denylist.snapshot()
    headers = {  # Go's nats.Header shape: a list of values per key
        SEQ_HEADER: [str(seq)],
        CREATED_HEADER: [stream_created(created)],
        VERSION_HEADER: [FORMAT_VERSION],
    }
    store = await _bucket(js, spec, create=True)
    assert store is not None
    return await store.put(OBJECT_NAME, data, meta=api.ObjectMeta(headers=headers))


def _header(headers: dict[str, object], key: str) -> str:
    value = headers.get(key)
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str):
        raise ValueError(f"header {key} missing")  # noqa: TRY004 (bad data, not a bug)
    return value


async def read_snapshot(js: JetStreamContext, spec: StreamSpec) -> Snapshot | None:
    """The stored snapshot of ``spec``'s stream, or ``None`` (logged) if there is no usable one."""
    start = time.perf_counter()
    try:
        store = await _bucket(js, spec, create=False)
        if store is None:
            log.info("no denylist snapshot for stream %s: replaying it all", spec.name)
            return None
        info = await store.get_info(OBJECT_NAME)
        try:
            return await _read(js, spec, start, info)
        except Exception:
            # The writer may have replaced the object (and purged its chunks) while we read
            # it: then read the new one, once.
            again = await store.get_info(OBJECT_NAME)
            if again.nuid == info.nuid:
                raise
            return await _read(js, spec, start, again)
    except Exception as exc:  # never block start-up: the full replay is always correct
        log.warning(
            "cannot use the denylist snapshot of stream %s: %s (replaying it all)",
            spec.name,
            exc or type(exc).__name__,
        )
        return None


async def _read(
    js: JetStreamContext, spec: StreamSpec, start: float, info: api.ObjectInfo
) -> Snapshot:
    headers = info.headers or {}
    version = _header(headers, VERSION_HEADER)
    if version != FORMAT_VERSION:
        raise ValueError(f"snapshot format {version}, expected {FORMAT_VERSION}")
    seq, created = int(_header(headers, SEQ_HEADER)), _header(headers, CREATED_HEADER)
    chunks = info.chunks or 0
    parts: list[bytes] = []
    if chunks:
        psub = await js.pull_subscribe(
            f"$O.{bucket_name(spec)}.C.{info.nuid}",
            stream=f"OBJ_{bucket_name(spec)}",
            config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.NONE,
                mem_storage=True,
                num_replicas=1,
                inactive_threshold=5.0,
            ),
        )
        try:
            while len(parts) < chunks:
                batch = await psub.fetch(chunks - len(parts), timeout=READ_TIMEOUT)
                parts.extend(msg.data for msg in batch)
        finally:
            await psub.unsubscribe()
    data = b"".join(parts)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
    expected = (info.digest or "").removeprefix(_DIGEST_PREFIX).removeprefix("sha-256=")
    if len(parts) != chunks or len(data) != (info.size or 0) or digest != expected:
        raise ValueError(f"snapshot digest or size mismatch ({len(data)} bytes, {chunks} chunks)")
    log.info(
        "read denylist snapshot of stream %s at sequence %d (%.1f MB) in %.2f s",
        spec.name,
        seq,
        len(data) / 1e6,
        time.perf_counter() - start,
    )
    return Snapshot(data, seq, created)


class SnapshotWriter:
    """Follows the stream into a denylist of its own and stores snapshots of it."""

    def __init__(self, spec: StreamSpec, *, interval: float = SNAPSHOT_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.spec = spec
        self.denylist = Denylist()
        self.follower = JetStreamFollower(spec, self.denylist, receipts=False)  # not a verifier
        self.written: tuple[int, object] | None = None  # (sequence, stream) of the last one
        self._interval = interval
        self._nc: NATS | None = None
        self._failing = False

    async def start(self, nc: NATS) -> None:
        """Start following the stream on ``nc`` (connected)."""
        self._nc = nc
        await self.follower.start(nc)

    async def write_once(self) -> bool:
        """Store a snapshot at the follower's position if it moved since the last one;
        ``True`` if one was stored. Failures are logged, not raised."""
        if self._nc is None:
            return False
        seq, created = self.follower.last_applied, self.follower.stream_created
        if seq == 0 or created is None or self.written == (seq, created):
            return False
        start = time.perf_counter()
        try:
            self.denylist.prune(time.time())
            # No await between reading the position and taking the bytes: they match.
            js = self._nc.jetstream(timeout=SNAPSHOT_TIMEOUT)
            info = await write_snapshot(js, self.spec, self.denylist, seq, created)
        except Exception as exc:
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(
                level, "cannot store a denylist snapshot: %s (retrying)", exc or type(exc).__name__
            )
            self._failing = True
            return False
        if self._failing:
            log.info("denylist snapshots stored again")
        self._failing = False
        self.written = (seq, created)
        log.debug(
            "stored a denylist snapshot at sequence %d (%d bytes) in %.2f s",
            seq,
            info.size or 0,
            time.perf_counter() - start,
        )
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Store a snapshot every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            if not stop.is_set():
                await self.write_once()

    async def aclose(self) -> None:
        await self.follower.aclose()
