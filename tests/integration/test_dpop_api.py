"""DPoP (RFC 9449) through the authority's HTTP API: a session bound at sign-in, its refresh,
whoami and introspection; proofs from joserfc, and every hostile request refused."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.runtime import Runtime
from support.authority import Authority, MakeAuthority, assert_problem, distributed_settings
from support.dpop import DpopClient, handmade_proof, hmac_proof, private_jwk_proof
from support.secrets import register

BASE = "http://testserver.local"
SESSIONS, REFRESH, WHOAMI = f"{BASE}/v1/sessions", f"{BASE}/v1/tokens/refresh", f"{BASE}/v1/whoami"


@pytest.fixture
def backend() -> None:
    """The embedded mode: the Redis round trip of a binding has a test of its own below."""


async def sign_in(
    http: AsyncTestClient[Any], credential: str, proof: str | None, **body: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {credential}", **({"DPoP": proof} if proof else {})}
    response = await http.post("/v1/sessions", json={"subject": "alice", **body}, headers=headers)
    remember(response)
    return response


async def refresh(http: AsyncTestClient[Any], token: str, proof: str | None) -> httpx.Response:
    headers = {"DPoP": proof} if proof else {}
    response = await http.post("/v1/tokens/refresh", json={"refresh_token": token}, headers=headers)
    remember(response)
    return response


def remember(response: httpx.Response) -> None:
    if response.status_code in (200, 201):
        register("access token", response.json()["access_token"])
        register("refresh token", response.json()["refresh_token"])


def payload(access_token: str) -> dict[str, Any]:
    segment = access_token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


async def bound_session(authority: Authority, holder: DpopClient) -> dict[str, Any]:
    response = await sign_in(authority.http, authority.credential, holder.proof("POST", SESSIONS))
    assert response.status_code == 201, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def test_a_session_bound_at_sign_in_stays_bound_through_refresh(
    authority: Authority,
) -> None:
    holder = DpopClient()
    tokens = await bound_session(authority, holder)
    assert tokens["token_type"] == "DPoP"
    assert payload(tokens["access_token"])["cnf"] == {"jkt": holder.jkt}  # joserfc's thumbprint
    access = tokens["access_token"]
    whoami = await authority.http.get("/v1/whoami", headers=holder.headers("GET", WHOAMI, access))
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["cnf"] == {"jkt": holder.jkt}

    renewed = await refresh(authority.http, tokens["refresh_token"], holder.proof("POST", REFRESH))
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "DPoP"
    assert payload(renewed.json()["access_token"])["cnf"] == {"jkt": holder.jkt}

    introspected = await authority.http.post(
        "/v1/introspect", data={"token": renewed.json()["access_token"]}, headers=authority.service
    )
    assert introspected.json()["active"] is True
    assert introspected.json()["token_type"] == "DPoP"
    assert introspected.json()["cnf"] == {"jkt": holder.jkt}


@pytest.mark.parametrize(
    "proof",
    [
        lambda: None,
        lambda: DpopClient().proof("POST", REFRESH),
        lambda: DpopClient().proof("POST", SESSIONS),
    ],
    ids=["no proof", "another key", "another key, wrong URL"],
)
async def test_a_bound_refresh_token_is_useless_without_the_key(
    authority: Authority, proof: Callable[[], str | None]
) -> None:
    holder = DpopClient()
    tokens = await bound_session(authority, holder)
    stolen = await refresh(authority.http, tokens["refresh_token"], proof())
    assert_problem(stolen, 400, "invalid-dpop-proof")
    assert stolen.json()["error"] == "invalid_dpop_proof"
    # Nothing rotated: the holder refreshes with the same token.
    mine = await refresh(authority.http, tokens["refresh_token"], holder.proof("POST", REFRESH))
    assert mine.status_code == 200, mine.text


async def test_an_unbound_session_stays_bearer(authority: Authority) -> None:
    tokens = await authority.login()
    assert tokens["token_type"] == "Bearer"
    assert "cnf" not in payload(tokens["access_token"])
    refused = await refresh(
        authority.http, tokens["refresh_token"], DpopClient().proof("POST", REFRESH)
    )
    assert_problem(refused, 400, "invalid-dpop-proof")
    assert (await authority.refresh(tokens["refresh_token"])).status_code == 200


def _bad_sign_in_proofs() -> dict[str, Callable[[DpopClient], str]]:
    return {
        "wrong method": lambda c: c.proof("PUT", SESSIONS),
        "wrong URL": lambda c: c.proof("POST", REFRESH),
        "old iat": lambda c: c.proof("POST", SESSIONS, iat=time.time() - 600),
        "alg none": lambda c: handmade_proof(
            {"typ": "dpop+jwt", "alg": "none", "jwk": c.jwk}, "POST", SESSIONS
        ),
        "HS256": lambda _: hmac_proof("POST", SESSIONS),
        "private key in the jwk": lambda _: private_jwk_proof("POST", SESSIONS),
    }


@pytest.mark.parametrize("case", list(_bad_sign_in_proofs()))
async def test_a_sign_in_with_a_bad_proof_is_a_400(authority: Authority, case: str) -> None:
    response = await sign_in(
        authority.http, authority.credential, _bad_sign_in_proofs()[case](DpopClient())
    )
    assert_problem(response, 400, "invalid-dpop-proof")


async def test_a_replayed_sign_in_proof_is_refused(authority: Authority) -> None:
    proof = DpopClient().proof("POST", SESSIONS)
    assert (await sign_in(authority.http, authority.credential, proof)).status_code == 201
    assert_problem(await sign_in(authority.http, authority.credential, proof), 400)


#: Requests to whoami with a bound token that must all be refused (401, a DPoP challenge).
HOSTILE: dict[str, Callable[[DpopClient, str], dict[str, str]]] = {
    "wrong method": lambda c, t: c.headers("POST", WHOAMI, t),
    "wrong URL": lambda c, t: c.headers("GET", f"{BASE}/v1/logout", t),
    "old iat": lambda c, t: c.headers("GET", WHOAMI, t, iat=time.time() - 600),
    "future iat": lambda c, t: c.headers("GET", WHOAMI, t, iat=time.time() + 600),
    "wrong ath": lambda c, t: {**c.headers("GET", WHOAMI, t[:-2]), "Authorization": f"DPoP {t}"},
    "no ath": lambda c, t: {**c.headers("GET", WHOAMI), "Authorization": f"DPoP {t}"},
    "another key": lambda _, t: DpopClient().headers("GET", WHOAMI, t),
    "alg none": lambda c, t: {
        "Authorization": f"DPoP {t}",
        "DPoP": handmade_proof({"typ": "dpop+jwt", "alg": "none", "jwk": c.jwk}, "GET", WHOAMI),
    },
    "HS256": lambda _, t: {"Authorization": f"DPoP {t}", "DPoP": hmac_proof("GET", WHOAMI)},
    "private key in the jwk": lambda _, t: {
        "Authorization": f"DPoP {t}",
        "DPoP": private_jwk_proof("GET", WHOAMI),
    },
    "missing proof": lambda _, t: {"Authorization": f"DPoP {t}"},
    "bound token as Bearer": lambda _, t: {"Authorization": f"Bearer {t}"},
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_every_hostile_whoami_is_refused(authority: Authority, case: str) -> None:
    holder = DpopClient()
    access = (await bound_session(authority, holder))["access_token"]
    response = await authority.http.get("/v1/whoami", headers=HOSTILE[case](holder, access))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("DPoP ")


async def test_a_replayed_whoami_proof_is_refused(authority: Authority) -> None:
    holder = DpopClient()
    access = (await bound_session(authority, holder))["access_token"]
    headers = holder.headers("GET", WHOAMI, access)
    assert (await authority.http.get("/v1/whoami", headers=headers)).status_code == 200
    assert_problem(
        await authority.http.get("/v1/whoami", headers=headers), 401, "invalid-dpop-proof"
    )


async def test_the_login_backend_forwards_a_proof_made_for_its_own_url(
    make_authority: MakeAuthority,
) -> None:
    login = "https://app.example.com/login"
    authority = await make_authority(dpop_login_url=login)
    holder = DpopClient()
    forwarded = await sign_in(authority.http, authority.credential, holder.proof("POST", login))
    assert forwarded.status_code == 201, forwarded.text
    assert payload(forwarded.json()["access_token"])["cnf"] == {"jkt": holder.jkt}
    direct = await sign_in(authority.http, authority.credential, holder.proof("POST", SESSIONS))
    assert_problem(direct, 400, "invalid-dpop-proof")


async def test_proofs_name_the_public_url(make_authority: MakeAuthority) -> None:
    public = "https://auth.example.com"
    authority = await make_authority(public_url=public)
    holder = DpopClient()
    proof = holder.proof("POST", f"{public}/v1/sessions")
    tokens = (await sign_in(authority.http, authority.credential, proof)).json()
    access = tokens["access_token"]
    seen = await authority.http.get("/v1/whoami", headers=holder.headers("GET", WHOAMI, access))
    assert seen.status_code == 401
    named = holder.headers("GET", f"{public}/v1/whoami", access)
    assert (await authority.http.get("/v1/whoami", headers=named)).status_code == 200


async def test_the_binding_survives_the_redis_store(redis_url: str, tmp_path: Path) -> None:
    settings, credential = distributed_settings(redis_url, tmp_path)
    register("service credential", credential)
    holder = DpopClient()
    async with AsyncTestClient(create_app(Runtime(settings))) as http:
        tokens = (await sign_in(http, credential, holder.proof("POST", SESSIONS))).json()
        stolen = await refresh(http, tokens["refresh_token"], None)
        assert_problem(stolen, 400, "invalid-dpop-proof")
        renewed = await refresh(http, tokens["refresh_token"], holder.proof("POST", REFRESH))
        assert renewed.status_code == 200, renewed.text
        assert payload(renewed.json()["access_token"])["cnf"] == {"jkt": holder.jkt}


async def test_with_nonces_the_client_retries_with_the_servers_nonce(
    make_authority: MakeAuthority,
) -> None:
    secret = "nonce-secret-" + "x" * 32
    register("DPoP nonce secret", secret)
    authority = await make_authority(dpop_nonce_secret=secret)
    holder = DpopClient()
    asked = await sign_in(authority.http, authority.credential, holder.proof("POST", SESSIONS))
    assert_problem(asked, 400, "use-dpop-nonce")
    assert asked.json()["error"] == "use_dpop_nonce"
    nonce = asked.headers["DPoP-Nonce"]
    with_nonce = holder.proof("POST", SESSIONS, claims={"nonce": nonce})
    tokens = (await sign_in(authority.http, authority.credential, with_nonce)).json()
    access = tokens["access_token"]
    refused = await authority.http.get("/v1/whoami", headers=holder.headers("GET", WHOAMI, access))
    assert_problem(refused, 401, "use-dpop-nonce")
    assert 'error="use_dpop_nonce"' in refused.headers["www-authenticate"]
    headers = holder.headers("GET", WHOAMI, access, claims={"nonce": refused.headers["DPoP-Nonce"]})
    assert (await authority.http.get("/v1/whoami", headers=headers)).status_code == 200


async def test_the_oauth_token_endpoint_and_logout_take_proofs_too(authority: Authority) -> None:
    holder = DpopClient()
    tokens = await bound_session(authority, holder)
    token_url = f"{BASE}/v1/token"
    grant = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refused = await authority.http.post("/v1/token", data=grant)
    assert_problem(refused, 400, "invalid-dpop-proof")
    renewed = await authority.http.post(
        "/v1/token", data=grant, headers={"DPoP": holder.proof("POST", token_url)}
    )
    remember(renewed)
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "DPoP"
    access, logout = renewed.json()["access_token"], f"{BASE}/v1/logout"
    as_bearer = await authority.http.post(
        "/v1/logout", headers={"Authorization": f"Bearer {access}"}
    )
    assert_problem(as_bearer, 401, "invalid-token")
    done = await authority.http.post("/v1/logout", headers=holder.headers("POST", logout, access))
    assert done.status_code == 204, done.text


async def test_the_server_metadata_names_the_proof_algorithms(authority: Authority) -> None:
    metadata = (await authority.http.get("/.well-known/oauth-authorization-server")).json()
    algs = metadata["dpop_signing_alg_values_supported"]
    assert {"ES256", "EdDSA", "PS256"} <= set(algs)
    assert not {"none", "HS256", "HS384", "HS512"} & set(algs)
