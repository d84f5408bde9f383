"""Not-before at any time: a subject or global revocation of what was issued at or before a past
time T, not only before now (memory and Redis)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from support.authority import Authority, assert_problem


async def next_second() -> int:
    """Sleep into the next whole second and return it: iat has one-second resolution."""
    now = time.time()
    await asyncio.sleep(int(now) + 1 - now + 0.05)
    return int(time.time())


async def revoke(authority: Authority, **body: Any) -> httpx.Response:
    return await authority.http.post("/v1/revocations", json=body, headers=authority.service)


async def test_a_past_subject_not_before_spares_what_began_after_it(authority: Authority) -> None:
    early = await authority.login("alice")
    refreshed_early = await authority.login("alice")
    await next_second()
    changed_at = int(time.time())  # say, the password changed now
    await next_second()
    # A session begun before T, refreshed after it: its new token is newer than T.
    renewed = await authority.refresh(refreshed_early["refresh_token"])
    assert renewed.status_code == 200
    late = await authority.login("alice")  # signed in again after T
    other = await authority.login("bob")
    await next_second()

    at = datetime.fromtimestamp(changed_at, UTC).isoformat()
    response = await revoke(authority, kind="subject", subject="alice", not_before=at)
    assert response.status_code == 200, response.text

    for tokens in (early, refreshed_early):
        assert_problem(await authority.whoami(tokens["access_token"]), 401, "token-revoked")
    assert_problem(await authority.whoami(renewed.json()["access_token"]), 401, "token-revoked")
    assert_problem(await authority.refresh(early["refresh_token"]), 400, "invalid-grant")
    assert_problem(await authority.refresh(renewed.json()["refresh_token"]), 400, "invalid-grant")
    assert (await authority.whoami(late["access_token"])).status_code == 200
    assert (await authority.refresh(late["refresh_token"])).status_code == 200
    assert (await authority.whoami(other["access_token"])).status_code == 200
    listed = await authority.http.get("/v1/subjects/alice/sessions", headers=authority.service)
    assert [s["session_id"] for s in listed.json()["sessions"]] == [late["session_id"]]


async def test_a_past_global_not_before_rejects_only_older_tokens(authority: Authority) -> None:
    old = await authority.login("alice")
    breach = await next_second()
    await next_second()
    new = await authority.login("bob")
    response = await revoke(authority, kind="all", not_before=breach - 1)  # Unix seconds
    assert response.status_code == 200, response.text
    assert_problem(await authority.whoami(old["access_token"]), 401, "token-revoked")
    assert (await authority.whoami(new["access_token"])).status_code == 200
    assert (await authority.refresh(old["refresh_token"])).status_code == 200  # sessions survive


async def test_a_not_before_in_the_future_counts_as_now(authority: Authority) -> None:
    before = await authority.login("alice")
    future = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    response = await revoke(authority, kind="subject", subject="alice", not_before=future)
    assert response.status_code == 200, response.text
    assert_problem(await authority.whoami(before["access_token"]), 401, "token-revoked")
    await next_second()
    after = await authority.login("alice")  # no lock-out until the future time
    assert (await authority.whoami(after["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "all", "not_before": "2026-01-01T00:00:00"},  # no offset: which zone?
        {"kind": "all", "not_before": "yesterday"},
        {"kind": "token", "jti": "x", "not_before": 1},
        {"kind": "session", "session_id": "0" * 32, "not_before": 1},
    ],
)
async def test_a_bad_not_before_is_400(authority: Authority, body: dict[str, Any]) -> None:
    assert_problem(await revoke(authority, **body), 400)
