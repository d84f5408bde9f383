"""Service routes, RFC 7662/7009 endpoints, platform routes and error shapes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.credentials.store import CredentialSet
from sessiond.runtime import Runtime
from support.authority import Authority, assert_problem, bearer, distributed_settings


async def test_service_routes_need_a_credential(authority: Authority) -> None:
    body = {"subject": "alice"}
    missing = await authority.http.post("/v1/sessions", json=body)
    assert_problem(missing, 401, "unauthenticated")
    wrong = await authority.http.post("/v1/sessions", json=body, headers=bearer("sdc_x_y"))
    assert_problem(wrong, 401, "invalid-credential")
    assert "sdc_x_y" not in wrong.text


async def test_a_missing_scope_is_403(redis_url: str, tmp_path: Path) -> None:
    settings, _ = distributed_settings(redis_url, tmp_path)
    assert settings.credentials_file is not None
    secret, credentials = CredentialSet.load(settings.credentials_file).issue(
        "reader", ("sessions:read",), now=time.time()
    )
    credentials.save(settings.credentials_file)
    async with AsyncTestClient(create_app(Runtime(settings))) as http:
        denied = await http.post("/v1/sessions", json={"subject": "a"}, headers=bearer(secret))
        assert_problem(denied, 403, "insufficient-scope")
        allowed = await http.get("/v1/subjects/a/sessions", headers=bearer(secret))
        assert allowed.status_code == 200


async def test_revocation_by_token_id(authority: Authority) -> None:
    first, second = await authority.login(), await authority.login()
    jti = (await authority.whoami(first["access_token"])).json()["jti"]
    response = await authority.http.post(
        "/v1/revocations", json={"kind": "token", "jti": jti}, headers=authority.service
    )
    assert response.status_code == 200
    assert response.json()["kind"] == "token"
    assert_problem(await authority.whoami(first["access_token"]), 401, "token-revoked")
    assert (await authority.whoami(second["access_token"])).status_code == 200
    renewed = await authority.refresh(first["refresh_token"])
    assert (await authority.whoami(renewed.json()["access_token"])).status_code == 200


@pytest.mark.parametrize(("kind", "field"), [("session", "session_id"), ("subject", "subject")])
async def test_revocation_by_session_and_subject(
    authority: Authority, kind: str, field: str
) -> None:
    tokens = await authority.login("frank")
    value = tokens["session_id"] if field == "session_id" else "frank"
    response = await authority.http.post(
        "/v1/revocations",
        json={"kind": kind, field: value, "reason": "test"},
        headers=authority.service,
    )
    assert response.status_code == 200
    assert_problem(await authority.whoami(tokens["access_token"]), 401, "token-revoked")
    assert_problem(await authority.refresh(tokens["refresh_token"]), 400, "invalid-grant")


async def test_revoke_all_rejects_old_tokens_but_sessions_refresh(authority: Authority) -> None:
    tokens = await authority.login()
    response = await authority.http.post(
        "/v1/revocations",
        json={"kind": "all", "reason": "key compromise"},
        headers=authority.service,
    )
    assert response.status_code == 200
    assert_problem(await authority.whoami(tokens["access_token"]), 401, "token-revoked")
    await asyncio.sleep(1.05)  # tokens issued in the not-before second itself are rejected too
    renewed = await authority.refresh(tokens["refresh_token"])
    assert (await authority.whoami(renewed.json()["access_token"])).status_code == 200


async def test_revocation_needs_its_target(authority: Authority) -> None:
    response = await authority.http.post(
        "/v1/revocations", json={"kind": "session"}, headers=authority.service
    )
    assert_problem(response, 400, "bad-request")
    unknown = await authority.http.post(
        "/v1/revocations", json={"kind": "galaxy"}, headers=authority.service
    )
    assert_problem(unknown, 400)


async def test_introspection(authority: Authority) -> None:
    tokens = await authority.login("gina", scope="read")
    introspect = "/v1/introspect"
    access = await authority.http.post(
        introspect, data={"token": tokens["access_token"]}, headers=authority.service
    )
    assert access.json()["active"] is True
    assert access.json()["token_type"] == "Bearer"
    assert access.json()["sub"] == "gina"
    assert access.json()["scope"] == "read"
    refresh = await authority.http.post(
        introspect, json={"token": tokens["refresh_token"]}, headers=authority.service
    )
    assert refresh.json()["active"] is True
    assert "token_type" not in refresh.json()  # not an access token: it has no OAuth type
    junk = await authority.http.post(introspect, data={"token": "junk"}, headers=authority.service)
    assert junk.json() == {"active": False}

    await authority.http.delete(f"/v1/sessions/{tokens['session_id']}", headers=authority.service)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        gone = await authority.http.post(
            introspect, data={"token": token}, headers=authority.service
        )
        assert gone.json() == {"active": False}


async def test_rfc7009_revoke_of_a_refresh_token_ends_the_session(authority: Authority) -> None:
    tokens = await authority.login()
    response = await authority.http.post("/v1/revoke", data={"token": tokens["refresh_token"]})
    assert response.status_code == 200
    assert_problem(await authority.refresh(tokens["refresh_token"]), 400, "invalid-grant")
    assert_problem(await authority.whoami(tokens["access_token"]), 401, "token-revoked")


async def test_rfc7009_revoke_of_an_access_token_denies_only_it(authority: Authority) -> None:
    tokens = await authority.login()
    response = await authority.http.post("/v1/revoke", data={"token": tokens["access_token"]})
    assert response.status_code == 200
    assert_problem(await authority.whoami(tokens["access_token"]), 401, "token-revoked")
    assert (await authority.refresh(tokens["refresh_token"])).status_code == 200
    unknown = await authority.http.post("/v1/revoke", data={"token": "whatever"})
    assert unknown.status_code == 200


async def test_jwks_serves_public_keys_with_cache_headers(authority: Authority) -> None:
    response = await authority.http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    (key,) = response.json()["keys"]
    assert key["kid"] == authority.runtime.keyset.active.kid
    assert key["alg"] == "ES256"
    assert "d" not in key


async def test_platform_routes(authority: Authority) -> None:
    assert (await authority.http.get("/healthz")).json() == {"status": "ok"}
    assert (await authority.http.get("/readyz")).status_code == 200
    await authority.login()
    tokens = await authority.login()
    await authority.http.post("/v1/logout", headers=bearer(tokens["access_token"]))
    metrics = (await authority.http.get("/metrics")).text
    assert "sessiond_sign_ins_total 2.0" in metrics
    assert 'sessiond_revocations_total{kind="session"} 1.0' in metrics
    assert 'sessiond_denylist_entries{kind="session"} 1.0' in metrics
    assert "sessiond_denylist_staleness_seconds 0.0" in metrics
    assert "sessiond_outbox_depth" in metrics
    assert "sessiond_propagation_lag_seconds_bucket" in metrics


async def test_reserved_claims_are_refused(authority: Authority) -> None:
    response = await authority.http.post(
        "/v1/sessions", json={"subject": "a", "claims": {"sub": "root"}}, headers=authority.service
    )
    assert_problem(response, 400, "claim-not-allowed")


@pytest.mark.parametrize(
    "body", [{"subject": ""}, {"subject": 1}, {}, {"subject": "a", "extra": 1}, [1, 2]]
)
async def test_invalid_bodies_are_400(authority: Authority, body: object) -> None:
    response = await authority.http.post("/v1/sessions", json=body, headers=authority.service)
    assert_problem(response, 400)


async def test_unknown_routes_and_methods_are_problems(authority: Authority) -> None:
    assert_problem(await authority.http.get("/v2/nothing"), 404)
    assert_problem(await authority.http.put("/v1/whoami"), 405)
    malformed = await authority.http.get("/v1/sessions/../../x", headers=authority.service)
    assert malformed.status_code in (400, 404)
