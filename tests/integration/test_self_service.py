"""Self-service over HTTP: a user lists their sessions ("this device" marked), signs one out,
or every one but their own; another subject's sessions stay out of reach and out of sight."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx

from sessiond.api.cookies import ACCESS_COOKIE
from support.authority import Authority, MakeAuthority, assert_problem, bearer
from support.secrets import register

CSRF = {"X-Sessiond-CSRF": "1"}


async def mine(authority: Authority, token: str) -> list[dict[str, Any]]:
    response = await authority.http.get("/v1/me/sessions", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    sessions: list[dict[str, Any]] = response.json()["sessions"]
    return sessions


def assert_signed_out(response: httpx.Response) -> None:
    assert_problem(response, 401, "token-revoked")
    assert response.json()["reason_code"] == "logout"


async def test_a_user_lists_their_sessions_with_this_device_marked(authority: Authority) -> None:
    laptop = await authority.login(
        "alice", device={"label": "laptop", "user_agent": "Firefox", "ip": "192.0.2.7"}
    )
    phone = await authority.login("alice", device={"label": "phone"})
    await authority.login("bob")
    await asyncio.sleep(0.01)
    refreshed = await authority.refresh(phone["refresh_token"])
    assert refreshed.status_code == 200

    listed = await mine(authority, laptop["access_token"])
    assert [s["session_id"] for s in listed] == [laptop["session_id"], phone["session_id"]]
    first, second = listed
    assert first["current"] is True
    assert second["current"] is False
    assert first["device"] == {"label": "laptop", "user_agent": "Firefox", "ip": "192.0.2.7"}
    assert second["device"] == {"label": "phone"}
    assert "data" not in first
    assert "subject" not in first
    created, seen = (datetime.fromisoformat(first[k]) for k in ("created_at", "last_seen_at"))
    assert created == seen  # signed in, never refreshed
    created, seen = (datetime.fromisoformat(second[k]) for k in ("created_at", "last_seen_at"))
    assert seen > created  # the refresh is when it was last seen
    # The same list from the phone, which is now the current one.
    from_phone = await mine(authority, refreshed.json()["access_token"])
    assert [s["current"] for s in from_phone] == [False, True]


async def test_a_user_signs_one_of_their_sessions_out(authority: Authority) -> None:
    here, there = await authority.login("alice"), await authority.login("alice")
    response = await authority.http.delete(
        f"/v1/me/sessions/{there['session_id']}", headers=bearer(here["access_token"])
    )
    assert response.status_code == 204, response.text
    assert_signed_out(await authority.whoami(there["access_token"]))
    assert_problem(await authority.refresh(there["refresh_token"]), 400, "invalid-grant")
    assert (await authority.whoami(here["access_token"])).status_code == 200
    assert [s["session_id"] for s in await mine(authority, here["access_token"])] == [
        here["session_id"]
    ]


async def test_another_subjects_session_is_not_found_and_left_alone(authority: Authority) -> None:
    alice, bob = await authority.login("alice"), await authority.login("bob")
    theirs = await authority.http.delete(
        f"/v1/me/sessions/{bob['session_id']}", headers=bearer(alice["access_token"])
    )
    nobodys = await authority.http.delete(
        "/v1/me/sessions/" + "0" * 32, headers=bearer(alice["access_token"])
    )
    for response in (theirs, nobodys):
        assert_problem(response, 404, "session-not-found")
    # Nothing tells the two apart but the path.
    assert {**theirs.json(), "instance": ""} == {**nobodys.json(), "instance": ""}
    assert (await authority.whoami(bob["access_token"])).status_code == 200
    assert [s["session_id"] for s in await mine(authority, bob["access_token"])] == [
        bob["session_id"]
    ]


async def test_sign_out_everywhere_else_keeps_the_callers_session(authority: Authority) -> None:
    here = await authority.login("alice")
    others = [await authority.login("alice") for _ in range(2)]
    bob = await authority.login("bob")
    response = await authority.http.delete(
        "/v1/me/sessions?except=current", headers=bearer(here["access_token"])
    )
    assert response.status_code == 200, response.text
    revocations = response.json()["revocations"]
    assert [(r["kind"], r["status"]) for r in revocations] == [("session", "propagated")] * 2
    for other in others:
        assert_signed_out(await authority.whoami(other["access_token"]))
    assert (await authority.whoami(here["access_token"])).status_code == 200
    assert (await authority.refresh(here["refresh_token"])).status_code == 200
    assert (await authority.whoami(bob["access_token"])).status_code == 200
    # "except" is required: DELETE /v1/me/sessions alone would read as "all of them".
    bare = await authority.http.delete("/v1/me/sessions", headers=bearer(here["access_token"]))
    assert_problem(bare, 400)


async def test_self_service_needs_a_live_access_token(authority: Authority) -> None:
    assert_problem(await authority.http.get("/v1/me/sessions"), 401, "unauthenticated")
    tokens = await authority.login("alice")
    await authority.http.post("/v1/logout", headers=bearer(tokens["access_token"]))
    gone = await authority.http.get("/v1/me/sessions", headers=bearer(tokens["access_token"]))
    assert_signed_out(gone)


async def test_cookie_mode_uses_the_access_cookie_with_csrf_proof(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="both")
    (other_sid, other_access), (sid, access) = [await browser_login(authority) for _ in "ab"]
    browser = {"Cookie": f"{ACCESS_COOKIE}={access}"}

    listed = await authority.http.get("/v1/me/sessions", headers=browser)
    assert listed.status_code == 200, listed.text
    assert [s["session_id"] for s in listed.json()["sessions"] if s["current"]] == [sid]

    path = f"/v1/me/sessions/{other_sid}"
    assert_problem(await authority.http.delete(path, headers=browser), 403, "csrf")
    assert (await authority.whoami(other_access)).status_code == 200
    assert (await authority.http.delete(path, headers={**browser, **CSRF})).status_code == 204
    assert_signed_out(await authority.whoami(other_access))

    # Signing its own session out this way is a logout: the browser's cookies are cleared.
    done = await authority.http.delete(f"/v1/me/sessions/{sid}", headers={**browser, **CSRF})
    assert done.status_code == 204
    cleared = done.headers.get_list("set-cookie")
    assert len(cleared) == 2
    assert all("Max-Age=0" in header for header in cleared), cleared
    assert_signed_out(await authority.whoami(access))


async def browser_login(authority: Authority) -> tuple[str, str]:
    """Sign erin in, cookie mode ``both``: the session id and the access cookie's token."""
    response = await authority.http.post(
        "/v1/sessions", json={"subject": "erin"}, headers=authority.service
    )
    assert response.status_code == 201, response.text
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == ACCESS_COOKIE:
            token = rest.partition(";")[0]
            register("access token", token)
            return response.json()["session_id"], token
    raise AssertionError(f"no {ACCESS_COOKIE} cookie")
