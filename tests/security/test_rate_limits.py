"""Rate limits over HTTP: 429 problem+json with Retry-After, a window that resets, and one
limit shared by every replica on the same Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.runtime import Runtime
from support.authority import Authority, MakeAuthority, assert_problem, distributed_settings
from support.servers import ServerProcess

WINDOW = 1  # seconds: every test runs with a short window


def assert_limited(response: httpx.Response) -> None:
    assert_problem(response, 429, "rate-limited")
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= WINDOW


async def login(authority: Authority, subject: str) -> httpx.Response:
    return await authority.http.post(
        "/v1/sessions", json={"subject": subject}, headers=authority.service
    )


@asynccontextmanager
async def replicas(
    redis_url: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[list[Authority]]:
    """Two in-process replicas on one Redis, with the same settings files and credential."""
    settings, secret = distributed_settings(redis_url, tmp_path, **overrides)
    clients: list[AsyncTestClient[Any]] = []
    try:
        for _ in range(2):
            runtime = Runtime(settings)
            client: AsyncTestClient[Any] = AsyncTestClient(create_app(runtime))
            await client.__aenter__()
            clients.append(client)
        yield [Authority(client, client.app.state.runtime, secret) for client in clients]
    finally:
        for client in reversed(clients):
            await client.__aexit__(None, None, None)


async def check_limit(
    hit: Callable[[], Awaitable[httpx.Response]], limit: int, ok: int = 200
) -> None:
    """``limit`` hits pass, the next is 429, and one passes again once the window is over."""
    for _ in range(limit):
        response = await hit()
        assert response.status_code == ok, response.text
    assert_limited(await hit())
    await asyncio.sleep(WINDOW + 0.1)
    response = await hit()
    assert response.status_code == ok, response.text


async def test_session_creation_per_subject(make_authority: MakeAuthority) -> None:
    authority = await make_authority(rate_window=WINDOW, rate_sessions_per_subject=2)
    await check_limit(lambda: login(authority, "alice"), 2, ok=201)
    assert (await login(authority, "bob")).status_code == 201  # another subject, own budget


async def test_session_creation_per_client(make_authority: MakeAuthority) -> None:
    authority = await make_authority(rate_window=WINDOW, rate_sessions_per_client=3)
    subjects = iter(f"user-{n}" for n in range(10))
    await check_limit(lambda: login(authority, next(subjects)), 3, ok=201)


async def test_refresh_per_session_family(make_authority: MakeAuthority) -> None:
    authority = await make_authority(rate_window=WINDOW, rate_refresh_per_session=2)
    tokens = await authority.login("alice")
    other = await authority.login("bob")
    current = {"refresh_token": tokens["refresh_token"]}

    async def refresh() -> httpx.Response:
        response = await authority.refresh(current["refresh_token"])
        if response.status_code == 200:
            current["refresh_token"] = response.json()["refresh_token"]
        return response

    await check_limit(refresh, 2)
    assert (await authority.refresh(other["refresh_token"])).status_code == 200


async def test_revocations_per_client(make_authority: MakeAuthority) -> None:
    authority = await make_authority(rate_window=WINDOW, rate_revocations_per_client=3)
    sid = (await authority.login("alice"))["session_id"]
    routes = iter(
        [
            ("DELETE", f"/v1/sessions/{sid}", None),
            ("POST", "/v1/revocations", {"kind": "subject", "subject": "bob"}),
            ("DELETE", "/v1/subjects/carol/sessions", None),
            ("DELETE", f"/v1/sessions/{sid}", None),  # the 4th, over the limit
            ("POST", "/v1/revocations", {"kind": "session", "session_id": sid}),
        ]
    )

    async def revoke() -> httpx.Response:
        method, path, body = next(routes)
        response = await authority.http.request(method, path, json=body, headers=authority.service)
        if response.status_code in (200, 204):
            return httpx.Response(200)
        return response

    await check_limit(revoke, 3)


async def test_introspections_per_client(make_authority: MakeAuthority) -> None:
    authority = await make_authority(rate_window=WINDOW, rate_introspections_per_client=2)
    tokens = await authority.login("alice")

    async def introspect() -> httpx.Response:
        return await authority.http.post(
            "/v1/introspect", data={"token": tokens["access_token"]}, headers=authority.service
        )

    await check_limit(introspect, 2)


async def test_a_limit_of_zero_is_off(make_authority: MakeAuthority) -> None:
    authority = await make_authority(rate_window=WINDOW, rate_sessions_per_subject=0)
    for _ in range(40):  # above the default of 30
        assert (await login(authority, "alice")).status_code == 201


async def test_limits_are_global_across_replicas(redis_url: str, tmp_path: Path) -> None:
    """N = 5 creations split 3 / 2 over two replicas on one Redis pass; the 6th (N+1) is
    refused on either replica."""
    async with replicas(redis_url, tmp_path, rate_window=30, rate_sessions_per_client=5) as both:
        for n in range(5):
            assert (await login(both[n % 2], f"user-{n}")).status_code == 201
        for replica in both:
            response = await login(replica, "user-late")
            assert_problem(response, 429, "rate-limited")
            assert 1 <= int(response.headers["retry-after"]) <= 30


async def test_subject_limit_is_global_across_replicas(redis_url: str, tmp_path: Path) -> None:
    async with replicas(redis_url, tmp_path, rate_window=30, rate_sessions_per_subject=4) as both:
        for n in range(4):
            assert (await login(both[n % 2], "alice")).status_code == 201
        for replica in both:
            assert_problem(await login(replica, "alice"), 429, "rate-limited")
        assert (await login(both[1], "bob")).status_code == 201


async def test_refresh_limit_is_global_across_replicas(redis_url: str, tmp_path: Path) -> None:
    async with replicas(redis_url, tmp_path, rate_window=30, rate_refresh_per_session=3) as both:
        refresh_token = (await both[0].login("alice"))["refresh_token"]
        for n in range(3):
            response = await both[n % 2].refresh(refresh_token)
            assert response.status_code == 200, response.text
            refresh_token = response.json()["refresh_token"]
        for replica in both:
            assert_problem(await replica.refresh(refresh_token), 429, "rate-limited")


async def test_redis_outage_fails_closed(own_redis: ServerProcess, tmp_path: Path) -> None:
    """Without Redis a limited route answers 503 store-unavailable (never waves through), and
    the limits work again once Redis is back."""
    async with replicas(
        own_redis.url, tmp_path, rate_window=30, rate_sessions_per_client=3
    ) as both:
        one = both[0]
        assert (await login(one, "alice")).status_code == 201
        own_redis.stop()
        assert_problem(await login(one, "alice"), 503, "store-unavailable")
        # a junk token needs no session store: the 503 comes from the rate limiter itself
        junk = await one.http.post("/v1/introspect", data={"token": "junk"}, headers=one.service)
        assert_problem(junk, 503, "store-unavailable")
        own_redis.start()
        assert (await login(one, "bob")).status_code == 201
