"""Denylist snapshots in a JetStream object store, so that a starting replica replays only the
tail of the stream.

One bucket per stream, ``<stream name>_SNAPSHOTS`` (file storage, the stream's replicas), holds
one object, ``denylist``: :meth:`~sessiond.denylist.denylist.Denylist.snapshot` bytes, with
headers naming the stream sequence it covers (every event up to it is in), the stream's
creation time (a snapshot of a replaced stream is worthless), the format version and a
signature.

A forged snapshot could add revocations or, worse, skip them, so the writer signs it like an
event (``signing.py``, ``typ`` ``sessiond-snapshot+jws``, header ``Sessiond-Signature``): the
detached JWS covers the JSON manifest ``{"v", "seq", "stream_created", "sha256"}`` built from
those headers and the SHA-256 of the bytes. A reader that finds no valid signature (or a
digest that differs) ignores the snapshot and replays the stream.

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

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError
from nats.js.object_store import ObjectStore

from sessiond.broadcast.follower import JetStreamFollower
from sessiond.broadcast.signing import SIGNATURE_HEADER, SNAPSHOT_TYPE, EventSigner, EventVerifier
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


class _Manifest(msgspec.Struct, frozen=True):
    """What a snapshot's signature covers (the JSON of these fields, in this order)."""

    v: str
    seq: int
    stream_created: str
    sha256: str  # unpadded base64url


def _digest(data: bytes) -> str:
    """The SHA-256 of ``data`` in base64url, padded (the object store's digest form)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()


def _manifest(data_digest: str, seq: int, created: str) -> bytes:
    return msgspec.json.encode(_Manifest(FORMAT_VERSION, seq, created, data_digest.rstrip("=")))


def sign_snapshot(data: bytes, seq: int, created: str, signer: EventSigner) -> str:
    """The ``Sessiond-Signature`` of snapshot bytes ``data`` at ``seq`` of the stream created
    at ``created`` (:func:`stream_created`'s form)."""
    return signer.sign(_manifest(_digest(data), seq, created), time.time(), SNAPSHOT_TYPE)


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
    js: JetStreamContext,
    spec: StreamSpec,
    denylist: Denylist,
    seq: int,
    created: object,
    signer: EventSigner,
) -> api.ObjectInfo:
    """Store ``denylist``, signed by ``signer``, as covering stream sequences up to ``seq`` of
    the stream created at ``created``; the caller must not let the denylist change between
    reading ``seq`` and this call (the bytes are taken before the first await). Raises on
    NATS errors."""
    data = denylist.snapshot()
    when = stream_created(created)
    signature = sign_snapshot(data, seq, when, signer)
    headers = {  # Go's nats.Header shape: a list of values per key
        SEQ_HEADER: [str(seq)],
        CREATED_HEADER: [when],
        VERSION_HEADER: [FORMAT_VERSION],
        SIGNATURE_HEADER: [signature],
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


async def read_snapshot(
    js: JetStreamContext, spec: StreamSpec, verifier: EventVerifier
) -> Snapshot | None:
    """The stored snapshot of ``spec``'s stream, signed by a key ``verifier`` knows, or
    ``None`` (logged) if there is no usable one."""
    start = time.perf_counter()
    try:
        store = await _bucket(js, spec, create=False)
        if store is None:
            log.info("no denylist snapshot for stream %s: replaying it all", spec.name)
            return None
        info = await store.get_info(OBJECT_NAME)
        try:
            return await _read(js, spec, verifier, start, info)
        except Exception:
            # The writer may have replaced the object (and purged its chunks) while we read
            # it: then read the new one, once.
            again = await store.get_info(OBJECT_NAME)
            if again.nuid == info.nuid:
                raise
            return await _read(js, spec, verifier, start, again)
    except Exception as exc:  # never block start-up: the full replay is always correct
        log.warning(
            "cannot use the denylist snapshot of stream %s: %s (replaying it all)",
            spec.name,
            exc or type(exc).__name__,
        )
        return None


async def _read(
    js: JetStreamContext,
    spec: StreamSpec,
    verifier: EventVerifier,
    start: float,
    info: api.ObjectInfo,
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
    digest = _digest(data)
    expected = (info.digest or "").removeprefix(_DIGEST_PREFIX).removeprefix("sha-256=")
    if len(parts) != chunks or len(data) != (info.size or 0) or digest != expected:
        raise ValueError(f"snapshot digest or size mismatch ({len(data)} bytes, {chunks} chunks)")
    signature = _header(headers, SIGNATURE_HEADER) if SIGNATURE_HEADER in headers else None
    manifest = _manifest(digest, seq, created)
    rejected = await verifier.check(manifest, signature, SNAPSHOT_TYPE, time.time())
    if rejected is not None:
        raise ValueError(f"its signature is rejected ({rejected.reason}: {rejected.detail})")
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

    def __init__(
        self,
        spec: StreamSpec,
        signer: EventSigner,
        verifier: EventVerifier,
        *,
        interval: float = SNAPSHOT_INTERVAL,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.spec = spec
        self.denylist = Denylist()
        self.follower = JetStreamFollower(  # not a verifier: sends no receipts
            spec, self.denylist, verifier=verifier, receipts=False
        )
        self._signer = signer
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
            info = await write_snapshot(js, self.spec, self.denylist, seq, created, self._signer)
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
