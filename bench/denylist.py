"""Denylist with N live entries: memory, check, apply, prune, snapshot and stream catch-up.

Builds N revocation events of a realistic shape (60% tokens by ``jti``, 22 url-safe
characters; 35% sessions by ``sid``, 32 hex digits; 5% subjects, e-mail addresses; issued
over one access-token lifetime, so all of them are live), then measures in this process:

* memory per entry: ``tracemalloc`` around decoding every event from its JSON and applying it
  to an empty denylist, key strings included (the denylist keeps them alive);
* ``denies()`` per call on ``AccessClaims`` structs, as the verifier passes them, for claims
  it does not deny (every valid request) and for claims it denies; "hot" repeats 1,000 claims
  (the CPU cost), "cold" walks 100k (plus the cache misses of tables of 100 MB); the loop's
  own overhead is included;
* ``apply()`` per event, of decoded events, then of the same events again (a replay), and
  ``decode() + apply()`` per event (the CPU floor of any replay in Python);
* ``prune()`` once a second from the first expiry to the last, as housekeeping does;
* ``snapshot()`` and ``load_snapshot()`` of the full denylist.

Then the real catch-up path: a private ``nats-server`` (JetStream, temporary directory, free
loopback port), the stream made by ``ensure_stream`` and filled with the N events (each with
its ``Nats-Msg-Id``) in chunks of core publishes closed by one acknowledged publish, so the
server's ingest queue never overflows. The fill uses the server's default ``sync_interval``
(``--sync-always`` for ``always``: fsync per message makes a 1M fill take minutes, and
reading does not depend on it). Measured on it:

* a fresh ``JetStreamFollower`` on a fresh connection, from connecting to caught up, with the
  longest time the event loop was blocked meanwhile (``/healthz`` shares that loop);
  ``--profile`` prints where its time goes; a replay still running after
  ``--catch-up-timeout`` seconds is reported at the rate it had reached;
* bare nats-py consumers reading the first ``--sample`` events (a quarter of them for pull):
  a push consumer with a callback that does nothing, the floor for any follower on nats-py;
* snapshots (:mod:`sessiond.broadcast.snapshots`): a snapshot of all events but the last
  ``--tail`` stored by ``write_snapshot()`` (as the relay does), read back by nats-py's
  ``get()`` and by ``read_snapshot()`` (a pull consumer on its chunks, digest checked), then a
  fresh replica started as the service starts one, ``JetStreamBus.start()``: it loads the
  snapshot and its follower replays the tail; timed from ``start()`` to caught up.

Every server is stopped on the way out, error or not.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import dataclasses
import functools
import gc
import io
import math
import platform
import pstats
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from bench._processes import BenchError
from sessiond.broadcast.follower import JetStreamFollower
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.signing import SIGNATURE_HEADER, EventSigner, EventVerifier
from sessiond.broadcast.snapshots import OBJECT_NAME, bucket_name, read_snapshot, write_snapshot
from sessiond.broadcast.stream import MSG_ID_HEADER, StreamSpec, connect, ensure_stream
from sessiond.cluster.processes import ManagedProcess, ProcessSpec
from sessiond.cluster.specs import NATS as NATS_SERVER
from sessiond.denylist.denylist import Denylist
from sessiond.events import (
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
    decode,
    encode,
)
from sessiond.tokens.claims import AccessClaims
from sessiond.tokens.keys import Keyset
from sessiond.verifier.keys import LocalKeys

T = TypeVar("T")
DEFAULT_ENTRIES = 1_000_000
TTL, LEEWAY = 300, 30  # the default access-token lifetime and leeway, seconds
TARGET_BYTES = 150
TARGET_CATCH_UP = 2.0
CHUNK = 2000  # core publishes per acknowledged one while filling the stream
CLAIMS = 100_000  # claims per denies() round
NOTES = {
    "hot": "the same 1,000 claims 100 times: the CPU cost",
    "cold": "100k distinct claims: + cache misses in 100 MB of tables",
}
FIRST = ("anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jonas")
LAST = ("meyer", "smith", "garcia", "rossi", "novak", "dubois", "jensen", "silva", "kowalski")
DOMAINS = ("example.com", "mail.example.org", "corp.example.net")


@dataclass(frozen=True)
class Row:
    what: str
    value: str
    target: str = ""
    note: str = ""


# --- events ----------------------------------------------------------------------------------


def make_events(n: int, now: float, seed: int = 7) -> list[Revocation]:
    """``n`` events published over the last access-token lifetime, oldest first."""
    rng = random.Random(seed)
    events: list[Revocation] = []
    for i in range(n):
        at = now - TTL + TTL * i / n
        until = at + TTL + LEEWAY
        eid = f"{rng.getrandbits(128):032x}"
        kind = rng.random()
        if kind < 0.60:
            jti = base64.urlsafe_b64encode(rng.randbytes(16)).rstrip(b"=").decode()
            events.append(TokenRevoked(id=eid, at=at, jti=jti, expires_at=until))
        elif kind < 0.95:
            sid = f"{rng.getrandbits(128):032x}"
            events.append(SessionRevoked(id=eid, at=at, sid=sid, expires_at=until))
        else:
            sub = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randrange(100_000)}"
            sub = f"{sub}@{rng.choice(DOMAINS)}"
            events.append(
                SubjectRevoked(id=eid, at=at, sub=sub, not_before=int(at), expires_at=until)
            )
    return events


def _key(event: Revocation) -> str:
    match event:
        case TokenRevoked(jti=key) | SessionRevoked(sid=key) | SubjectRevoked(sub=key):
            return key
    return ""


def _claims(events: Sequence[Revocation], now: float, hits: bool) -> list[AccessClaims]:
    """Claims of live tokens: revoked by ``jti``/``sid`` if ``hits``, else by nothing."""
    rng = random.Random(11)
    out = []
    for i in range(CLAIMS):
        jti, sid = f"j{rng.getrandbits(120):030x}", f"{rng.getrandbits(128):032x}"
        if hits:
            event = events[rng.randrange(len(events))]
            jti = event.jti if isinstance(event, TokenRevoked) else jti
            sid = event.sid if isinstance(event, SessionRevoked) else sid
        sub = f"user{i}@example.com"
        out.append(
            AccessClaims(
                iss="https://sessiond.example",
                aud="api",
                sub=sub,
                sid=sid,
                jti=jti,
                iat=int(now) - 10,
                exp=int(now) + TTL - 10,
            )
        )
    return out


# --- in-process measurements -----------------------------------------------------------------


def _best_ns(run: Callable[[], object], count: int, rounds: int = 5) -> float:
    """Nanoseconds per operation of ``run`` (``count`` operations), best of ``rounds``."""
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter_ns()
        run()
        best = min(best, (time.perf_counter_ns() - start) / count)
    return best


def _each(call: Callable[[T], object], items: Iterable[T]) -> None:
    for item in items:
        call(item)


def _build(payloads: Iterable[bytes]) -> Denylist:
    denylist = Denylist()
    for payload in payloads:
        denylist.apply(decode(payload))
    return denylist


def measure_memory(payloads: Sequence[bytes]) -> tuple[Denylist, float]:
    """A denylist of every payload and its traced bytes per entry (key strings included)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        denylist = _build(payloads)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return denylist, used / max(1, sum(denylist.sizes().values()))


def in_process(events: Sequence[Revocation], payloads: Sequence[bytes], now: float) -> list[Row]:
    rows: list[Row] = []
    n = len(events)
    denylist, per_entry = measure_memory(payloads)
    entries = sum(denylist.sizes().values())
    keys = {_key(event) for event in events}
    key_bytes = sum(sys.getsizeof(key) for key in keys) / len(keys)
    sizes = ", ".join(f"{kind} {count:,}" for kind, count in denylist.sizes().items())
    rows.append(Row("live entries", f"{entries:,}", note=sizes))
    rows.append(
        Row(
            "memory per entry",
            f"{per_entry:.0f} B",
            f"<= {TARGET_BYTES} B",
            f"tracemalloc; of which key str ~{key_bytes:.0f} B (sys.getsizeof)",
        )
    )

    for hits, label in ((False, "no match"), (True, "match by jti/sid")):
        claims = _claims(events, now, hits)
        hot = claims[:1000] * (len(claims) // 1000)
        for pool, temperature in ((hot, "hot"), (claims, "cold")):
            ns = _best_ns(functools.partial(_each, denylist.denies, pool), len(pool))
            rows.append(
                Row(f"denies(), {label}, {temperature}", f"{ns:.0f} ns/op", note=NOTES[temperature])
            )

    rows.extend(_apply_rows(events))
    ns = _best_ns(lambda: _build(payloads), n, rounds=1)
    rows.append(
        Row("decode() + apply()", f"{ns:.0f} ns/op", note="JSON -> denylist: replay CPU floor")
    )
    rows.extend(_snapshot_rows(denylist, entries))
    rows.extend(_prune_rows(denylist, entries, now))
    return rows


def _apply_rows(events: Sequence[Revocation]) -> list[Row]:
    apply = Denylist().apply
    rows = []
    for label, note in (("new entries", "decoded events"), ("same events again", "a replay")):
        ns = _best_ns(functools.partial(_each, apply, events), len(events), rounds=1)
        rows.append(Row(f"apply(), {label}", f"{ns:.0f} ns/op", note=note))
    return rows


def _snapshot_rows(denylist: Denylist, entries: int) -> list[Row]:
    start = time.perf_counter()
    snapshot = denylist.snapshot()
    took = time.perf_counter() - start
    loaded = Denylist()
    gc.collect()
    start = time.perf_counter()
    loaded.load_snapshot(snapshot)
    load = time.perf_counter() - start
    if loaded.sizes() != denylist.sizes():
        raise BenchError(f"snapshot lost entries: {loaded.sizes()} != {denylist.sizes()}")
    size = f"{len(snapshot) / 1e6:.1f} MB ({len(snapshot) / entries:.0f} B/entry) msgpack"
    return [
        Row("snapshot()", f"{took * 1e3:.0f} ms", note=size),
        Row("load_snapshot() into empty", f"{load * 1e3:.0f} ms", note="decode + merge"),
    ]


def _prune_rows(denylist: Denylist, entries: int, now: float) -> list[Row]:
    """Prune once per second from the first expiry to the last, as housekeeping does."""
    second, end = math.floor(now), math.ceil(now + TTL + LEEWAY) + 1
    total, worst, calls, dropped = 0.0, 0.0, 0, 0
    while second <= end:
        start = time.perf_counter()
        dropped += denylist.prune(second)
        took = time.perf_counter() - start
        total, worst, calls, second = total + took, max(worst, took), calls + 1, second + 1
    if dropped != entries or any(denylist.sizes().values()):
        raise BenchError(f"prune dropped {dropped} of {entries} entries")
    per_second = entries / TTL
    return [
        Row(
            "prune(), once a second",
            f"{total / calls * 1e3:.2f} ms/call",
            note=f"worst {worst * 1e3:.1f} ms; ~{per_second:,.0f} entries expire per second",
        )
    ]


# --- the stream ------------------------------------------------------------------------------


@dataclass
class CatchUp:
    applied: int  # events applied by the follower
    seconds: float  # from connecting to caught up
    resyncs: int
    reconnects: int
    sizes: dict[str, int]
    stall: float = 0.0  # the longest the event loop was blocked, seconds
    profile: str = ""


async def _longest_stall(tick: float = 0.01) -> float:
    """The longest the event loop failed to run this task on time, until cancelled."""
    longest = 0.0
    try:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(tick)
            longest = max(longest, time.perf_counter() - start - tick)
    except asyncio.CancelledError:
        return longest


#: The authority of the measured stream: events and snapshots are signed as the service signs.
KEYSET = Keyset.generate("ES256")
SIGNER = EventSigner(lambda: KEYSET)


def _verifier() -> EventVerifier:
    return EventVerifier(LocalKeys(KEYSET), retain=3600.0)


def _headers(event: Revocation, payload: bytes) -> dict[str, str]:
    return {MSG_ID_HEADER: event.id, SIGNATURE_HEADER: SIGNER.sign(payload, time.time())}


async def _fill(
    nc: NATS, spec: StreamSpec, events: Sequence[Revocation], payloads: Sequence[bytes]
) -> None:
    """Publish every event; each chunk ends with an acknowledged publish (back-pressure)."""
    js = nc.jetstream(timeout=30.0)
    for start in range(0, len(events), CHUNK):
        end = min(start + CHUNK, len(events))
        for i in range(start, end - 1):
            subject = spec.subject_for(events[i])
            await nc.publish(subject, payloads[i], headers=_headers(events[i], payloads[i]))
        last = events[end - 1]
        await js.publish(
            spec.subject_for(last), payloads[end - 1], headers=_headers(last, payloads[end - 1])
        )


async def _follow(url: str, spec: StreamSpec, within: float, *, profile: bool) -> CatchUp:
    """Connect and follow the whole stream until caught up."""
    denylist = Denylist()
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    nc = await connect(url, "bench-follower")
    follower = JetStreamFollower(spec, denylist, verifier=_verifier())
    stall = asyncio.create_task(_longest_stall())
    try:
        if profiler is not None:
            profiler.enable()
        await follower.start(nc)
        await follower.wait_caught_up(within)
        took = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
        stats = nc.stats["reconnects"]
        run = CatchUp(follower.applied, took, follower.resyncs, stats, denylist.sizes())
    finally:
        stall.cancel()
        await follower.aclose()
        await nc.close()
    run.stall = await stall
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
        run.profile = out.getvalue()
    return run


def _catch_up_row(label: str, run: CatchUp, n: int, prefix: str = "") -> Row:
    rate = run.applied / run.seconds if run.seconds > 0 else 0.0
    note = (
        f"{prefix}{run.resyncs} consumer(s) made, {run.reconnects} reconnect(s), "
        f"event loop blocked up to {run.stall:.1f} s"
    )
    target = f"<= {TARGET_CATCH_UP:.0f} s"
    if run.applied >= n:
        rated = f"{rate:,.0f} events/s; " if not prefix else ""
        return Row(label, f"{run.seconds:.2f} s", target, f"{rated}{note}")
    eta = n / rate if rate else math.inf
    note = f"EXTRAPOLATED: {run.applied:,} in {run.seconds:.0f} s, {rate:,.0f} events/s; {note}"
    return Row(label, f"~{eta:.0f} s", target, note)


def _rate_row(label: str, count: int, took: float, n: int) -> Row:
    rate = count / took
    return Row(label, f"~{n / rate:.1f} s", note=f"{rate:,.0f} events/s over the first {count:,}")


async def _bare_push(nc: NATS, spec: StreamSpec, n: int) -> float:
    """Seconds for a bare push consumer (the follower's settings) to receive ``n`` events."""
    done = asyncio.Event()
    count = 0

    async def deliver(msg: Msg) -> None:
        nonlocal count
        if msg.headers and msg.headers.get("Status") == "100" and not msg.data:
            if msg.reply:
                await nc.publish(msg.reply)  # flow control
            return
        count += 1
        if count == n:
            done.set()

    js = nc.jetstream(timeout=5.0)
    inbox = nc.new_inbox()
    start = time.perf_counter()
    sub = await nc.subscribe(
        inbox, cb=deliver, pending_msgs_limit=1 << 20, pending_bytes_limit=1 << 30
    )
    info = await js.add_consumer(
        spec.name,
        api.ConsumerConfig(
            deliver_subject=inbox,
            deliver_policy=api.DeliverPolicy.ALL,
            filter_subject=spec.filter_subject,
            ack_policy=api.AckPolicy.NONE,
            flow_control=True,
            idle_heartbeat=0.5,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=5.0,
        ),
    )
    await done.wait()
    took = time.perf_counter() - start
    await sub.unsubscribe()
    await js.delete_consumer(spec.name, info.name)
    return took


async def _bare_pull(nc: NATS, spec: StreamSpec, n: int, batch: int) -> float:
    """Seconds for an ephemeral pull consumer to fetch ``n`` events, ``batch`` at a time."""
    js = nc.jetstream(timeout=5.0)
    start = time.perf_counter()
    psub = await js.pull_subscribe(
        spec.filter_subject,
        stream=spec.name,
        config=api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE, mem_storage=True, num_replicas=1, inactive_threshold=5.0
        ),
    )
    count = 0
    while count < n:
        count += len(await psub.fetch(min(batch, n - count), timeout=5.0))
    took = time.perf_counter() - start
    await psub.unsubscribe()
    return took


async def _with_snapshot(
    url: str,
    spec: StreamSpec,
    events: Sequence[Revocation],
    expected: dict[str, int],
    options: argparse.Namespace,
) -> list[Row]:
    """For each ``--tail``: a snapshot of all events but the tail stored by
    :func:`write_snapshot` (as the relay does), and a replica that starts with it."""
    rows: list[Row] = []
    for tail in sorted({min(len(events), t) for t in options.tail}, reverse=True):
        covered = len(events) - tail  # the stream sequence the snapshot is taken at
        writer = Denylist()
        for event in events[:covered]:
            writer.apply(event)
        nc = await nats.connect(url)
        try:
            js = nc.jetstream(timeout=10.0)
            created = (await js.stream_info(spec.name)).created
            start = time.perf_counter()
            info = await write_snapshot(js, spec, writer, covered, created, SIGNER)
            put = time.perf_counter() - start
            del writer
            store = await js.object_store(bucket_name(spec))
            start = time.perf_counter()
            await store.get(OBJECT_NAME, writeinto=io.BytesIO())  # without it: quadratic
            nats_get = time.perf_counter() - start
            start = time.perf_counter()
            if await read_snapshot(js, spec, _verifier()) is None:
                raise BenchError("read_snapshot() found no usable snapshot")
            read = time.perf_counter() - start
        finally:
            await nc.close()
        if not rows:
            size = f"{(info.size or 0) / 1e6:.1f} MB"
            rows.append(Row("snapshot: write_snapshot()", f"{put:.2f} s", note=size))
            rows.append(
                Row("snapshot: object store get()", f"{nats_get:.2f} s", note=f"{size}, nats-py's")
            )
            rows.append(Row("snapshot: read_snapshot()", f"{read:.2f} s", note=f"{size}, pull"))
        rows.append(await _restore(url, spec, covered, tail, expected, options))
    return rows


async def _restore(
    url: str,
    spec: StreamSpec,
    covered: int,
    tail: int,
    expected: dict[str, int],
    options: argparse.Namespace,
) -> Row:
    """A replica as the service starts one: ``JetStreamBus.start()`` finds the snapshot
    covering ``covered`` events, loads it, and its follower replays the rest."""
    denylist = Denylist()
    bus = JetStreamBus(
        url, spec, denylist, verifier=_verifier(), name="bench-replica", connect_wait=10.0
    )
    stall = asyncio.create_task(_longest_stall())
    start = time.perf_counter()
    try:
        await bus.start()
        await bus.follower.wait_caught_up(options.catch_up_timeout)
        took = time.perf_counter() - start
        follower = bus.follower
        reconnects = bus.nc.stats["reconnects"] if bus.nc is not None else 0
        run = CatchUp(follower.applied, took, follower.resyncs, reconnects, denylist.sizes())
        loaded = bus.snapshot_seq
    finally:
        stall.cancel()
        await bus.aclose()
    run.stall = await stall
    if loaded != covered:
        raise BenchError(f"the replica loaded a snapshot at {loaded}, expected {covered}")
    if run.applied >= tail and run.sizes != expected:
        raise BenchError(f"snapshot + tail gave {run.sizes}, the full replay {expected}")
    run.applied += covered
    parts = f"JetStreamBus.start(): snapshot, then {run.applied - covered:,} events applied; "
    return _catch_up_row(f"catch-up: snapshot + {tail:,} events", run, covered + tail, parts)


def _without_fsync(spec: ProcessSpec) -> ProcessSpec:
    """NATS with the server's default ``sync_interval``: filling 1M events with ``always``
    takes minutes, and the fill is not what is measured."""
    assert spec.config is not None
    return dataclasses.replace(spec, config=spec.config.replace("  sync_interval: always\n", ""))


async def stream_rows(
    events: Sequence[Revocation], payloads: Sequence[bytes], options: argparse.Namespace
) -> tuple[list[Row], str]:
    """Rows of the stream measurements, and the follower's profile if asked for."""
    n = len(events)
    rows: list[Row] = []
    nats_spec = NATS_SERVER if options.sync_always else _without_fsync(NATS_SERVER)
    with (
        tempfile.TemporaryDirectory(prefix="sessiond-bench-") as tmp,
        ManagedProcess(nats_spec, directory=Path(tmp) / "nats") as server,
    ):
        url = server.url
        spec = StreamSpec("BENCH_REVOCATIONS", "bench.revocations", 3600.0, 120.0)
        nc = await connect(url, "bench-filler")
        try:
            js = nc.jetstream(timeout=5.0)
            await ensure_stream(js, spec)
            start = time.perf_counter()
            await _fill(nc, spec, events, payloads)
            took = time.perf_counter() - start
            state = (await js.stream_info(spec.name)).state
        finally:
            await nc.close()
        if state.messages != n:
            raise BenchError(f"the stream holds {state.messages} of {n} events")
        mode = "always" if options.sync_always else "default, not always"
        note = f"{n / took:,.0f} events/s, {state.bytes / 1e6:.0f} MB, sync_interval {mode}"
        rows.append(Row("fill the stream", f"{took:.1f} s", note=note))

        timeout = options.catch_up_timeout
        full = await _follow(url, spec, timeout, profile=options.profile)
        rows.append(_catch_up_row("catch-up: follower, whole stream", full, n))
        server.check_alive()

        sample = min(n, options.sample)
        nc = await nats.connect(url)
        try:
            took = await _bare_push(nc, spec, sample)
            rows.append(_rate_row("bare nats-py push, no-op callback", sample, took, n))
            sample = max(1, sample // 4)  # pull is 4 to 6 times slower
            for batch in (256, 4096):
                took = await _bare_pull(nc, spec, sample, batch)
                rows.append(_rate_row(f"bare nats-py pull, fetch({batch})", sample, took, n))
        finally:
            await nc.close()

        expected = Denylist()
        for event in events:
            expected.apply(event)
        rows += await _with_snapshot(url, spec, events, expected.sizes(), options)
        server.check_alive()
    return rows, full.profile


# --- main ------------------------------------------------------------------------------------


def _parse(args: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench denylist", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--entries", type=int, default=DEFAULT_ENTRIES, help="live entries (default 1,000,000)"
    )
    parser.add_argument(
        "--catch-up-timeout",
        type=float,
        default=30.0,
        help="seconds to let a replay run before extrapolating (default 30)",
    )
    parser.add_argument(
        "--sync-always",
        action="store_true",
        help="fill the stream with sync_interval: always (slow)",
    )
    parser.add_argument("--no-stream", action="store_true", help="in-process measurements only")
    parser.add_argument(
        "--sample",
        type=int,
        default=200_000,
        help="events read by the bare nats-py push consumer (default 200,000)",
    )
    parser.add_argument(
        "--tail",
        type=int,
        nargs="+",
        default=[30_000, 15_000],
        help="events after the snapshot, one run each (default 30,000 and 15,000: 10 s and "
        "5 s of revocations at 1M per token lifetime)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of the follower's catch-up"
    )
    options = parser.parse_args(args)
    if options.entries < 1:
        parser.error("--entries must be at least 1")
    return options


def _print(rows: Sequence[Row]) -> None:
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("what", "value", "target")]
    header = Row("measure", "value", "target", "note")
    for row in (header, *rows):
        cells = (row.what.ljust(widths[0]), row.value.rjust(widths[1]), row.target.ljust(widths[2]))
        print("  ".join(cells), row.note, sep="  ")


def main(args: Sequence[str]) -> int:
    options = _parse(args)
    started = time.perf_counter()
    now = time.time()
    events = make_events(options.entries, now)
    payloads = [encode(event) for event in events]
    gc.freeze()  # the bench's own millions of objects are not the denylist's to collect
    print(
        f"denylist bench: {options.entries:,} events (60% token, 35% session, 5% subject), "
        f"Python {platform.python_version()}, msgspec {msgspec.__version__}",
        flush=True,
    )
    rows = in_process(events, payloads, now)
    profile = ""
    if not options.no_stream:
        more, profile = asyncio.run(stream_rows(events, payloads, options))
        rows += more
    _print(rows)
    if profile:
        print("\nfollower catch-up profile (cProfile, by own time):\n" + profile)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0
