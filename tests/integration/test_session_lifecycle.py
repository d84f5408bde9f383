"""Sessions through HTTP: sign-in, refresh rotation, expiry, limits, logout, forced sign-out."""

from __future__ import annotations

import asyncio

from support.authority import Authority, MakeAuthority, assert_problem, bearer


async def test_sign_in_returns_oauth_shaped_tokens(authority: Authority) -> None:
    tokens = await authority.login("alice", claims={"tenant": "acme"}, scope="read write")
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 300
    assert 0 < tokens["refresh_expires_in"] <= 3600
    me = await authority.whoami(tokens["access_token"])
    assert me.status_code == 200
    assert me.json()["sub"] == "alice"
    assert me.json()["sid"] == tokens["session_id"]
    assert me.json()["scope"] == "read write"
    assert me.json()["claims"] == {"tenant": "acme"}


async def test_refresh_rotates_the_refresh_token(authority: Authority) -> None:
    first = await authority.login()
    second = (await authority.refresh(first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["session_id"] == first["session_id"]
    third = await authority.refresh(second["refresh_token"])
    assert third.status_code == 200
    assert (await authority.whoami(third.json()["access_token"])).status_code == 200


async def test_reuse_after_the_grace_window_revokes_the_session(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(refresh_grace=0)
    stolen = await authority.login()
    honest = (await authority.refresh(stolen["refresh_token"])).json()
    await asyncio.sleep(0.01)

    reuse = await authority.refresh(stolen["refresh_token"])
    assert_problem(reuse, 400, "invalid-grant")
    assert reuse.json()["error"] == "invalid_grant"
    assert_problem(await authority.refresh(honest["refresh_token"]), 400, "invalid-grant")
    assert_problem(await authority.whoami(honest["access_token"]), 401, "token-revoked")
    assert_problem(await authority.whoami(stolen["access_token"]), 401, "token-revoked")


async def test_an_older_generation_is_also_reuse(make_authority: MakeAuthority) -> None:
    authority = await make_authority(refresh_grace=0)
    gen0 = await authority.login()
    gen1 = (await authority.refresh(gen0["refresh_token"])).json()
    gen2 = (await authority.refresh(gen1["refresh_token"])).json()
    assert_problem(await authority.refresh(gen0["refresh_token"]), 400, "invalid-grant")
    assert_problem(await authority.whoami(gen2["access_token"]), 401, "token-revoked")


async def test_a_guessed_secret_does_not_revoke_the_session(authority: Authority) -> None:
    tokens = await authority.login()
    guess = tokens["session_id"] + "." + "A" * 43
    assert_problem(await authority.refresh(guess), 400, "invalid-grant")
    assert (await authority.refresh(tokens["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_in_the_grace_window_share_one_successor(
    authority: Authority,
) -> None:
    tokens = await authority.login()
    responses = await asyncio.gather(
        *(authority.refresh(tokens["refresh_token"]) for _ in range(5))
    )
    assert [r.status_code for r in responses] == [200] * 5
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1
    for response in responses:
        assert (await authority.whoami(response.json()["access_token"])).status_code == 200
    assert (await authority.refresh(successors.pop())).status_code == 200


async def test_idle_timeout_ends_the_session(make_authority: MakeAuthority) -> None:
    authority = await make_authority(refresh_idle_ttl=1, refresh_absolute_ttl=60)
    tokens = await authority.login()
    await asyncio.sleep(0.6)
    kept = await authority.refresh(tokens["refresh_token"])
    assert kept.status_code == 200, "a refresh inside the idle timeout keeps the session"
    await asyncio.sleep(1.2)
    assert_problem(await authority.refresh(kept.json()["refresh_token"]), 400, "invalid-grant")
    listed = await authority.http.get("/v1/subjects/alice/sessions", headers=authority.service)
    assert listed.json() == {"sessions": []}


async def test_absolute_lifetime_ends_the_session_even_when_active(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(refresh_idle_ttl=1, refresh_absolute_ttl=2)
    refresh_token = (await authority.login())["refresh_token"]
    for _ in range(2):
        await asyncio.sleep(0.7)
        response = await authority.refresh(refresh_token)
        assert response.status_code == 200
        refresh_token = response.json()["refresh_token"]
        assert response.json()["expires_in"] <= 2, "access tokens never outlive the session"
    await asyncio.sleep(0.8)
    assert_problem(await authority.refresh(refresh_token), 400, "invalid-grant")


async def test_session_limit_revokes_the_oldest(make_authority: MakeAuthority) -> None:
    authority = await make_authority(session_limit=2)
    oldest, middle, newest = [await authority.login("bob") for _ in range(3)]
    assert_problem(await authority.whoami(oldest["access_token"]), 401, "token-revoked")
    assert_problem(await authority.refresh(oldest["refresh_token"]), 400, "invalid-grant")
    for kept in (middle, newest):
        assert (await authority.whoami(kept["access_token"])).status_code == 200
    listed = await authority.http.get("/v1/subjects/bob/sessions", headers=authority.service)
    ids = [s["session_id"] for s in listed.json()["sessions"]]
    assert ids == [middle["session_id"], newest["session_id"]]


async def test_logout_revokes_the_callers_session(authority: Authority) -> None:
    mine, other = await authority.login(), await authority.login()
    response = await authority.http.post("/v1/logout", headers=bearer(mine["access_token"]))
    assert response.status_code == 204
    assert_problem(await authority.whoami(mine["access_token"]), 401, "token-revoked")
    assert_problem(await authority.refresh(mine["refresh_token"]), 400, "invalid-grant")
    assert (await authority.whoami(other["access_token"])).status_code == 200


async def test_forced_sign_out_revokes_every_session_of_the_subject(
    authority: Authority,
) -> None:
    devices = [await authority.login("carol") for _ in range(3)]
    bystander = await authority.login("dave")
    response = await authority.http.delete("/v1/subjects/carol/sessions", headers=authority.service)
    assert response.status_code == 204
    for device in devices:
        assert_problem(await authority.whoami(device["access_token"]), 401, "token-revoked")
        assert_problem(await authority.refresh(device["refresh_token"]), 400, "invalid-grant")
    assert (await authority.whoami(bystander["access_token"])).status_code == 200
    listed = await authority.http.get("/v1/subjects/carol/sessions", headers=authority.service)
    assert listed.json() == {"sessions": []}


async def test_read_and_revoke_one_session(authority: Authority) -> None:
    tokens = await authority.login(
        "erin", device={"label": "phone", "user_agent": "UA/1", "ip": "192.0.2.1"}, data={"a": 1}
    )
    path = f"/v1/sessions/{tokens['session_id']}"
    read = await authority.http.get(path, headers=authority.service)
    assert read.status_code == 200
    assert read.json()["subject"] == "erin"
    assert read.json()["device"] == {"label": "phone", "user_agent": "UA/1", "ip": "192.0.2.1"}
    assert read.json()["data"] == {"a": 1}
    assert "refresh" not in read.text
    assert tokens["refresh_token"] not in read.text

    assert (await authority.http.delete(path, headers=authority.service)).status_code == 204
    assert_problem(await authority.http.get(path, headers=authority.service), 404)
    assert_problem(await authority.whoami(tokens["access_token"]), 401, "token-revoked")
