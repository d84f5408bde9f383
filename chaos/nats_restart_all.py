"""SIGKILL all three NATS nodes after a run of revocations, restart them in the same dirs."""

from __future__ import annotations

import asyncio
import time

from chaos._api import Api, stored_session_ids
from chaos._frame import Figure, Options, Outcome
from sessiond.cluster import LocalCluster
from sessiond.settings import env_name

DOWN = 3.0  # seconds all three nodes stay down
WITHIN = 60.0  # seconds after the restart within which everything must be back
BUDGET = 1.0  # SESSIOND_PUBLISH_BUDGET: revocations during the outage answer 202 after it


async def _stored_within(cluster: LocalCluster, sids: set[str], within: float) -> set[str]:
    """The session ids in the stream once it holds all of ``sids`` or ``within`` passed."""
    started = time.monotonic()
    while True:
        stored = await stored_session_ids(cluster)
        if sids <= stored or time.monotonic() - started > within:
            return stored
        await asyncio.sleep(0.5)


async def _scenario(cluster: LocalCluster, before: int, during: int) -> Outcome:
    api = Api.of(cluster)
    try:
        victims = await api.logins(before + during)
        answers = await asyncio.gather(
            *(api.revoke_session(n % 2, v.sid) for n, v in enumerate(victims[:before]))
        )
        acknowledged = {
            v.sid for v, r in zip(victims[:before], answers, strict=True) if r.status_code == 204
        }
        for node in cluster.nats_nodes:
            node.kill()
        # Made while NATS is down: 202, waiting in the Redis outbox for the relay.
        outage = await asyncio.gather(
            *(api.revoke_session(n % 2, v.sid) for n, v in enumerate(victims[before:]))
        )
        pending = {
            v.sid for v, r in zip(victims[before:], outage, strict=True) if r.status_code == 202
        }
        await asyncio.sleep(max(0.0, DOWN - BUDGET))
        restarted = time.monotonic()
        for node in cluster.nats_nodes:
            node.start(wait=False)
        for node in cluster.nats_nodes:
            node.wait_ready()
        ready = await asyncio.gather(*(api.until_ready(r, WITHIN) for r in (0, 1)))
        ready_after = [None if t is None else time.monotonic() - restarted for t in ready]
        stored = await _stored_within(cluster, acknowledged | pending, WITHIN)
        drained = time.monotonic() - restarted
    finally:
        await api.aclose()
    slowest = max((t for t in ready_after if t is not None), default=WITHIN)
    return Outcome(
        "nats_restart_all",
        f"kill -9 all 3 NATS nodes after {before} revocations (204), {during} more during the "
        f"{DOWN:.0f} s outage, restart them in their directories",
        (
            Figure("acknowledged (204) revocations lost", len(acknowledged - stored), 0),
            Figure("revocations answered 204 before the kill", len(acknowledged), None),
            Figure("outage revocations answered 202 (outbox)", len(pending), None),
            Figure(
                "outage revocations answered 202 not in the stream after", len(pending - stored), 0
            ),
            Figure("outage revocations answered otherwise", during - len(pending), None),
            Figure("replicas not ready again within 60 s", ready.count(None), 0),
            Figure("restart to both replicas ready", round(slowest, 2), None, "s"),
            Figure("restart to every revocation in the stream", round(drained, 2), None, "s"),
        ),
    )


def run(options: Options) -> Outcome:
    """The restart in a fresh 3-node cluster with two replicas and the relay."""
    before, during = (60, 6) if options.quick else (200, 20)
    env = {env_name("publish_budget"): str(BUDGET)}
    with LocalCluster(2, nats_nodes=3, env=env) as cluster:
        return asyncio.run(_scenario(cluster, before, during))
