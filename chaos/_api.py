"""The service's HTTP API as the chaos scenarios call it (asyncio, one pool per replica),
and the NATS stream as they inspect it; used by the NATS scenarios (leader_kill,
nats_restart_all, replica_pause, nats_partition, fanout)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import nats
from nats.aio.client import Client as NATS
from nats.js.api import StreamInfo

from sessiond.cluster import LocalCluster
from sessiond.cluster.processes import ManagedProcess
from sessiond.events import SessionRevoked, decode
from sessiond.settings import DEFAULT_STREAM, env_name

REVOKED = "urn:sessiond:problem:token-revoked"
STALE = "urn:sessiond:problem:denylist-stale"


@dataclass(frozen=True)
class Session:
    """A signed-in session: its subject, id and access token."""

    sub: str
    sid: str
    access: str


def problem_type(response: httpx.Response) -> str:
    """The problem type of an error answer ("" for anything else)."""
    if not response.content or "json" not in response.headers.get("content-type", ""):
        return ""
    return str(response.json().get("type", ""))


class Api:
    """HTTP to the replicas of ``urls`` with ``credential`` (a service credential)."""

    def __init__(self, urls: Sequence[str], credential: str, connections: int = 32) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.service = {"Authorization": f"Bearer {credential}"}
        self.http = [httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) for url in urls]

    @classmethod
    def of(cls, cluster: LocalCluster, connections: int = 32) -> Api:
        return cls(cluster.urls, cluster.credential, connections)

    async def aclose(self) -> None:
        await asyncio.gather(*(http.aclose() for http in self.http))

    async def login(self, replica: int) -> Session:
        """A new session of a new subject, created through ``replica`` (0-based)."""
        sub = f"chaos-{uuid.uuid4().hex[:12]}"
        response = await self.http[replica].post(
            "/v1/sessions", json={"subject": sub}, headers=self.service
        )
        if response.status_code != 201:
            raise RuntimeError(f"sign-in answered {response.status_code}: {response.text}")
        body = response.json()
        return Session(sub, body["session_id"], body["access_token"])

    async def logins(self, count: int, concurrency: int = 16) -> list[Session]:
        """``count`` sessions, taking turns over the replicas."""
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int) -> Session:
            async with gate:
                return await self.login(n % len(self.http))

        return list(await asyncio.gather(*(one(n) for n in range(count))))

    async def whoami(self, replica: int, access: str) -> httpx.Response:
        return await self.http[replica].get(
            "/v1/whoami", headers={"Authorization": f"Bearer {access}"}
        )

    async def readyz(self, replica: int) -> int:
        """``/readyz``'s status, 0 if the replica does not answer."""
        try:
            return (await self.http[replica].get("/readyz", timeout=2.0)).status_code
        except httpx.HTTPError:
            return 0

    async def revoke_session(self, replica: int, sid: str) -> httpx.Response:
        return await self.http[replica].delete(f"/v1/sessions/{sid}", headers=self.service)

    async def until_ready(self, replica: int, within: float) -> float | None:
        """Seconds until ``replica``'s ``/readyz`` answers 200, None if not within."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            if await self.readyz(replica) == 200:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        return None


async def connect_nats(cluster: LocalCluster, user: str = "authority") -> NATS:
    """A NATS connection to ``cluster`` as ``user`` (TLS if the cluster has it)."""
    login = cluster.nats_login(user)
    context = cluster.pki.client_context() if cluster.pki is not None else None
    return await nats.connect(
        cluster.nats_url.split(","),
        user=login[env_name("nats_user")],
        password=login[env_name("nats_password")],
        tls=context,
        connect_timeout=2,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )


async def stream_info(nc: NATS) -> StreamInfo:
    return await nc.jetstream().stream_info(DEFAULT_STREAM)


def leader_node(cluster: LocalCluster, info: StreamInfo) -> ManagedProcess | None:
    """The NATS node that leads the stream according to ``info``, None during an election."""
    leader = info.cluster.leader if info.cluster is not None else None
    return next((node for node in cluster.nats_nodes if node.name == leader), None)


async def stored_session_ids(cluster: LocalCluster) -> set[str]:
    """The session id of every session revocation in the stream."""
    nc = await connect_nats(cluster)
    try:
        js = nc.jetstream()
        last = (await stream_info(nc)).state.last_seq
        found: set[str] = set()
        if not last:
            return found
        subscription = await js.subscribe(">", stream=DEFAULT_STREAM, ordered_consumer=True)
        while True:
            message = await subscription.next_msg(timeout=10)
            event = decode(message.data)
            if isinstance(event, SessionRevoked):
                found.add(event.sid)
            if message.metadata.sequence.stream >= last:
                break
        await subscription.unsubscribe()
        return found
    finally:
        await nc.close()


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100, nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]
