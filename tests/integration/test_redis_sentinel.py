"""The service behind Redis Sentinel (``redis+sentinel://``): a primary, a replica and three
Sentinels as real processes. SIGKILL the primary: until the Sentinels have promoted the
replica every create and refresh is 503 problem+json (never a 500); then the service finds
the new master by itself and every replicated session lives on."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.cluster.sentinel import MASTER_NAME, SentinelTopology
from sessiond.errors import ConfigError
from sessiond.redis_client import acl_user
from sessiond.runtime import Runtime
from sessiond.settings import SentinelLocation, Settings, sentinel_location
from support.authority import Authority, assert_problem, distributed_settings
from support.secrets import register

USER = "sessiond"
PASSWORD = secrets.token_hex(16)
register("redis password", PASSWORD)
#: Sentinel calls the master down after 1 s; an election and the promotion take a few more.
FAILOVER_BOUND = 15.0


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[SentinelTopology]:
    topology = SentinelTopology(tmp_path / "redis", users=[acl_user(USER, PASSWORD)])
    register("redis sentinel password", topology.sentinel_password)
    try:
        topology.start()
        yield topology
    finally:
        for process in topology.nodes:
            process.close()


def master_port(topology: SentinelTopology) -> int:
    """The master's port as the first Sentinel that answers names it."""
    for sentinel in topology.sentinels:
        if sentinel.running:
            client = redis.Redis(port=sentinel.port, password=topology.sentinel_password)
            with client:
                address = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                assert isinstance(address, tuple), address
                return int(address[1])
    raise AssertionError("no Sentinel runs")


async def test_a_primary_kill_is_a_bounded_503_outage_then_the_replica_serves(
    topology: SentinelTopology, tmp_path: Path
) -> None:
    settings, secret = distributed_settings(
        topology.url,
        tmp_path,
        redis_username=USER,
        redis_password=PASSWORD,
        redis_sentinel_password=topology.sentinel_password,
    )
    runtime = Runtime(settings)
    http: AsyncTestClient[Any]
    async with AsyncTestClient(create_app(runtime)) as http:
        authority = Authority(http, runtime, secret)
        before = [await authority.login(f"user-{n}") for n in range(5)]
        with redis.Redis(port=topology.primary.port) as primary:
            assert primary.wait(1, 5000) == 1, "the replica has every session before the kill"
        assert master_port(topology) == topology.primary.port

        topology.primary.kill()
        killed = time.monotonic()
        refresh_token = before[0]["refresh_token"]
        answers: dict[str, int] = {}
        while True:
            created = await http.post(
                "/v1/sessions", json={"subject": "storm"}, headers=authority.service
            )
            refreshed = await authority.refresh(refresh_token)
            for name, response in (("create", created), ("refresh", refreshed)):
                key = f"{name} {response.status_code}"
                answers[key] = answers.get(key, 0) + 1
                if response.status_code == 503:
                    assert_problem(response, 503, "store-unavailable")
            assert created.status_code in (201, 503), created.text
            assert refreshed.status_code in (200, 503), refreshed.text
            if refreshed.status_code == 200:
                refresh_token = refreshed.json()["refresh_token"]
            if created.status_code == 201 and refreshed.status_code == 200:
                break
            outage = time.monotonic() - killed
            assert outage < FAILOVER_BOUND, (
                f"still no master {outage:.1f} s after the kill; answers: {answers}"
            )
        outage = time.monotonic() - killed
        print(f"Sentinel failover: {outage:.2f} s of 503s after SIGKILL; answers: {answers}")
        assert answers.get("create 503", 0) > 0, (
            f"the kill was an outage ({outage:.2f} s); answers: {answers}"
        )
        assert master_port(topology) == topology.replica.port, (
            f"the Sentinels promoted the replica ({outage:.2f} s after the kill)"
        )

        for tokens in before[1:]:
            renewed = await authority.refresh(tokens["refresh_token"])
            assert renewed.status_code == 200, (
                f"a session replicated before the kill lives on the new master: {renewed.text}"
            )
        tokens = await authority.login("after")
        revoked = await http.delete(
            f"/v1/sessions/{tokens['session_id']}", headers=authority.service
        )
        assert revoked.status_code in (202, 204), revoked.text
        assert_problem(await authority.refresh(tokens["refresh_token"]), 400, "invalid-grant")
        assert (await http.get("/readyz")).status_code == 200


def test_a_sentinel_url_names_its_sentinels_and_master() -> None:
    location = sentinel_location("redis+sentinel://10.0.0.1:26379,sentinel-b:26380/main/2")
    assert location == SentinelLocation((("10.0.0.1", 26379), ("sentinel-b", 26380)), "main", 2)
    assert sentinel_location("redis://10.0.0.1:6379/0") is None
    for url, problem in (
        ("redis+sentinel://10.0.0.1/main", "expected redis\\+sentinel://host:port"),
        ("redis+sentinel://user@10.0.0.1:26379/main", "expected redis\\+sentinel://host:port"),
        ("redis+sentinel://10.0.0.1:26379/", "expected redis\\+sentinel://host:port"),
        ("rediss+sentinel://10.0.0.1:26379/main", "not supported"),
    ):
        with pytest.raises(ConfigError, match=problem):
            Settings.load({}, {"redis_url": url})
    with pytest.raises(ConfigError, match="SESSIOND_REDIS_SENTINEL_PASSWORD needs"):
        Settings.load({}, {"redis_url": "redis://h:1/0", "redis_sentinel_password": "x"})
