"""DPoP-bound tokens (RFC 9449) through the verifier: the engine's ``verify``, the ASGI
middleware on Starlette and the Litestar plugin. Proofs come from joserfc; every hostile one
is refused, bearer tokens go through as before."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar, get, post
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessiond.denylist.denylist import Denylist
from sessiond.errors import DpopTokenMisused, InvalidDpopProof
from sessiond.tokens.access import AccessTokenDecoder, sign_access_token
from sessiond.tokens.dpop import ProofChecker
from sessiond.tokens.dpop_nonces import DpopNonces
from sessiond.tokens.keys import Keyset
from sessiond.verifier import DpopRequest, SessiondMiddleware
from sessiond.verifier.engine import Verifier
from sessiond.verifier.keys import LocalKeys
from sessiond.verifier.litestar import AuthRequest, SessiondPlugin
from support.dpop import DpopClient, handmade_proof, hmac_proof, private_jwk_proof

KEYSET = Keyset.generate("ES256")
BASE = "http://app"
BALANCE = f"{BASE}/balance"


def make_verifier() -> Verifier:
    keys = LocalKeys(KEYSET)
    decoder = AccessTokenDecoder(
        keys.current, issuer="i", audience="a", leeway=0, max_bytes=4096, retain=60
    )
    proofs = ProofChecker(max_age=30, leeway=2, max_bytes=4096)
    return Verifier(decoder, keys, Denylist(), staleness=lambda now: 0.0, proofs=proofs)


def token(jkt: str | None = None) -> str:
    signed, _ = sign_access_token(
        KEYSET.active,
        issuer="i",
        audience="a",
        sub="alice",
        sid="s1",
        ttl=60,
        now=time.time(),
        jkt=jkt,
    )
    return signed


def litestar_app(verifier: Verifier) -> Any:
    @get("/balance")
    async def balance(request: AuthRequest) -> dict[str, Any]:
        return {"sub": request.user.sub, "token_type": request.user.token_type}

    @post("/balance", status_code=200)
    async def deposit(request: AuthRequest) -> dict[str, Any]:
        return {"sub": request.user.sub, "token_type": request.user.token_type}

    plugin = SessiondPlugin(verifier=verifier)
    return Litestar([balance, deposit], plugins=[plugin], logging_config=None)


def starlette_app(verifier: Verifier) -> Any:
    async def balance(request: StarletteRequest) -> JSONResponse:
        return JSONResponse({"sub": request.user.sub, "token_type": request.user.token_type})

    routes = [Route("/balance", balance, methods=["GET", "POST"])]
    return SessiondMiddleware(Starlette(routes=routes), verifier=verifier)


APPS: dict[str, Callable[[Verifier], Any]] = {
    "litestar-plugin": litestar_app,
    "starlette-middleware": starlette_app,
}


@pytest.fixture(params=sorted(APPS))
def client(request: pytest.FixtureRequest) -> httpx.AsyncClient:
    app = APPS[request.param](make_verifier())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def test_a_bound_token_with_its_proof_is_accepted(client: httpx.AsyncClient) -> None:
    holder = DpopClient()
    access = token(holder.jkt)
    async with client:
        response = await client.get("/balance", headers=holder.headers("GET", BALANCE, access))
        posted = await client.post("/balance", headers=holder.headers("POST", BALANCE, access))
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": "alice", "token_type": "DPoP"}
    assert posted.status_code == 200, posted.text


async def test_a_bearer_token_goes_through_as_before(client: httpx.AsyncClient) -> None:
    async with client:
        response = await client.get("/balance", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "token_type": "Bearer"}


def _replay(client: DpopClient, access: str) -> dict[str, str]:
    headers = client.headers("GET", BALANCE, access)
    headers["X-Replay"] = "1"  # the test sends these twice
    return headers


#: Requests that must all be refused: (headers for a holder and its bound token, error slug).
HOSTILE: dict[str, tuple[Callable[[DpopClient, str], dict[str, str]], str]] = {
    "wrong method": (lambda c, t: c.headers("POST", BALANCE, t), "invalid-dpop-proof"),
    "wrong URL": (lambda c, t: c.headers("GET", f"{BASE}/transfer", t), "invalid-dpop-proof"),
    "old iat": (
        lambda c, t: c.headers("GET", BALANCE, t, iat=time.time() - 60),
        "invalid-dpop-proof",
    ),
    "future iat": (
        lambda c, t: c.headers("GET", BALANCE, t, iat=time.time() + 30),
        "invalid-dpop-proof",
    ),
    "replayed jti": (_replay, "invalid-dpop-proof"),
    "wrong ath": (
        lambda c, t: {**c.headers("GET", BALANCE, t + "x"), "Authorization": f"DPoP {t}"},
        "invalid-dpop-proof",
    ),
    "another key": (
        lambda _, t: DpopClient().headers("GET", BALANCE, t),
        "invalid-dpop-proof",
    ),
    "alg none": (
        lambda c, t: {
            "Authorization": f"DPoP {t}",
            "DPoP": handmade_proof(
                {"typ": "dpop+jwt", "alg": "none", "jwk": c.jwk}, "GET", BALANCE
            ),
        },
        "invalid-dpop-proof",
    ),
    "HS256": (
        lambda _, t: {"Authorization": f"DPoP {t}", "DPoP": hmac_proof("GET", BALANCE)},
        "invalid-dpop-proof",
    ),
    "private key in the jwk": (
        lambda _, t: {"Authorization": f"DPoP {t}", "DPoP": private_jwk_proof("GET", BALANCE)},
        "invalid-dpop-proof",
    ),
    "two proofs": (
        lambda c, t: {"Authorization": f"DPoP {t}", "DPoP": c.proof("GET", BALANCE, t) + ", x"},
        "invalid-dpop-proof",
    ),
    "missing proof": (lambda _, t: {"Authorization": f"DPoP {t}"}, "invalid-dpop-proof"),
    "bound token as Bearer": (lambda _, t: {"Authorization": f"Bearer {t}"}, "invalid-token"),
    "bound token as Bearer with a proof": (
        lambda c, t: {**c.headers("GET", BALANCE, t), "Authorization": f"Bearer {t}"},
        "invalid-token",
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
async def test_every_hostile_request_is_refused_with_a_dpop_challenge(
    client: httpx.AsyncClient, case: str
) -> None:
    holder = DpopClient()
    access = token(holder.jkt)
    make, slug = HOSTILE[case]
    headers = make(holder, access)
    async with client:
        if headers.pop("X-Replay", None):
            assert (await client.get("/balance", headers=headers)).status_code == 200
        response = await client.get("/balance", headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["type"] == f"urn:sessiond:problem:{slug}"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("DPoP "), challenge
    assert 'algs="ES256' in challenge


async def test_an_unbound_token_sent_as_dpop_is_refused(client: httpx.AsyncClient) -> None:
    holder, access = DpopClient(), token()
    async with client:
        response = await client.get("/balance", headers=holder.headers("GET", BALANCE, access))
    assert response.status_code == 401
    assert response.json()["type"] == "urn:sessiond:problem:invalid-token"


async def test_the_public_url_is_what_proofs_name_behind_a_proxy() -> None:
    verifier, holder = make_verifier(), DpopClient()
    access = token(holder.jkt)
    public = "https://bank.example.com/api"
    app = SessiondMiddleware(starlette_app(verifier).app, verifier=verifier, public_url=public)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        seen = await http.get("/balance", headers=holder.headers("GET", BALANCE, access))
        named = await http.get(
            "/balance", headers=holder.headers("GET", f"{public}/balance", access)
        )
    assert seen.status_code == 401
    assert named.status_code == 200, named.text


async def test_the_engine_checks_the_sender_and_spends_the_jti() -> None:
    verifier, holder = make_verifier(), DpopClient()
    access = token(holder.jkt)
    proof = holder.proof("GET", BALANCE, access)
    claims = await verifier.verify(access, DpopRequest(proof, "GET", BALANCE))
    assert claims.cnf is not None
    assert claims.cnf.jkt == holder.jkt
    with pytest.raises(InvalidDpopProof, match="replayed"):
        await verifier.verify(access, DpopRequest(proof, "GET", BALANCE))
    with pytest.raises(DpopTokenMisused):
        await verifier.verify(access)
    assert (await verifier.inspect(access)).cnf == claims.cnf  # introspection needs no proof


@pytest.mark.parametrize("build", sorted(APPS))
async def test_with_nonces_a_backend_asks_for_its_nonce(build: str) -> None:
    verifier, holder = make_verifier(), DpopClient()
    verifier.proofs = ProofChecker(max_age=30, leeway=2, nonces=DpopNonces(b"k" * 32, window=30))
    access = token(holder.jkt)
    app = APPS[build](verifier)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        asked = await http.get("/balance", headers=holder.headers("GET", BALANCE, access))
        nonce = asked.headers["DPoP-Nonce"]
        retried = holder.headers("GET", BALANCE, access, claims={"nonce": nonce})
        answered = await http.get("/balance", headers=retried)
    assert asked.status_code == 401
    assert asked.json()["type"] == "urn:sessiond:problem:use-dpop-nonce"
    assert asked.headers["www-authenticate"].startswith('DPoP realm="sessiond", error="use_dpop')
    assert answered.status_code == 200, answered.text
