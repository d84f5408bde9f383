"""kill -9 the Redis primary during a login storm; Sentinel promotes the replica."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from chaos._frame import Figure, Options, Outcome
from chaos._sessions import NO_RATE_LIMITS, Api, appendfsync
from sessiond.cluster import LocalCluster
from sessiond.settings import env_name

POLICIES = ("everysec", "always")
#: No grace: an old refresh token presented after its rotation is reuse, never a replay, so
#: an acceptance can only mean that the rotation itself was lost.
ENV = {**NO_RATE_LIMITS, env_name("refresh_grace"): "0"}
HARD_LIMIT = 40.0  # seconds of storm at most, failover included


@dataclass
class Storm:
    """What the storm's clients were told: sessions created (201) and rotated (200)."""

    created: list[str] = field(default_factory=list)  # session ids
    rotated: list[tuple[str, str]] = field(default_factory=list)  # (sid, the old token)
    answers: list[tuple[float, float, int]] = field(default_factory=list)  # sent, done, status
    killed_at: float | None = None

    def recovered_at(self) -> float | None:
        """When the first 201 on a request sent after the kill came, if one has."""
        killed = self.killed_at
        done = [d for s, d, status in self.answers if killed and s > killed and status == 201]
        return min(done, default=None)

    def outage(self) -> float:
        """Seconds from the kill to the first 201 on a request sent after it."""
        recovered = self.recovered_at()
        return 0.0 if recovered is None or self.killed_at is None else recovered - self.killed_at


async def _client(api: Api, urls: list[str], n: int, storm: Storm, stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        url, other = urls[(n + i) % len(urls)], urls[(n + i + 1) % len(urls)]
        i += 1
        sent = time.monotonic()
        created = await api.create(url, f"user-{n}-{i}")
        storm.answers.append((sent, time.monotonic(), created.status))
        if created.status != 201:
            await asyncio.sleep(0.05)  # a 503 during the failover: do not spin
            continue
        sid, old = created.body["session_id"], created.body["refresh_token"]
        storm.created.append(sid)
        if (await api.refresh(other, old)).status == 200:
            storm.rotated.append((sid, old))


async def _storm(cluster: LocalCluster, clients: int, before_kill: float) -> Storm:
    storm, stop = Storm(), asyncio.Event()
    api = Api(cluster.credential)
    tasks = [
        asyncio.create_task(_client(api, cluster.urls, n, storm, stop)) for n in range(clients)
    ]
    started = time.monotonic()
    await asyncio.sleep(before_kill)
    storm.killed_at = time.monotonic()
    await asyncio.to_thread(cluster.redis.kill)
    while time.monotonic() - started < HARD_LIMIT:  # until 2 s of service after the failover
        await asyncio.sleep(0.2)
        recovered = storm.recovered_at()
        if recovered is not None and time.monotonic() - recovered > 2:
            break
    stop.set()
    await asyncio.gather(*tasks)
    await api.aclose()
    return storm


async def _judge(cluster: LocalCluster, storm: Storm) -> tuple[int, int]:
    """(acknowledged sessions whose record is gone, old refresh tokens accepted again)."""
    api = Api(cluster.credential, connections=16)
    url, gate = cluster.urls[0], asyncio.Semaphore(16)

    async def missing(sid: str) -> bool:
        async with gate:
            status = (await api.session(url, sid)).status
        if status not in (200, 404):  # the check itself failed: no figure
            raise RuntimeError(f"GET /v1/sessions/{sid}: {status}")
        return status == 404

    async def accepted(old: str) -> bool:
        async with gate:
            return (await api.refresh(url, old)).status == 200

    lost = sum(await asyncio.gather(*(missing(sid) for sid in storm.created)))
    resurrected = sum(await asyncio.gather(*(accepted(old) for _, old in storm.rotated)))
    await api.aclose()
    return lost, resurrected


def _once(policy: str, options: Options) -> tuple[Storm, int, int]:
    with LocalCluster(replicas=2, redis_sentinel=True, env=ENV) as cluster:
        appendfsync([node.port for node in cluster.redis_nodes[:2]], policy)
        clients, before = (8, 2.0) if options.quick else (16, 5.0)
        storm = asyncio.run(_storm(cluster, clients, before))
        lost, resurrected = asyncio.run(_judge(cluster, storm))
    return storm, lost, resurrected


def run(options: Options) -> Outcome:
    figures: list[Figure] = []
    for policy in POLICIES:
        storm, lost, resurrected = _once(policy, options)
        figures += [
            Figure(f"{policy}: sessions acknowledged (201)", len(storm.created), None),
            Figure(f"{policy}: acknowledged sessions lost", lost, None),
            Figure(f"{policy}: rotations acknowledged (200)", len(storm.rotated), None),
            Figure(f"{policy}: rotated-away refresh tokens accepted after", resurrected, 0),
            Figure(f"{policy}: outage (kill to first 201)", round(storm.outage(), 2), None, "s"),
        ]
    return Outcome(
        "redis_failover",
        "SIGKILL the Redis primary (Sentinel, 1 replica) during a login storm through 2 "
        "replicas, each login refreshed once; once with appendfsync everysec, once always",
        tuple(figures),
        note="replication to the Sentinel replica is asynchronous: a write the primary "
        "acknowledged but had not sent yet is lost with it, whatever appendfsync says "
        "(the dead primary's AOF is never read again: the replica is promoted)",
    )
