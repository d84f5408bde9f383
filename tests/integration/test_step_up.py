"""Step-up authentication over HTTP: a session records acr, amr and auth_time, the login backend
raises them in place, and the tokens carry them (memory and Redis)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from support.authority import Authority, MakeAuthority, assert_problem, bearer
from support.secrets import register

LEVELS = {"acr_levels": "aal1,aal2,aal3"}


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


async def step_up(authority: Authority, sid: str, **body: Any) -> Any:
    response = await authority.http.post(
        f"/v1/sessions/{sid}/authentication", json=body, headers=authority.service
    )
    if response.status_code == 200 and "access_token" in response.json():
        register("access token", response.json()["access_token"])
    return response


async def test_a_session_records_how_the_subject_signed_in(make_authority: MakeAuthority) -> None:
    authority = await make_authority(**LEVELS)
    before = int(time.time())
    tokens = await authority.login(acr="aal1", amr=["pwd"])
    claims = claims_of(tokens["access_token"])
    assert (claims["acr"], claims["amr"]) == ("aal1", ["pwd"])
    assert before <= claims["auth_time"] <= int(time.time())
    me = (await authority.whoami(tokens["access_token"])).json()
    assert (me["acr"], me["amr"], me["auth_time"]) == ("aal1", ["pwd"], claims["auth_time"])
    view = await authority.http.get(
        f"/v1/sessions/{tokens['session_id']}", headers=authority.service
    )
    assert (view.json()["acr"], view.json()["amr"]) == ("aal1", ["pwd"])


async def test_step_up_raises_in_place_and_the_next_tokens_carry_it(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(**LEVELS)
    tokens = await authority.login(acr="aal1", amr=["pwd"], auth_time=int(time.time()) - 600)
    sid = tokens["session_id"]
    stepped = await step_up(authority, sid, acr="aal2", amr=["pwd", "otp"])
    assert stepped.status_code == 200, stepped.text
    body = stepped.json()
    assert body["session_id"] == sid
    assert "refresh_token" not in body  # the client keeps its own
    claims = claims_of(body["access_token"])
    assert (claims["acr"], claims["amr"], claims["sid"]) == ("aal2", ["pwd", "otp"], sid)
    assert int(time.time()) - claims["auth_time"] <= 2
    assert (await authority.whoami(body["access_token"])).status_code == 200
    refreshed = await authority.refresh(tokens["refresh_token"])  # the same refresh token
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["access_token"])["acr"] == "aal2"


async def test_step_up_never_lowers_the_acr_nor_names_an_unknown_one(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(**LEVELS)
    sid = (await authority.login(acr="aal2"))["session_id"]
    assert_problem(await step_up(authority, sid, acr="aal1"), 400, "bad-request")
    assert_problem(await step_up(authority, sid, amr=["pwd"]), 400, "bad-request")
    assert_problem(await step_up(authority, sid, acr="gold"), 400, "bad-request")
    assert (await step_up(authority, sid, acr="aal2")).status_code == 200  # re-authentication


async def test_an_auth_time_in_the_future_counts_as_now(authority: Authority) -> None:
    sid = (await authority.login())["session_id"]
    stepped = await step_up(authority, sid, acr="x", auth_time=int(time.time()) + 3600)
    assert claims_of(stepped.json()["access_token"])["auth_time"] <= int(time.time())


async def test_without_levels_any_acr_is_recorded(authority: Authority) -> None:
    sid = (await authority.login(acr="gold"))["session_id"]
    stepped = await step_up(authority, sid, acr="silver")
    assert claims_of(stepped.json()["access_token"])["acr"] == "silver"


async def test_step_up_of_an_unknown_session_is_404(authority: Authority) -> None:
    response = await step_up(authority, "0" * 32, acr="aal2")
    assert_problem(response, 404, "session-not-found")


@pytest.mark.parametrize("name", ["acr", "amr", "auth_time"])
async def test_custom_claims_still_may_not_use_the_names(authority: Authority, name: str) -> None:
    response = await authority.http.post(
        "/v1/sessions",
        json={"subject": "alice", "claims": {name: "x"}},
        headers=authority.service,
    )
    assert_problem(response, 400, "claim-not-allowed")


async def test_step_up_needs_the_sessions_create_scope(authority: Authority) -> None:
    sid = (await authority.login())["session_id"]
    response = await authority.http.post(
        f"/v1/sessions/{sid}/authentication", json={"acr": "x"}, headers=bearer("sdc_x_y")
    )
    assert_problem(response, 401, "invalid-credential")


async def test_introspection_tells_how_the_subject_authenticated(authority: Authority) -> None:
    tokens = await authority.login(acr="aal1", amr=["pwd"])
    stepped = await step_up(authority, tokens["session_id"], acr="aal2", amr=["pwd", "otp"])
    answer = await authority.http.post(
        "/v1/introspect",
        data={"token": stepped.json()["access_token"]},
        headers=authority.service,
    )
    body = answer.json()
    assert (body["active"], body["acr"], body["amr"]) == (True, "aal2", ["pwd", "otp"])
    assert isinstance(body["auth_time"], int)


async def test_in_cookie_mode_both_the_stepped_up_token_is_a_cookie(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="both")
    created = await authority.http.post(
        "/v1/sessions", json={"subject": "alice", "acr": "x"}, headers=authority.service
    )
    stepped = await step_up(authority, created.json()["session_id"], acr="y")
    assert stepped.status_code == 200, stepped.text
    assert "access_token" not in stepped.json()
    assert "refresh_token" not in stepped.json()
    cookies = stepped.headers.get_list("set-cookie")
    assert [c.split("=")[0] for c in cookies] == ["__Host-sessiond-access"]
    register("access token", cookies[0].split("=", 1)[1].split(";")[0])
