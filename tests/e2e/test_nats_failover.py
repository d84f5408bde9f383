"""A JetStream leader election under a burst of revocations, against real processes: NATS as
a 3-node cluster (stream R3, ``sync_interval: always``), Redis and two sessiond replicas.

The stream leader is SIGKILLed in the middle of back-to-back revocations through the
service. A leader election is routine, not an outage: every revocation must still be
acknowledged (204, never 202 ``pending``), none may be missing from the stream afterwards,
and no revoked token may be accepted by the other replica once its revocation was answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from nats.js.api import StreamInfo

from chaos._api import connect_nats, leader_node, stored_session_ids, stream_info
from sessiond.cluster import LocalCluster
from sessiond.cluster.processes import ManagedProcess
from support.cluster import REVOKED, Api, problem_type

BURST = 150  # revocations, back-to-back
KILL_AFTER = 50  # the leader dies after this many acknowledged revocations


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(2, nats_nodes=3, relay=False) as cluster:
        yield cluster


@pytest.fixture
def api(cluster: LocalCluster) -> Iterator[Api]:
    api = Api(cluster)
    yield api
    api.close()


def stream_leader(cluster: LocalCluster) -> ManagedProcess:
    """The NATS node that leads the revocation stream (from the stream info's ``cluster``)."""

    async def info() -> StreamInfo:
        nc = await connect_nats(cluster)
        try:
            return await stream_info(nc)
        finally:
            await nc.close()

    found = asyncio.run(info())
    assert found.config.num_replicas == 3
    leader = leader_node(cluster, found)
    assert leader is not None, "no stream leader"
    return leader


def test_a_stream_leader_killed_during_a_burst_of_revocations_loses_and_delays_none(
    cluster: LocalCluster, api: Api
) -> None:
    victims = [api.login(n % 2) for n in range(BURST)]
    leader = stream_leader(cluster)
    answers: dict[int, int] = {}
    accepted_after_ack: list[str] = []
    acknowledged: list[str] = []
    slowest, started = 0.0, time.monotonic()
    for n, victim in enumerate(victims):
        if n == KILL_AFTER:
            leader.kill()
        replica = n % 2
        sent = time.monotonic()
        response = api.revoke_session(replica, victim.sid)
        slowest = max(slowest, time.monotonic() - sent)
        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        if response.status_code != 204:
            continue
        acknowledged.append(victim.sid)
        other = api.whoami(1 - replica, victim.access)  # right after the acknowledgement
        if other.status_code == 200:
            accepted_after_ack.append(victim.sid)
        else:
            assert other.status_code in (401, 503), other.text  # 503: stale, fail_closed
    took = time.monotonic() - started
    leader.start()  # same port and directory: it rejoins as a follower

    stored = asyncio.run(stored_session_ids(cluster))
    lost = [sid for sid in acknowledged if sid not in stored]
    figures = (
        f"{BURST} revocations in {took:.1f} s, stream leader {leader.name} SIGKILLed after "
        f"{KILL_AFTER}: answers {answers}, slowest {slowest * 1000:.0f} ms; acknowledged "
        f"revocations lost: {len(lost)}; answered 202 instead of 204: {answers.get(202, 0)}; "
        f"revoked tokens accepted by the other replica after the acknowledgement: "
        f"{len(accepted_after_ack)}"
    )
    print(figures)
    assert answers == {204: BURST}, figures
    assert not lost, figures
    assert not accepted_after_ack, figures
    for replica in (0, 1):  # and every revoked token is refused on both, for good
        response = api.whoami(replica, victims[-1].access)
        assert response.status_code == 401, response.text
        assert problem_type(response) == REVOKED
