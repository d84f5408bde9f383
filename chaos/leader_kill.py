"""SIGKILL the JetStream stream leader during a burst of revocations through two replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos._api import (
    Api,
    Session,
    connect_nats,
    leader_node,
    percentile,
    stored_session_ids,
    stream_info,
)
from chaos._frame import Figure, Options, Outcome
from sessiond.cluster import LocalCluster
from sessiond.cluster.processes import ManagedProcess

CLIENTS = 32  # concurrent revoking clients, each taking turns over the replicas


@dataclass
class Burst:
    """What the burst's clients saw."""

    answers: dict[int, int] = field(default_factory=dict)
    acknowledged: list[str] = field(default_factory=list)
    accepted_after_ack: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    killed_at: float = 0.0
    rate_before_kill: float = 0.0


async def _revoke_all(
    api: Api, victims: list[Session], kill_after: int, kill: Callable[[], None]
) -> Burst:
    """Revoke every victim back to back from :data:`CLIENTS` clients; call ``kill`` once
    ``kill_after`` revocations are acknowledged. Each acknowledged revocation's token is then
    checked at once on the other replica."""
    burst = Burst()
    queue = list(enumerate(victims))
    queue.reverse()
    started = time.monotonic()

    async def client() -> None:
        while queue:
            n, victim = queue.pop()
            replica = n % 2
            sent = time.monotonic()
            response = await api.revoke_session(replica, victim.sid)
            burst.latencies.append(time.monotonic() - sent)
            burst.answers[response.status_code] = burst.answers.get(response.status_code, 0) + 1
            if response.status_code != 204:
                continue
            burst.acknowledged.append(victim.sid)
            if len(burst.acknowledged) == kill_after:
                burst.killed_at = time.monotonic()
                burst.rate_before_kill = kill_after / (burst.killed_at - started)
                kill()
            other = await api.whoami(1 - replica, victim.access)
            if other.status_code == 200:
                burst.accepted_after_ack.append(victim.sid)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return burst


async def _election(
    cluster: LocalCluster, killed: ManagedProcess, kill: asyncio.Event, within: float
) -> float:
    """Seconds from the kill until the stream info names another leader (polled)."""
    nc = await connect_nats(cluster)
    try:
        await kill.wait()
        started = time.monotonic()
        while time.monotonic() - started < within:
            try:
                leader = leader_node(cluster, await stream_info(nc))
            except Exception:  # no leader to answer yet
                leader = None
            if leader is not None and leader is not killed:
                return time.monotonic() - started
            await asyncio.sleep(0.02)
        return within
    finally:
        await nc.close()


async def _scenario(cluster: LocalCluster, count: int) -> Outcome:
    api = Api.of(cluster, connections=CLIENTS * 2)
    try:
        victims = await api.logins(count)
        nc = await connect_nats(cluster)
        leader = leader_node(cluster, await stream_info(nc))
        await nc.close()
        if leader is None:
            raise RuntimeError("the stream has no leader before the burst")
        killed = asyncio.Event()

        def kill() -> None:
            leader.kill()
            killed.set()

        kill_after = count // 3
        election = asyncio.create_task(_election(cluster, leader, killed, within=30.0))
        started = time.monotonic()
        burst = await _revoke_all(api, victims, kill_after, kill)
        took = time.monotonic() - started
        elected = await election
        leader.start()  # same port and directory: it rejoins as a follower
        stored = await stored_session_ids(cluster)
    finally:
        await api.aclose()
    lost = [sid for sid in burst.acknowledged if sid not in stored]
    others = count - burst.answers.get(204, 0) - burst.answers.get(202, 0)
    return Outcome(
        "leader_kill",
        f"kill -9 the stream leader ({leader.name}) after {kill_after} of {count} revocations "
        f"from {CLIENTS} clients over 2 replicas (NATS 3 nodes, R3)",
        (
            Figure("acknowledged revocations lost", len(lost), 0),
            Figure(
                "revoked tokens accepted by the other replica after the ack",
                len(burst.accepted_after_ack),
                0,
            ),
            Figure("revocations answered 202 instead of 204", burst.answers.get(202, 0), 0),
            Figure("revocations answered neither 204 nor 202", others, 0),
            Figure("revocation rate before the kill", round(burst.rate_before_kill), None, "/s"),
            Figure("revocation rate over the burst", round(count / took), None, "/s"),
            Figure("stream leader election", round(elected, 2), None, "s"),
            Figure("revoke p50", round(percentile(burst.latencies, 50) * 1000, 1), None, "ms"),
            Figure("revoke max", round(max(burst.latencies) * 1000), None, "ms"),
        ),
        note="the issue asks for >= 200 revocations/s; the rate is what the machine gave "
        "(R3 with sync_interval always fsyncs on 3 nodes sharing its disk and cores)",
    )


def run(options: Options) -> Outcome:
    """The leader kill in a fresh 3-node cluster with two replicas and the relay."""
    count = 120 if options.quick else 300
    with LocalCluster(2, nats_nodes=3) as cluster:
        return asyncio.run(_scenario(cluster, count))
