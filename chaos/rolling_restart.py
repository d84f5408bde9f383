"""Restart every replica in turn (SIGTERM, start, ready) and rotate the key, under steady load."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

from chaos._frame import Figure, Options, Outcome
from chaos._sessions import NO_RATE_LIMITS, Answer, Api
from sessiond.cluster import LocalCluster
from sessiond.cluster.processes import which

CLIENTS = 6
ROTATE_DELAY = 6.0  # seconds: longer than a replica takes to see the new keyset file (2 s)
SETTLE = 3.0  # seconds of load before the first restart and after the last
#: Seconds a replica is out of the balancer before its SIGTERM, as deploy/k8s's preStop hook
#: keeps a terminating pod while its endpoints are removed (5 s there). Without it, a request
#: sent on a kept-alive connection that the stopping replica closes gets no answer.
DRAIN = 1.0


class Balancer:
    """Sends each call to a client's replica, and to the next one only when the connection
    is refused, as a load balancer would, skipping replicas taken ``out`` of rotation; counts
    the answers."""

    def __init__(self, api: Api, urls: list[str]) -> None:
        self.api, self.urls = api, urls
        self.out: set[str] = set()
        self.counts: Counter[str] = Counter()

    async def call(
        self, op: str, start: int, request: Callable[[str], Awaitable[Answer]]
    ) -> Answer:
        turn = [self.urls[(start + n) % len(self.urls)] for n in range(len(self.urls))]
        for url in [url for url in turn if url not in self.out]:
            answer = await request(url)
            if not answer.refused:
                break
            self.counts["retried after a refused connection"] += 1
        self.counts["requests"] += 1
        if not 200 <= answer.status < 300:
            self.counts[f"failed {op}: {answer.status or answer.error}"] += 1
        return answer


async def _client(balancer: Balancer, n: int, stop: asyncio.Event) -> None:
    api, tokens, i = balancer.api, None, n
    while not stop.is_set():
        i += 1
        if tokens is None:
            created = await balancer.call("create", i, partial(api.create, subject=f"user-{n}"))
            tokens = created.body if created.status == 201 else None
            continue
        access, refresh = tokens["access_token"], tokens["refresh_token"]
        await balancer.call("whoami", i, partial(api.whoami, access_token=access))
        refreshed = await balancer.call(
            "refresh", i + 1, partial(api.refresh, refresh_token=refresh)
        )
        tokens = refreshed.body if refreshed.status == 200 else None
        await asyncio.sleep(0.02)


async def _roll(cluster: LocalCluster) -> Counter[str]:
    api, stop = Api(cluster.credential), asyncio.Event()
    balancer = Balancer(api, cluster.urls)
    tasks = [asyncio.create_task(_client(balancer, n, stop)) for n in range(CLIENTS)]
    await asyncio.sleep(SETTLE)
    for n, (url, replica) in enumerate(zip(cluster.urls, cluster.replicas, strict=True)):
        balancer.out.add(url)
        await asyncio.sleep(DRAIN)
        await asyncio.to_thread(replica.stop)  # SIGTERM, SIGKILL only after its grace
        # In this thread: a process started by a thread gets SIGTERM when the thread ends.
        replica.start(wait=False)
        await asyncio.to_thread(replica.wait_ready)
        balancer.out.discard(url)
        if n == 0:
            rotate = [which("sessiond"), "keys", "rotate", "--delay", str(ROTATE_DELAY)]
            rotate += ["--file", str(cluster.keyset_file)]
            await asyncio.to_thread(subprocess.run, rotate, check=True, capture_output=True)
    await asyncio.sleep(SETTLE + ROTATE_DELAY)
    stop.set()
    await asyncio.gather(*tasks)
    await api.aclose()
    return balancer.counts


def run(options: Options) -> Outcome:
    with LocalCluster(replicas=3, env=NO_RATE_LIMITS) as cluster:
        counts = asyncio.run(_roll(cluster))
    failed = {what: count for what, count in counts.items() if what.startswith("failed")}
    return Outcome(
        "rolling_restart",
        f"{CLIENTS} clients (whoami, refresh, login) through a balancer that retries only a "
        f"refused connection; every one of 3 replicas restarted in turn (out of the balancer "
        f"for {DRAIN:g} s as by a preStop hook, SIGTERM, start, ready, back in), a key "
        f"rotation with --delay {ROTATE_DELAY:g} after the first",
        (
            Figure("requests", counts["requests"], None),
            Figure(
                "retried after a refused connection",
                counts["retried after a refused connection"],
                None,
            ),
            Figure("failed requests (not 2xx)", sum(failed.values()), 0),
        ),
        note="; ".join(f"{what}: {count}" for what, count in sorted(failed.items())),
    )
