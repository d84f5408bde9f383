"""The service with Redis stopped mid-run: 503 problem+json, never 500; verification goes on;
it recovers when Redis is back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.runtime import Runtime
from support.authority import Authority, assert_problem, distributed_settings
from support.servers import ServerProcess


async def test_redis_outage_is_503_and_the_service_recovers(
    own_redis: ServerProcess, tmp_path: Path
) -> None:
    settings, secret = distributed_settings(own_redis.url, tmp_path)
    runtime = Runtime(settings)
    http: AsyncTestClient[Any]
    async with AsyncTestClient(create_app(runtime)) as http:
        authority = Authority(http, runtime, secret)
        before = await authority.login()

        own_redis.stop()
        down = await http.post("/v1/sessions", json={"subject": "a"}, headers=authority.service)
        assert_problem(down, 503, "store-unavailable")
        assert "redis://" not in down.text
        assert_problem(await authority.refresh(before["refresh_token"]), 503, "store-unavailable")
        assert_problem(await http.get("/readyz"), 503, "store-unavailable")
        assert (await http.get("/healthz")).status_code == 200
        still = await authority.whoami(before["access_token"])
        assert still.status_code == 200, "verification never asks the store"

        own_redis.start()
        assert (await http.get("/readyz")).status_code == 200
        assert (await authority.refresh(before["refresh_token"])).status_code == 200, (
            "the acknowledged session survived the restart (AOF)"
        )
        await authority.login()
