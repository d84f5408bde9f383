"""Sign-ins, refreshes, verifications and revocations for --soak seconds: do replicas stay flat?"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from chaos._frame import Figure, Options, Outcome
from chaos._sessions import NO_RATE_LIMITS, Api
from sessiond.cluster import LocalCluster
from sessiond.cluster.processes import ManagedProcess
from sessiond.settings import env_name

CLIENTS = 6
ACCESS_TTL = 10  # seconds: revocations' denylist entries expire within the soak
LEEWAY = 5
PRUNE_MARGIN = 5.0  # seconds: the denylist's prune interval (2 s) and slack
#: %: RSS over the soak's second half. The first minutes' growth (allocator arenas, caches,
#: about +10 % here) levels off: a 600 s soak ends within 1 MiB of a 180 s one. A leak keeps
#: growing through the second half.
RSS_GROWTH = 5.0
FD_GROWTH = 5  # descriptors: a leak of one per request would be thousands
DENYLIST = "sessiond_denylist_entries"


@dataclass(frozen=True)
class Usage:
    """A replica's process group (server and worker) as ``/proc`` shows it."""

    rss_mib: float
    fds: int
    threads: int


def usage(process: ManagedProcess) -> Usage:
    """Summed over every live process of ``process``'s group."""
    rss_kib, fds, threads = 0, 0, 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != process.pid:
                continue
            status = dict(
                line.split(":", 1) for line in (stat.parent / "status").read_text().splitlines()
            )
            rss_kib += int(status["VmRSS"].split()[0])
            threads += int(status["Threads"])
            fds += len(list((stat.parent / "fd").iterdir()))
    return Usage(rss_kib / 1024, fds, threads)


async def _client(api: Api, urls: list[str], n: int, stop: asyncio.Event) -> int:
    """Sign in, verify, refresh, verify, revoke, verify (refused), again; the failures."""
    failures, i = 0, 0
    while not stop.is_set():
        url, other = urls[i % len(urls)], urls[(i + 1) % len(urls)]
        i += 1
        created = await api.create(url, f"soak-{n}-{i % 50}")
        if created.status != 201:
            failures += 1
            continue
        for _ in range(3):
            failures += (await api.whoami(other, created.body["access_token"])).status != 200
        refreshed = await api.refresh(other, created.body["refresh_token"])
        failures += refreshed.status != 200
        access = refreshed.body.get("access_token", created.body["access_token"])
        failures += (await api.whoami(url, access)).status != 200
        failures += (await api.revoke_session(url, created.body["session_id"])).status != 204
        failures += (await api.whoami(other, access)).status != 401
    return failures


@dataclass(frozen=True)
class Soaked:
    """Each replica's usage after the warmup, at half-time and at the end, its denylist
    entries before, at the end of and a TTL after the load, and the calls that failed."""

    start: list[Usage]
    middle: list[Usage]
    end: list[Usage]
    denylist: tuple[list[float], list[float], list[float]]
    failures: int


async def _denylist(api: Api, urls: list[str]) -> list[float]:
    return [await api.gauge(url, DENYLIST) for url in urls]


async def _soak(cluster: LocalCluster, seconds: float, warmup: float) -> Soaked:
    api, stop, urls = Api(cluster.credential), asyncio.Event(), cluster.urls
    denylist_before = await _denylist(api, urls)
    tasks = [asyncio.create_task(_client(api, urls, n, stop)) for n in range(CLIENTS)]
    await asyncio.sleep(warmup)
    start = [usage(replica) for replica in cluster.replicas]
    await asyncio.sleep(max(0.0, seconds / 2 - warmup))
    middle = [usage(replica) for replica in cluster.replicas]
    await asyncio.sleep(seconds / 2)
    end = [usage(replica) for replica in cluster.replicas]
    denylist_end = await _denylist(api, urls)
    stop.set()
    failures = sum(await asyncio.gather(*tasks))
    await asyncio.sleep(ACCESS_TTL + LEEWAY + PRUNE_MARGIN)
    denylist_after = await _denylist(api, urls)
    await api.aclose()
    denylists = (denylist_before, denylist_end, denylist_after)
    return Soaked(start, middle, end, denylists, failures)


def _growth(before: Usage, after: Usage) -> float:
    return round(100 * (after.rss_mib - before.rss_mib) / before.rss_mib, 1)


def _figures(
    n: int, start: Usage, middle: Usage, end: Usage, denylist: tuple[float, float, float]
) -> list[Figure]:
    before, during, after = denylist
    return [
        Figure(f"replica {n}: RSS at start", round(start.rss_mib, 1), None, "MiB"),
        Figure(f"replica {n}: RSS at half-time", round(middle.rss_mib, 1), None, "MiB"),
        Figure(f"replica {n}: RSS at end", round(end.rss_mib, 1), None, "MiB"),
        Figure(f"replica {n}: RSS growth, first half", _growth(start, middle), None, "%"),
        Figure(f"replica {n}: RSS growth, second half", _growth(middle, end), RSS_GROWTH, "%"),
        Figure(f"replica {n}: open fds at start", start.fds, None),
        Figure(f"replica {n}: open fds growth", end.fds - start.fds, FD_GROWTH),
        Figure(f"replica {n}: threads at start", start.threads, None),
        Figure(f"replica {n}: threads growth", end.threads - start.threads, None),
        Figure(f"replica {n}: denylist entries at end of load", during, None),
        Figure(f"replica {n}: denylist entries over the start, TTL after", after - before, 0),
    ]


def run(options: Options) -> Outcome:
    seconds = 20.0 if options.quick else options.soak_seconds
    warmup = min(10.0, seconds / 4)
    env = {
        **NO_RATE_LIMITS,
        env_name("access_ttl"): str(ACCESS_TTL),
        env_name("leeway"): str(LEEWAY),
    }
    with LocalCluster(replicas=2, env=env) as cluster:
        started = time.monotonic()
        result = asyncio.run(_soak(cluster, seconds, warmup))
        took = time.monotonic() - started
    figures = [Figure("failed calls", result.failures, 0)]
    before, during, after = result.denylist
    usages = zip(result.start, result.middle, result.end, strict=True)
    for n, (start, middle, end) in enumerate(usages, 1):
        denylist = (before[n - 1], during[n - 1], after[n - 1])
        figures += _figures(n, start, middle, end, denylist)
    return Outcome(
        "soak",
        f"{seconds:g} s of sign-in, verify, refresh, revoke by {CLIENTS} clients on 2 replicas "
        f"(access TTL {ACCESS_TTL} s); start measured after {warmup:g} s, denylist "
        f"{ACCESS_TTL + LEEWAY + PRUNE_MARGIN:g} s after the load ({took:.0f} s in all)",
        tuple(figures),
        note="asyncio tasks are not observable from outside a replica: its threads are "
        "counted instead (/proc/PID/status), with RSS and /proc/PID/fd, summed over its "
        "process group (server and worker)",
    )
