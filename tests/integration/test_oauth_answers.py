"""The shapes OAuth clients rely on: uncacheable token answers (RFC 6749 section 5.1),
introspection (RFC 7662) and revocation (RFC 7009) answers, error codes (RFC 6749 section 5.2),
and the platform's own answers (metrics, the start-up banner)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sessiond.api.cookies import REFRESH_COOKIE
from sessiond.runtime import Runtime
from sessiond.settings import Settings
from sessiond.tokens.keys import Keyset
from support.authority import Authority, MakeAuthority, assert_problem, bearer
from support.secrets import register

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


@pytest.fixture
def backend() -> None:
    """The embedded mode: these answers do not depend on the backend."""


def caching_headers(answer: httpx.Response) -> dict[str, str | None]:
    return {name: answer.headers.get(name) for name in NO_STORE}


async def test_token_answers_are_never_cached(authority: Authority) -> None:
    created = await authority.http.post(
        "/v1/sessions", json={"subject": "alice"}, headers=authority.service
    )
    assert created.status_code == 201
    tokens = created.json()
    register("refresh token", tokens["refresh_token"])
    refreshed = await authority.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200
    granted = await authority.http.post(
        "/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]},
    )
    assert granted.status_code == 200
    register("access token", granted.json()["access_token"])
    register("refresh token", granted.json()["refresh_token"])
    introspected = await authority.http.post(
        "/v1/introspect",
        data={"token": refreshed.json()["access_token"]},
        headers=authority.service,
    )
    assert introspected.status_code == 200

    for answer in (created, refreshed, granted, introspected):
        assert caching_headers(answer) == NO_STORE, answer.request.url


async def test_cookie_mode_refresh_is_never_cached(make_authority: MakeAuthority) -> None:
    authority = await make_authority(cookie_mode="refresh")
    created = await authority.http.post(
        "/v1/sessions", json={"subject": "alice"}, headers=authority.service
    )
    assert caching_headers(created) == NO_STORE
    cookie = next(
        line.split(";")[0]
        for line in created.headers.get_list("set-cookie")
        if line.startswith(REFRESH_COOKIE + "=")
    )
    register("refresh token", cookie.partition("=")[2])

    refreshed = await authority.http.post(
        "/v1/tokens/refresh", headers={"Cookie": cookie, "X-Sessiond-CSRF": "1"}
    )

    assert refreshed.status_code == 200, refreshed.text
    assert caching_headers(refreshed) == NO_STORE


async def test_introspection_names_the_token_type_and_client(authority: Authority) -> None:
    tokens = await authority.login("gina")
    credential = authority.runtime.credentials.authenticate(authority.credential)

    access = await authority.http.post(
        "/v1/introspect", data={"token": tokens["access_token"]}, headers=authority.service
    )
    refresh = await authority.http.post(
        "/v1/introspect", data={"token": tokens["refresh_token"]}, headers=authority.service
    )

    assert access.json()["token_type"] == "Bearer"
    assert access.json()["client_id"] == credential.id
    assert refresh.json()["active"] is True
    assert "token_type" not in refresh.json()  # a refresh token is no access token type
    assert refresh.json()["client_id"] == credential.id


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/introspect", {}),
        ("/v1/introspect", {"token_type_hint": "access_token"}),
        ("/v1/revoke", {}),
        ("/v1/revoke", {"token_type_hint": "refresh_token"}),
        ("/v1/token", {"grant_type": "refresh_token"}),
        ("/v1/token", {"refresh_token": "x.y"}),
    ],
)
async def test_a_missing_parameter_is_invalid_request(
    authority: Authority, path: str, body: dict[str, str]
) -> None:
    answer = await authority.http.post(path, data=body, headers=authority.service)

    assert_problem(answer, 400, "bad-request")
    assert answer.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/v1/introspect", "/v1/revoke", "/v1/token"])
async def test_a_body_that_is_not_json_is_invalid_request(authority: Authority, path: str) -> None:
    headers = {**authority.service, "Content-Type": "application/json"}

    answer = await authority.http.post(path, content=b"\x00", headers=headers)

    assert_problem(answer, 400, "bad-request")
    assert answer.json()["error"] == "invalid_request"


async def test_the_token_endpoint_grants_refresh_tokens_only(authority: Authority) -> None:
    tokens = await authority.login()
    body = {"grant_type": "password", "refresh_token": tokens["refresh_token"]}

    answer = await authority.http.post("/v1/token", data=body)

    assert_problem(answer, 400, "bad-request")
    assert answer.json()["error"] == "unsupported_grant_type"


async def test_a_successful_revocation_has_an_empty_body(authority: Authority) -> None:
    tokens = await authority.login()
    for token in (tokens["access_token"], tokens["refresh_token"], "not-a-token"):
        answer = await authority.http.post("/v1/revoke", data={"token": token})
        assert answer.status_code == 200
        assert answer.content == b""


@pytest.mark.parametrize("content_type", [None, "application/json"])
async def test_a_missing_body_says_so(authority: Authority, content_type: str | None) -> None:
    headers = {**authority.service, **({"Content-Type": content_type} if content_type else {})}

    answer = await authority.http.post("/v1/sessions", headers=headers)

    assert_problem(answer, 400, "bad-request")
    assert answer.json()["errors"] == [{"message": "the request has no body", "source": "body"}]
    assert "'data'" not in answer.text


async def test_metrics_are_served_in_the_text_format_with_one_charset(
    authority: Authority,
) -> None:
    tokens = await authority.login()
    await authority.http.post("/v1/logout", headers=bearer(tokens["access_token"]))

    answer = await authority.http.get("/metrics")

    media_type, *parameters = answer.headers["content-type"].split("; ")
    assert media_type == "text/plain"
    assert [p for p in parameters if p.startswith("charset=")] == ["charset=utf-8"]
    families = text_string_to_metric_families(answer.text)
    names = {sample.name for family in families for sample in family.samples}
    assert "sessiond_sign_ins_total" in names
    assert "sessiond_sign_ins_created" in names
    assert not [name for name in names if name.endswith("_created_created")]


def test_the_banner_says_ephemeral_only_for_an_ephemeral_key(tmp_path: Path) -> None:
    keyset_file = tmp_path / "keyset.json"
    Keyset.generate().save(keyset_file)

    # The first line only: the next one shows the one-time credential.
    ephemeral = Runtime(Settings.load({}, {})).banner()[0]
    from_file = Runtime(Settings.load({}, {"keyset_file": str(keyset_file)})).banner()[0]

    assert "ephemeral signing key" in ephemeral
    assert "ephemeral" not in from_file
    assert "SESSIOND_KEYSET_FILE" in from_file
