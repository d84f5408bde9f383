"""kill -9 Redis (AOF, appendfsync always) during logins and revocations, start it from its AOF."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from chaos._frame import Figure, Options, Outcome
from chaos._sessions import NO_RATE_LIMITS, Api, appendfsync
from sessiond.cluster import LocalCluster

DOWN_FOR = 2.0  # seconds between the kill and the start
APPLIED_WITHIN = 15.0  # seconds the relay gets to apply the revocations made while it was down


@dataclass
class Ledger:
    """What the clients were told: sessions created (201) and revoked (204)."""

    live: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    revoked_while_down: int = 0
    down: bool = False


async def _client(api: Api, urls: list[str], n: int, ledger: Ledger, stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        url = urls[(n + i) % len(urls)]
        i += 1
        if i % 3 == 0 and ledger.live:  # a third of the calls revoke a live session
            sid = ledger.live.pop(0)
            answer = await api.revoke_session(url, sid)
            if answer.status == 204:
                ledger.revoked.append(sid)
                ledger.revoked_while_down += ledger.down
            # otherwise unknown: stored or not, it counts in neither list
            continue
        created = await api.create(url, f"user-{n}-{i}")
        if created.status == 201:
            ledger.live.append(created.body["session_id"])
        else:
            await asyncio.sleep(0.05)  # 503 while Redis is down: do not spin


async def _load(cluster: LocalCluster, clients: int, before_kill: float) -> Ledger:
    ledger, stop, api = Ledger(), asyncio.Event(), Api(cluster.credential)
    tasks = [
        asyncio.create_task(_client(api, cluster.urls, n, ledger, stop)) for n in range(clients)
    ]
    await asyncio.sleep(before_kill)
    await asyncio.to_thread(cluster.redis.kill)
    ledger.down = True
    await asyncio.sleep(DOWN_FOR)
    # In this thread: a process started by a thread gets SIGTERM when the thread ends.
    cluster.redis.start(wait=False)
    await asyncio.to_thread(cluster.redis.wait_ready)
    ledger.down = False
    for replica in cluster.replicas:
        await asyncio.to_thread(replica.wait_ready)
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*tasks)
    await api.aclose()
    return ledger


async def _judge(cluster: LocalCluster, ledger: Ledger) -> tuple[int, int]:
    """(live sessions whose record is gone, revoked sessions whose record is still there
    once the relay had ``APPLIED_WITHIN`` seconds)."""
    api, gate, url = Api(cluster.credential, connections=16), asyncio.Semaphore(16), cluster.urls[0]

    async def status(sid: str) -> int:
        async with gate:
            answer = await api.session(url, sid)
        if answer.status not in (200, 404):
            raise RuntimeError(f"GET /v1/sessions/{sid}: {answer.status} {answer.error}")
        return answer.status

    lost = sum(s == 404 for s in await asyncio.gather(*(status(sid) for sid in ledger.live)))
    deadline = time.monotonic() + APPLIED_WITHIN
    back = ledger.revoked
    while back and time.monotonic() < deadline:
        statuses = await asyncio.gather(*(status(sid) for sid in back))
        back = [sid for sid, s in zip(back, statuses, strict=True) if s == 200]
        await asyncio.sleep(0.5)
    await api.aclose()
    return lost, len(back)


def run(options: Options) -> Outcome:
    with LocalCluster(replicas=2, env=NO_RATE_LIMITS) as cluster:
        appendfsync([cluster.redis.port], "always")
        clients, before = (8, 2.0) if options.quick else (16, 8.0)
        ledger = asyncio.run(_load(cluster, clients, before))
        lost, back = asyncio.run(_judge(cluster, ledger))
    return Outcome(
        "redis_aof",
        f"SIGKILL Redis (AOF, appendfsync always) during logins and revocations through 2 "
        f"replicas, start it {DOWN_FOR:g} s later from its AOF",
        (
            Figure("sessions acknowledged (201), not revoked", len(ledger.live), None),
            Figure("revocations acknowledged (204)", len(ledger.revoked), None),
            Figure("of which while Redis was down", ledger.revoked_while_down, None),
            Figure("acknowledged sessions lost", lost, 0),
            Figure(f"revoked sessions' records present {APPLIED_WITHIN:g} s after", back, 0),
        ),
    )
