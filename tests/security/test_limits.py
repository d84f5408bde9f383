"""Every request limit answered over HTTP with the right 4xx problem+json, never a 5xx."""

from __future__ import annotations

import json

import pytest

from sessiond.api.sizes import DepthScanner
from support.authority import Authority, MakeAuthority, assert_problem, bearer


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --------------------------------------------------------------------------- request body


async def test_body_over_the_limit_is_413(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_body_bytes=1024)
    body = json.dumps({"subject": "alice", "data": {"x": "y" * 2048}})
    response = await authority.http.post(
        "/v1/sessions",
        content=body,
        headers={**authority.service, "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload-too-large")


async def test_body_at_the_limit_is_accepted(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_body_bytes=1024)
    body = json.dumps({"subject": "alice", "data": {"x": "y" * 100}})
    response = await authority.http.post(
        "/v1/sessions",
        content=body,
        headers={**authority.service, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


# --------------------------------------------------------------------------- headers


async def test_one_header_over_the_limit_is_431(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_header_field_bytes=1024, max_token_bytes=512)
    response = await authority.http.get("/v1/whoami", headers={"X-Big": "a" * 1100})
    assert_problem(response, 431, "headers-too-large")
    assert "header field" in response.json()["detail"]


async def test_header_block_over_the_limit_is_431(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_header_bytes=2048, max_header_field_bytes=1024)
    headers = {f"X-H{i}": "a" * 500 for i in range(5)}
    response = await authority.http.get("/healthz", headers=headers)
    assert_problem(response, 431, "headers-too-large")


async def test_headers_are_checked_before_routing(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_header_bytes=2048, max_header_field_bytes=1024)
    response = await authority.http.get("/no/such/route", headers={"X-Big": "a" * 1500})
    assert_problem(response, 431, "headers-too-large")


async def test_headers_under_the_limit_pass(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_header_bytes=4096, max_header_field_bytes=1024)
    response = await authority.http.get("/healthz", headers={"X-Ok": "a" * 900})
    assert response.status_code == 200


async def test_default_header_limit_leaves_room_for_an_over_long_token(
    authority: Authority,
) -> None:
    """A token just over max_token_bytes is a 401 (token cap), not a 431 (header cap)."""
    settings = authority.runtime.settings
    token = "e" * (settings.max_token_bytes + 100)
    response = await authority.http.get("/v1/whoami", headers=bearer(token))
    assert_problem(response, 401)


def test_field_limit_above_block_limit_is_a_config_error() -> None:
    from sessiond.errors import ConfigError
    from sessiond.settings import Settings

    with pytest.raises(ConfigError, match="SESSIOND_MAX_HEADER_FIELD_BYTES"):
        Settings.load(
            {"SESSIOND_MAX_HEADER_BYTES": "1024", "SESSIOND_MAX_HEADER_FIELD_BYTES": "2048"}
        )


# --------------------------------------------------------------------------- token size


async def test_token_over_the_cap_is_401(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_token_bytes=512)
    response = await authority.whoami("a" * 600)
    assert_problem(response, 401)


# --------------------------------------------------------------------------- JSON depth


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/sessions", '{"subject": "alice", "data": {"x": %s}}'),
        ("/v1/sessions", '{"subject": "alice", "claims": {"x": %s}}'),
        ("/v1/revocations", '{"kind": "all", "reason": %s}'),
        ("/v1/tokens/refresh", '{"refresh_token": %s}'),
        ("/v1/introspect", '{"token": %s}'),
    ],
)
async def test_json_nested_too_deep_is_400(
    make_authority: MakeAuthority, path: str, body: str
) -> None:
    authority = await make_authority(max_json_depth=8)
    response = await authority.http.post(
        path,
        content=body.replace("%s", nested(20)),
        headers={**authority.service, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "json-too-deep")
    assert "deeper than 8" in response.json()["detail"]


async def test_json_depth_is_checked_whatever_the_content_type(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(max_json_depth=8)
    response = await authority.http.post(
        "/v1/tokens/refresh",
        content='{"refresh_token": %s}'.replace("%s", nested(20)),
        headers={"Content-Type": "text/plain"},
    )
    assert_problem(response, 400, "json-too-deep")


async def test_very_deep_json_is_answered_not_crashed(authority: Authority) -> None:
    """100 000 levels would overflow a recursive decoder: it never reaches one."""
    response = await authority.http.post(
        "/v1/sessions",
        content='{"subject": "alice", "data": {"x": %s}}'.replace("%s", nested(30_000)),
        headers={**authority.service, "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 413)
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_json_at_the_depth_limit_is_accepted(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_json_depth=8)
    # object (1) > data (2) > 6 arrays = depth 8
    response = await authority.http.post(
        "/v1/sessions",
        content='{"subject": "alice", "data": {"x": %s}}'.replace("%s", nested(6)),
        headers={**authority.service, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


async def test_brackets_inside_strings_do_not_count(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_json_depth=8)
    text = '[{\\"' * 50
    response = await authority.http.post(
        "/v1/sessions",
        content='{"subject": "alice", "data": {"x": "%s"}}'.replace("%s", text),
        headers={**authority.service, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


def test_scanner_honours_escapes_across_chunks() -> None:
    scanner = DepthScanner(2)
    assert scanner.feed(b'{"a": "x\\')
    assert scanner.feed(b'" [[[[ still a string", "b": [')
    assert scanner.depth == 2
    assert not scanner.feed(b"[")


def test_scanner_counts_closing_brackets() -> None:
    scanner = DepthScanner(3)
    for _ in range(100):
        assert scanner.feed(b"[[[")
        assert scanner.feed(b"]]]")
    assert scanner.depth == 0


# --------------------------------------------------------------------------- custom claims


async def test_too_many_custom_claims_is_400(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_custom_claims=4)
    response = await authority.http.post(
        "/v1/sessions",
        json={"subject": "alice", "claims": {f"c{i}": i for i in range(5)}},
        headers=authority.service,
    )
    assert_problem(response, 400, "too-many-claims")
    assert "at most 4" in response.json()["detail"]


async def test_custom_claims_at_the_limit_are_accepted(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_custom_claims=4)
    tokens = await authority.login(claims={f"c{i}": i for i in range(4)})
    response = await authority.whoami(tokens["access_token"])
    assert response.status_code == 200
    assert response.json()["claims"] == {f"c{i}": i for i in range(4)}


async def test_default_custom_claims_limit(authority: Authority) -> None:
    response = await authority.http.post(
        "/v1/sessions",
        json={"subject": "alice", "claims": {f"c{i}": i for i in range(33)}},
        headers=authority.service,
    )
    assert_problem(response, 400, "too-many-claims")


# --------------------------------------------------------------------------- session data


async def test_session_data_over_the_limit_is_413(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_data_bytes=256)
    response = await authority.http.post(
        "/v1/sessions",
        json={"subject": "alice", "data": {"x": "y" * 300}},
        headers=authority.service,
    )
    assert_problem(response, 413, "payload-too-large")
