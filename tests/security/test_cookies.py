"""Browser cookie mode over HTTP: ``__Host-`` cookie attributes, tokens out of the bodies, the
CSRF defence of every cookie-authenticated state change, logout clearing, no fixation.

The test client speaks ``http://testserver``, so its cookie jar would drop ``Secure`` cookies:
the tests parse ``Set-Cookie`` headers themselves and send cookies explicitly in ``Cookie``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from sessiond.api.cookies import ACCESS_COOKIE, REFRESH_COOKIE
from sessiond.errors import ConfigError
from sessiond.settings import Settings
from support.authority import Authority, MakeAuthority, assert_problem, bearer
from support.secrets import register

CSRF = {"X-Sessiond-CSRF": "1"}


@dataclass
class SetCookie:
    name: str
    value: str
    attrs: dict[str, str] = field(default_factory=dict)  # lower-case name -> value ("" if flag)


def set_cookies(response: httpx.Response) -> dict[str, SetCookie]:
    """Every ``Set-Cookie`` of ``response`` by cookie name (each name must appear once)."""
    found: dict[str, SetCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *rest = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        attrs = {}
        for part in rest:
            key, _, val = part.partition("=")
            attrs[key.strip().lower()] = val.strip()
        assert name not in found, f"{name} set twice"
        value = value.strip('"')  # a cleared cookie is set to ""
        found[name] = SetCookie(name, value, attrs)
        if value and name == REFRESH_COOKIE:
            register("refresh token", value)
        elif value and name == ACCESS_COOKIE:
            register("access token", value)
    return found


def cookie_header(**cookies: str) -> dict[str, str]:
    names = {"refresh": REFRESH_COOKIE, "access": ACCESS_COOKIE}
    return {"Cookie": "; ".join(f"{names[k]}={v}" for k, v in cookies.items())}


async def login(
    authority: Authority, subject: str = "alice", headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, SetCookie]]:
    response = await authority.http.post(
        "/v1/sessions", json={"subject": subject}, headers={**authority.service, **(headers or {})}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    register("access token", body.get("access_token"))
    return body, set_cookies(response)


async def refresh(authority: Authority, refresh_token: str, **headers: str) -> httpx.Response:
    response = await authority.http.post(
        "/v1/tokens/refresh", headers={**cookie_header(refresh=refresh_token), **headers}
    )
    if response.status_code == 200:
        register("access token", response.json().get("access_token"))
    return response


async def assert_csrf_refused(authority: Authority, path: str, cookies: dict[str, str]) -> None:
    """``POST path`` with only ``cookies`` (no CSRF proof), or from another site, is 403."""
    forged = await authority.http.post(path, headers=cookies)
    assert_problem(forged, 403, "csrf")
    cross = await authority.http.post(
        path, headers={**cookies, **CSRF, "Sec-Fetch-Site": "cross-site"}
    )
    assert_problem(cross, 403, "csrf")


def assert_host_cookie(cookie: SetCookie, max_age: int, samesite: str = "Strict") -> None:
    assert cookie.name.startswith("__Host-")
    assert "httponly" in cookie.attrs
    assert "secure" in cookie.attrs
    assert cookie.attrs["path"] == "/"
    assert cookie.attrs["samesite"].lower() == samesite.lower()
    assert "domain" not in cookie.attrs  # forbidden by the __Host- prefix
    assert abs(int(cookie.attrs["max-age"]) - max_age) <= 1


# --------------------------------------------------------------------------- setting cookies


async def test_refresh_mode_login_sets_the_refresh_cookie_and_keeps_it_out_of_the_body(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="refresh")
    body, cookies = await login(authority)
    assert "refresh_token" not in body
    assert body["access_token"]
    assert body["token_type"] == "Bearer"
    assert set(cookies) == {REFRESH_COOKIE}
    cookie = cookies[REFRESH_COOKIE]
    assert cookie.value.startswith(body["session_id"] + ".")
    assert_host_cookie(cookie, body["refresh_expires_in"])
    assert 3598 <= body["refresh_expires_in"] <= 3600  # the idle lifetime ends first


async def test_both_mode_login_puts_both_tokens_in_cookies_and_none_in_the_body(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="both", access_ttl=120)
    body, cookies = await login(authority)
    assert "refresh_token" not in body
    assert "access_token" not in body
    assert body["expires_in"] == 120
    assert set(cookies) == {REFRESH_COOKIE, ACCESS_COOKIE}
    assert_host_cookie(cookies[REFRESH_COOKIE], body["refresh_expires_in"])
    assert_host_cookie(cookies[ACCESS_COOKIE], 120)
    assert cookies[ACCESS_COOKIE].value.count(".") == 2  # a JWT


async def test_samesite_lax_is_a_setting(make_authority: MakeAuthority) -> None:
    authority = await make_authority(cookie_mode="refresh", cookie_samesite="lax")
    body, cookies = await login(authority)
    assert_host_cookie(cookies[REFRESH_COOKIE], body["refresh_expires_in"], samesite="Lax")


def test_unknown_cookie_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="SESSIOND_COOKIE_MODE"):
        Settings.load({"SESSIOND_COOKIE_MODE": "always"})
    with pytest.raises(ConfigError, match="SESSIOND_COOKIE_SAMESITE"):
        Settings.load({"SESSIOND_COOKIE_SAMESITE": "none"})  # would send cookies cross-site


# --------------------------------------------------------------------------- refresh


async def test_refresh_via_cookie_with_the_csrf_header_rotates_the_cookie(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="refresh")
    body, cookies = await login(authority)
    old = cookies[REFRESH_COOKIE].value
    response = await refresh(authority, old, **CSRF)
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert "refresh_token" not in rotated
    assert rotated["session_id"] == body["session_id"]
    new = set_cookies(response)[REFRESH_COOKIE]
    assert new.value != old
    assert new.value.startswith(body["session_id"] + ".")
    assert_host_cookie(new, rotated["refresh_expires_in"])
    assert (await authority.whoami(rotated["access_token"])).status_code == 200
    again = await refresh(authority, new.value, **CSRF)
    assert again.status_code == 200, again.text


async def test_refresh_same_origin_requests_pass(make_authority: MakeAuthority) -> None:
    authority = await make_authority(cookie_mode="refresh")
    _, cookies = await login(authority)
    token = cookies[REFRESH_COOKIE].value
    response = await refresh(authority, token, **CSRF, **{"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200, response.text
    token = set_cookies(response)[REFRESH_COOKIE].value
    response = await refresh(authority, token, **CSRF, Origin="http://testserver.local")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-csrf-header"),
        pytest.param({"X-Sessiond-CSRF": "0"}, id="wrong-csrf-value"),
        pytest.param({"X-Sessiond-CSRF": ""}, id="empty-csrf-header"),
        pytest.param({**CSRF, "Sec-Fetch-Site": "cross-site"}, id="cross-site"),
        pytest.param({**CSRF, "Sec-Fetch-Site": "same-site"}, id="same-site"),
        pytest.param({**CSRF, "Origin": "https://evil.example"}, id="foreign-origin"),
        pytest.param({**CSRF, "Origin": "null"}, id="null-origin"),
        pytest.param({"Sec-Fetch-Site": "same-origin"}, id="fetch-metadata-alone"),
    ],
)
async def test_refresh_via_cookie_without_csrf_proof_is_403(
    make_authority: MakeAuthority, headers: dict[str, str]
) -> None:
    authority = await make_authority(cookie_mode="refresh")
    _, cookies = await login(authority)
    token = cookies[REFRESH_COOKIE].value
    response = await refresh(authority, token, **headers)
    assert_problem(response, 403, "csrf")
    assert "set-cookie" not in response.headers
    assert (await refresh(authority, token, **CSRF)).status_code == 200  # nothing was rotated


async def test_cookie_mode_refuses_a_refresh_token_in_the_body(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="refresh")
    _, cookies = await login(authority)
    token = cookies[REFRESH_COOKIE].value
    response = await authority.http.post(
        "/v1/tokens/refresh", json={"refresh_token": token}, headers=CSRF
    )
    assert_problem(response, 400, "bad-request")
    missing = await authority.http.post("/v1/tokens/refresh", headers=CSRF)
    assert_problem(missing, 400, "bad-request")


# --------------------------------------------------------------------------- logout, revoke


async def test_logout_clears_the_cookie_and_ends_the_session(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="refresh")
    body, cookies = await login(authority)
    response = await authority.http.post("/v1/logout", headers=bearer(body["access_token"]))
    assert response.status_code == 204, response.text
    cleared = set_cookies(response)
    assert set(cleared) == {REFRESH_COOKIE}
    assert cleared[REFRESH_COOKIE].value == ""
    assert_host_cookie(cleared[REFRESH_COOKIE], 0)
    again = await refresh(authority, cookies[REFRESH_COOKIE].value, **CSRF)
    assert_problem(again, 400, "invalid-grant")


async def test_both_mode_whoami_and_logout_by_cookie(make_authority: MakeAuthority) -> None:
    authority = await make_authority(cookie_mode="both")
    body, cookies = await login(authority)
    access = cookies[ACCESS_COOKIE].value
    whoami = await authority.http.get("/v1/whoami", headers=cookie_header(access=access))
    assert whoami.status_code == 200, whoami.text  # a safe method: no CSRF proof needed
    assert whoami.json()["sid"] == body["session_id"]

    await assert_csrf_refused(authority, "/v1/logout", cookie_header(access=access))

    response = await authority.http.post(
        "/v1/logout", headers={**cookie_header(access=access), **CSRF}
    )
    assert response.status_code == 204, response.text
    cleared = set_cookies(response)
    assert set(cleared) == {REFRESH_COOKIE, ACCESS_COOKIE}
    for cookie in cleared.values():
        assert cookie.value == ""
        assert_host_cookie(cookie, 0)
    after = await authority.http.get("/v1/whoami", headers=cookie_header(access=access))
    assert_problem(after, 401, "token-revoked")


async def test_both_mode_refresh_rotates_both_cookies(make_authority: MakeAuthority) -> None:
    authority = await make_authority(cookie_mode="both")
    _, cookies = await login(authority)
    response = await refresh(authority, cookies[REFRESH_COOKIE].value, **CSRF)
    assert response.status_code == 200, response.text
    assert "access_token" not in response.json()
    assert "refresh_token" not in response.json()
    rotated = set_cookies(response)
    assert set(rotated) == {REFRESH_COOKIE, ACCESS_COOKIE}
    whoami = await authority.http.get(
        "/v1/whoami", headers=cookie_header(access=rotated[ACCESS_COOKIE].value)
    )
    assert whoami.status_code == 200, whoami.text


async def test_refresh_mode_ignores_an_access_cookie(make_authority: MakeAuthority) -> None:
    authority = await make_authority(cookie_mode="refresh")
    body, _ = await login(authority)
    response = await authority.http.get(
        "/v1/whoami", headers=cookie_header(access=body["access_token"])
    )
    assert_problem(response, 401, "unauthenticated")


async def test_revoke_by_cookie_needs_csrf_proof_and_clears_the_cookie(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="refresh")
    _, cookies = await login(authority)
    token = cookies[REFRESH_COOKIE].value
    await assert_csrf_refused(authority, "/v1/revoke", cookie_header(refresh=token))
    response = await authority.http.post(
        "/v1/revoke", headers={**cookie_header(refresh=token), **CSRF}
    )
    assert response.status_code == 200, response.text
    assert_host_cookie(set_cookies(response)[REFRESH_COOKIE], 0)
    assert_problem(await refresh(authority, token, **CSRF), 400, "invalid-grant")


# --------------------------------------------------------------------------- fixation


async def test_a_login_replaces_an_earlier_cookie_with_a_new_session(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="refresh")
    first, first_cookies = await login(authority)
    old = first_cookies[REFRESH_COOKIE].value
    # The login backend forwards the browser's cookies: the old one must not be adopted.
    second, second_cookies = await login(authority, headers=cookie_header(refresh=old))
    new = second_cookies[REFRESH_COOKIE]
    assert second["session_id"] != first["session_id"]
    assert new.value != old
    assert new.value.startswith(second["session_id"] + ".")
    assert_host_cookie(new, second["refresh_expires_in"])


async def test_an_old_refresh_cookie_does_not_revive_its_session_after_a_new_login(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(cookie_mode="refresh")
    first, first_cookies = await login(authority)
    old = first_cookies[REFRESH_COOKIE].value
    logout = await authority.http.post("/v1/logout", headers=bearer(first["access_token"]))
    assert logout.status_code == 204, logout.text
    second, second_cookies = await login(authority, headers=cookie_header(refresh=old))
    assert_problem(await refresh(authority, old, **CSRF), 400, "invalid-grant")
    response = await refresh(authority, second_cookies[REFRESH_COOKIE].value, **CSRF)
    assert response.status_code == 200, response.text
    assert response.json()["session_id"] == second["session_id"]
    assert set_cookies(response)[REFRESH_COOKIE].value.startswith(second["session_id"] + ".")


# --------------------------------------------------------------------------- off mode


async def test_off_mode_sets_no_cookie_and_ignores_cookies(make_authority: MakeAuthority) -> None:
    authority = await make_authority()
    tokens = await authority.login()
    response = await authority.http.post(
        "/v1/sessions", json={"subject": "bob"}, headers=authority.service
    )
    assert "set-cookie" not in response.headers
    register("access token", response.json()["access_token"])
    register("refresh token", response.json()["refresh_token"])
    by_cookie = await authority.http.post(
        "/v1/tokens/refresh", headers={**cookie_header(refresh=tokens["refresh_token"]), **CSRF}
    )
    assert_problem(by_cookie, 400, "bad-request")
    rotated = await authority.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert "set-cookie" not in rotated.headers
    assert rotated.json()["refresh_token"]
    whoami = await authority.http.get(
        "/v1/whoami", headers=cookie_header(access=rotated.json()["access_token"])
    )
    assert_problem(whoami, 401, "unauthenticated")
    logout = await authority.http.post("/v1/logout", headers=bearer(rotated.json()["access_token"]))
    assert logout.status_code == 204
    assert "set-cookie" not in logout.headers


async def test_a_cors_preflight_is_never_granted(make_authority: MakeAuthority) -> None:
    """The custom header is a CSRF defence only because no other origin may send it."""
    authority = await make_authority(cookie_mode="both")
    response = await authority.http.options(
        "/v1/tokens/refresh",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-sessiond-csrf",
        },
    )
    assert not [h for h in response.headers if h.lower().startswith("access-control-allow")]
