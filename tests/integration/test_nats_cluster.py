"""The local cluster's NATS as three nodes with mutual-TLS routes (``--nats-nodes 3 --tls``):
the routes really connect, so a message published on one node reaches a client of another,
and the revocation stream is replicated on all three."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import nats
import pytest
from nats.aio.client import Client as NATS

from sessiond.cluster import LocalCluster
from sessiond.settings import DEFAULT_STREAM, DEFAULT_SUBJECT, env_name

pytestmark = pytest.mark.nats


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(1, nats_nodes=3, relay=False, tls=True) as cluster:
        yield cluster


async def connect(cluster: LocalCluster, node: int) -> NATS:
    """A client of node ``node`` only (no reconnect elsewhere), as the authority user."""
    assert cluster.pki is not None
    login = cluster.nats_login("authority")
    return await nats.connect(
        cluster.nats_nodes[node].url,
        user=login[env_name("nats_user")],
        password=login[env_name("nats_password")],
        tls=cluster.pki.client_context(),
        allow_reconnect=False,
        dont_randomize=True,
    )


def test_every_process_gets_every_node_over_tls(cluster: LocalCluster) -> None:
    urls = cluster.nats_url.split(",")
    assert urls == [node.url for node in cluster.nats_nodes]
    assert len(set(urls)) == 3
    assert all(url.startswith("tls://") for url in urls)
    assert cluster.replicas[0].env[env_name("nats_url")] == cluster.nats_url
    assert cluster.replicas[0].env[env_name("nats_replicas")] == "3"
    for node in cluster.nats_nodes:
        config = node.config_file.read_text()
        route_block = config[config.index("cluster {") :]
        assert "verify: true" in route_block.split("\n}\n")[0]  # mutual TLS on the routes


async def test_a_message_published_on_one_node_reaches_a_client_of_another(
    cluster: LocalCluster,
) -> None:
    receipts = f"{DEFAULT_SUBJECT}-applied.authority"  # what the authority may publish and read
    first, last = await connect(cluster, 0), await connect(cluster, 2)
    try:
        assert first.connected_url is not None
        assert last.connected_url is not None
        assert first.connected_url.port != last.connected_url.port
        subscription = await last.subscribe(receipts)
        await last.flush()
        got = None
        for _ in range(50):  # the interest travels over the route first
            await first.publish(receipts, b"over the route")
            try:
                got = await subscription.next_msg(timeout=0.1)
                break
            except nats.errors.TimeoutError:
                continue
        assert got is not None, "no message crossed the route from node 1 to node 3"
        assert got.data == b"over the route"

        info = await last.jetstream().stream_info(DEFAULT_STREAM)
        assert info.config.num_replicas == 3
        assert info.cluster is not None
        peers = {info.cluster.leader, *(peer.name for peer in info.cluster.replicas or [])}
        assert peers == {node.name for node in cluster.nats_nodes}
    finally:
        await asyncio.gather(first.close(), last.close())
