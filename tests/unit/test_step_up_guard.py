"""The verifier's step-up guard: a minimum ``acr`` (ranked by the settings' levels) and a maximum
``auth_time`` age, refused with RFC 9470's ``insufficient_user_authentication`` challenge in plain
``verify``, the ASGI middleware and the Litestar plugin."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessiond.errors import ConfigError, InsufficientUserAuthentication
from sessiond.settings import acr_order
from sessiond.tokens.assurance import AcrLevels
from sessiond.verifier import SessiondMiddleware, VerifierSettings
from sessiond.verifier.engine import Verifier
from sessiond.verifier.litestar import SessiondPlugin
from support.verifiers import local_verifier, signed_token

LEVELS = AcrLevels(("aal1", "aal2", "aal3"))


def make_verifier() -> Verifier:
    return local_verifier(acr_levels=LEVELS)


def token(acr: str | None = "aal1", age: float = 0.0) -> str:
    now = time.time()
    return signed_token(now=now, acr=acr, amr=("pwd",), auth_time=now - age)


def challenge(header: str) -> dict[str, str]:
    """The auth-params of a ``Bearer`` challenge (RFC 9110 section 11.2)."""
    assert header.startswith("Bearer ")
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', header[7:])}


async def test_verify_then_check_refuses_a_weaker_acr_with_the_levels_to_reach() -> None:
    verifier = make_verifier()
    claims = await verifier.verify(token("aal1"))
    with pytest.raises(InsufficientUserAuthentication) as refused:
        verifier.assurance(acr="aal2").check(claims)
    params = challenge(refused.value.headers()["WWW-Authenticate"])
    assert params["error"] == "insufficient_user_authentication"
    assert params["acr_values"] == "aal2 aal3"
    assert "max_age" not in params
    assert refused.value.status == 401
    assert refused.value.type == "urn:sessiond:problem:insufficient-user-authentication"
    verifier.assurance(acr="aal2").check(await verifier.verify(token("aal3")))  # ranks above


async def test_an_old_authentication_is_refused_with_max_age() -> None:
    verifier = make_verifier()
    required = verifier.assurance(acr="aal2", max_age=300)
    required.check(await verifier.verify(token("aal2", age=100)))
    with pytest.raises(InsufficientUserAuthentication) as refused:
        required.check(await verifier.verify(token("aal2", age=400)))
    params = challenge(refused.value.headers()["WWW-Authenticate"])
    assert (params["max_age"], params["acr_values"]) == ("300", "aal2 aal3")
    with pytest.raises(InsufficientUserAuthentication):
        required.check(await verifier.verify(token(None)))  # no acr at all


def test_without_levels_only_the_very_value_satisfies() -> None:
    assert AcrLevels().satisfies("gold", "gold")
    assert not AcrLevels().satisfies("platinum", "gold")
    assert not LEVELS.satisfies("aal9", "aal1")  # unknown values rank nowhere


def test_a_requirement_naming_an_unknown_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        make_verifier().assurance(acr="gold")
    with pytest.raises(ConfigError):
        make_verifier().assurance()


def test_the_levels_come_from_the_settings() -> None:
    settings = VerifierSettings.load(
        {
            "SESSIOND_JWKS_URL": "http://authority/.well-known/jwks.json",
            "SESSIOND_NATS_URL": "nats://127.0.0.1:4222",
            "SESSIOND_ACR_LEVELS": "aal1,aal2,aal3",
        }
    )
    assert Verifier.from_settings(settings).acr_levels.levels == acr_order(settings.acr_levels)


def litestar_app() -> Any:
    @get("/balance")
    async def balance() -> dict[str, bool]:
        return {"ok": True}

    @get("/transfer", opt={"acr": "aal2", "max_age": 300})
    async def transfer() -> dict[str, bool]:
        return {"ok": True}

    return Litestar([balance, transfer], plugins=[SessiondPlugin(verifier=make_verifier())])


def starlette_app() -> Any:
    async def transfer(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    verifier = make_verifier()
    app = Starlette(routes=[Route("/transfer", transfer)])
    app.add_middleware(
        SessiondMiddleware,
        verifier=verifier,
        assurance=verifier.assurance(acr="aal2", max_age=300),
    )
    return app


@pytest.mark.parametrize("build", [litestar_app, starlette_app], ids=["litestar", "starlette"])
async def test_the_adapters_answer_the_rfc_9470_challenge(build: Any) -> None:
    transport = httpx.ASGITransport(app=build())
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:

        async def call(signed: str) -> httpx.Response:
            return await client.get("/transfer", headers={"Authorization": f"Bearer {signed}"})

        weak, old, fresh = (
            await call(token("aal1")),
            await call(token("aal2", 600)),
            await call(token("aal2", 10)),
        )
        if build is litestar_app:  # a route without the opt needs no step-up
            plain = await client.get("/balance", headers={"Authorization": f"Bearer {token()}"})
            assert plain.status_code == 200
    assert fresh.status_code == 200
    for refused in (weak, old):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert body["type"] == "urn:sessiond:problem:insufficient-user-authentication"
        assert body["error"] == "insufficient_user_authentication"
        params = challenge(refused.headers["www-authenticate"])
        assert params["error"] == "insufficient_user_authentication"
        assert (params["acr_values"], params["max_age"]) == ("aal2 aal3", "300")
