"""The web console over HTTP: its headers, its CSRF defence, its cookies, the administrator's
sign-in and audited actions, and the setting that turns it off (the browser's view of the same
rules: ``tests/browser``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.console.admin import ADMIN_COOKIE
from sessiond.console.security import CSP, CSRF_COOKIE
from sessiond.runtime import Runtime
from sessiond.settings import Settings
from support.authority import assert_problem
from support.secrets import register

REFRESH_COOKIE = "__Host-sessiond-refresh"
Client = AsyncTestClient[Any]


@pytest.fixture
async def runtime() -> Runtime:
    return Runtime(Settings.load({}, {"cookie_mode": "refresh"}))


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[Client]:
    # https: the client keeps and sends Secure cookies only there.
    async with AsyncTestClient(create_app(runtime), base_url="https://sessiond.test") as client:
        client.follow_redirects = False  # the forms' 303s are what is tested
        yield client


def service(runtime: Runtime) -> dict[str, str]:
    assert runtime.one_time_credential is not None
    register("service credential", runtime.one_time_credential)
    return {"Authorization": f"Bearer {runtime.one_time_credential}"}


async def sign_in(http: Client, runtime: Runtime, subject: str = "alice") -> str:
    """A new session of ``subject``, whose refresh cookie the client now holds: its id."""
    answer = await http.post("/v1/sessions", json={"subject": subject}, headers=service(runtime))
    assert answer.status_code == 201, answer.text
    token = answer.cookies[REFRESH_COOKIE]
    register("refresh token", token)
    return token.partition(".")[0]


async def csrf(http: Client) -> str:
    """The CSRF token of the client's cookie, set by any console page."""
    await http.get("/console/devices")
    token = http.cookies.get(CSRF_COOKIE)
    assert token
    return token


async def test_console_answers_carry_the_csp_and_the_apis_do_not(http: Client) -> None:
    page = await http.get("/console/devices")
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    asset = await http.get("/console/static/console.js")
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith("text/javascript")
    for path in ("/healthz", "/.well-known/jwks.json", "/v1/whoami"):
        assert "content-security-policy" not in (await http.get(path)).headers


async def test_without_a_session_the_devices_page_says_signed_out(http: Client) -> None:
    page = await http.get("/console/devices")
    assert page.status_code == 401
    assert "You are signed out" in page.text
    assert_problem(await http.get("/console/events"), 401)


@pytest.mark.parametrize(
    ("token", "headers"),
    [
        ("", {}),
        ("x" * 43, {}),
        (None, {"sec-fetch-site": "same-site"}),
        (None, {"sec-fetch-site": "cross-site"}),
        (None, {"origin": "https://evil.test"}),
        (None, {"origin": "null"}),
    ],
    ids=["no token", "wrong token", "same-site", "cross-site", "other origin", "null origin"],
)
async def test_a_form_that_another_site_could_post_is_refused(
    http: Client, runtime: Runtime, token: str | None, headers: dict[str, str]
) -> None:
    await sign_in(http, runtime)
    await sign_in(http, runtime)  # the client's cookie now names this one
    good = await csrf(http)
    answer = await http.post(
        "/console/devices/sign-out-others",
        data={"csrf": good if token is None else token},
        headers=headers,
    )
    assert_problem(answer, 403, "csrf")
    assert len(await runtime.sessions.list_subject("alice")) == 2


async def test_a_same_origin_form_signs_the_other_devices_out(
    http: Client, runtime: Runtime
) -> None:
    await sign_in(http, runtime)
    mine = await sign_in(http, runtime)
    answer = await http.post(
        "/console/devices/sign-out-others",
        data={"csrf": await csrf(http)},
        headers={"sec-fetch-site": "same-origin", "origin": "https://sessiond.test"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/devices?notice=signed-out-others"
    assert [s.sid for s in await runtime.sessions.list_subject("alice")] == [mine]


async def test_signing_this_device_out_expires_its_cookie(http: Client, runtime: Runtime) -> None:
    mine = await sign_in(http, runtime)
    answer = await http.post(
        "/console/devices/sign-out", data={"csrf": await csrf(http), "session_id": mine}
    )
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if REFRESH_COOKIE in c)
    assert "Max-Age=0" in cookie
    assert await runtime.store.get(mine) is None
    assert (await http.get("/console/devices")).status_code == 401


async def test_a_user_cannot_sign_out_another_users_session(http: Client, runtime: Runtime) -> None:
    theirs = await sign_in(http, runtime, "mallory-victim")
    await sign_in(http, runtime, "alice")
    answer = await http.post(
        "/console/devices/sign-out", data={"csrf": await csrf(http), "session_id": theirs}
    )
    assert answer.status_code == 303
    assert await runtime.store.get(theirs) is not None


async def admin_sign_in(http: Client, credential: str) -> Any:
    register("service credential", credential)
    return await http.post(
        "/console/admin/sign-in", data={"csrf": await csrf(http), "credential": credential}
    )


async def test_only_a_console_admin_credential_signs_in(http: Client, runtime: Runtime) -> None:
    reader, runtime.credentials = runtime.credentials.issue("reader", ["sessions:read"])
    refused = await admin_sign_in(http, reader)
    assert refused.status_code == 401
    assert ADMIN_COOKIE not in refused.headers.get("set-cookie", "")
    assert (await http.get("/console/admin")).headers["location"] == "/console/admin/sign-in"

    admin, runtime.credentials = runtime.credentials.issue("ops-admin", ["console:admin"])
    answer = await admin_sign_in(http, admin)
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if ADMIN_COOKIE in c)
    register("console session", cookie.split(";")[0].partition("=")[2])
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert attributes == {"httponly", "secure", "samesite=strict", "path=/", "max-age=900"}
    assert "Cluster health" in (await http.get("/console/admin")).text


async def test_a_forced_sign_out_is_audited_with_the_administrators_name(
    http: Client, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    one = await sign_in(http, runtime, "bob")
    await sign_in(http, runtime, "bob")
    admin, runtime.credentials = runtime.credentials.issue("ops-admin", ["console:admin"])
    await admin_sign_in(http, admin)
    token = http.cookies[CSRF_COOKIE]
    caplog.set_level(logging.INFO, "sessiond.audit")
    caplog.clear()

    answer = await http.post(
        "/console/admin/sign-out-session", data={"csrf": token, "subject": "bob", "session_id": one}
    )
    assert answer.status_code == 303
    assert await runtime.store.get(one) is None
    answer = await http.post(
        "/console/admin/sign-out-subject", data={"csrf": token, "subject": "bob"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/admin?subject=bob&notice=subject"
    assert await runtime.sessions.list_subject("bob") == []

    audited = [r.audit for r in caplog.records if hasattr(r, "audit")]
    assert [(a["action"], a["actor"]["name"]) for a in audited] == [
        ("session.revoked", "ops-admin"),
        ("subject.revoked", "ops-admin"),
    ]
    assert all("administrator ops-admin" in a["reason"] for a in audited)
    page = (await http.get("/console/admin", params={"subject": "bob"})).text
    assert page.count("ops-admin") >= 3  # the header and both trail lines


async def test_without_the_cookie_mode_the_devices_page_says_why() -> None:
    async with AsyncTestClient(create_app(Runtime(Settings.load({})))) as http:
        page = await http.get("/console/devices")
    assert page.status_code == 401
    assert "SESSIOND_COOKIE_MODE=off" in page.text


async def test_the_console_can_be_turned_off() -> None:
    runtime = Runtime(Settings.load({"SESSIOND_CONSOLE": "off"}))
    async with AsyncTestClient(create_app(runtime)) as http:
        assert (await http.get("/console/devices")).status_code == 404
        assert (await http.get("/console/static/console.css")).status_code == 404
