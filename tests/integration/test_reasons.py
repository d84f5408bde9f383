"""Reasons end to end over HTTP: every way a token is revoked tells its holder why, in the
401 problem (``reason_code`` and ``reason``), the ``WWW-Authenticate`` challenge and the audit
line of the revocation."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from support.authority import Authority, MakeAuthority, assert_problem, bearer


def assert_revoked(response: httpx.Response, code: str, reason: str | None = None) -> None:
    """A 401 ``token-revoked`` that names ``code`` (and ``reason``) as the app reads them."""
    assert_problem(response, 401, "token-revoked")
    body = response.json()
    assert body["reason_code"] == code
    assert body.get("reason") == reason
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="sessiond", error="invalid_token"'), challenge
    assert f'error_description="token revoked: {code}"' in challenge


async def test_a_forced_sign_out_says_forced(authority: Authority) -> None:
    tokens = await authority.login("alice")
    done = await authority.http.delete("/v1/subjects/alice/sessions", headers=authority.service)
    assert done.status_code == 204
    assert_revoked(await authority.whoami(tokens["access_token"]), "forced", "forced sign-out")


async def test_the_caller_of_a_forced_sign_out_may_name_the_reason(authority: Authority) -> None:
    alice, bob = await authority.login("alice"), await authority.login("bob")
    service = authority.service
    by_subject = await authority.http.delete(
        "/v1/subjects/alice/sessions?reason_code=password_change", headers=service
    )
    assert by_subject.status_code == 204
    assert_revoked(
        await authority.whoami(alice["access_token"]), "password_change", "forced sign-out"
    )
    by_session = await authority.http.delete(
        f"/v1/sessions/{bob['session_id']}?reason_code=admin", headers=service
    )
    assert by_session.status_code == 204
    assert_revoked(await authority.whoami(bob["access_token"]), "admin", "revoked by service")
    unknown = await authority.http.delete(
        "/v1/subjects/alice/sessions?reason_code=bored", headers=service
    )
    assert_problem(unknown, 400, "bad-request")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "subject", "subject": "alice", "reason": "left the bank"}, "admin"),
        ({"kind": "all", "reason_code": "key_compromise", "reason": "rotated"}, "key_compromise"),
    ],
)
async def test_a_revocation_says_admin_unless_told(
    authority: Authority, body: dict[str, Any], code: str
) -> None:
    tokens = await authority.login("alice")
    await asyncio.sleep(1.01)  # "all" spares tokens issued after its second: sign in before
    done = await authority.http.post("/v1/revocations", json=body, headers=authority.service)
    assert done.status_code == 200, done.text
    assert_revoked(await authority.whoami(tokens["access_token"]), code, body["reason"])


async def test_a_revocation_with_an_unknown_reason_code_is_refused(authority: Authority) -> None:
    body = {"kind": "all", "reason_code": "bored"}
    response = await authority.http.post("/v1/revocations", json=body, headers=authority.service)
    assert_problem(response, 400, "bad-request")


async def test_the_clients_own_sign_outs_say_logout(authority: Authority) -> None:
    logged_out, by_refresh, by_access = [await authority.login() for _ in range(3)]
    response = await authority.http.post("/v1/logout", headers=bearer(logged_out["access_token"]))
    assert response.status_code == 204
    assert_revoked(await authority.whoami(logged_out["access_token"]), "logout", "logout")
    for token in (by_refresh["refresh_token"], by_access["access_token"]):  # RFC 7009
        answer = await authority.http.post("/v1/revoke", data={"token": token})
        assert answer.status_code == 200
    for tokens in (by_refresh, by_access):
        assert_revoked(
            await authority.whoami(tokens["access_token"]), "logout", "revoked by client"
        )


async def test_refresh_reuse_and_the_session_limit_say_so(make_authority: MakeAuthority) -> None:
    authority = await make_authority(refresh_grace=0, session_limit=1)
    stolen = await authority.login("carol")
    honest = (await authority.refresh(stolen["refresh_token"])).json()
    await asyncio.sleep(0.01)
    assert_problem(await authority.refresh(stolen["refresh_token"]), 400, "invalid-grant")
    assert_revoked(
        await authority.whoami(honest["access_token"]), "refresh_reuse", "refresh token reuse"
    )
    oldest = await authority.login("dave")
    await authority.login("dave")
    assert_revoked(await authority.whoami(oldest["access_token"]), "session_limit", "session limit")


async def test_the_audit_line_carries_the_reason_code(
    authority: Authority, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessiond.audit")
    await authority.login("erin")
    caplog.clear()
    await authority.http.delete(
        "/v1/subjects/erin/sessions?reason_code=password_change", headers=authority.service
    )
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sessiond.audit"]
    assert line["action"] == "subject.revoked"
    assert line["reason_code"] == "password_change"
    assert line["reason"] == "forced sign-out"
