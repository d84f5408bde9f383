"""The verifier's framework adapters behave alike: the Litestar plugin, and the ASGI middleware
on Starlette and on FastAPI. Each app is driven in-process through its ASGI interface."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from litestar import Litestar, get, route, websocket
from litestar.connection import WebSocket
from litestar.di import NamedDependency
from litestar.response import Stream
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from sessiond.denylist.denylist import Denylist
from sessiond.errors import DenylistStale
from sessiond.events import SessionRevoked
from sessiond.tokens.access import AccessTokenDecoder, sign_access_token
from sessiond.tokens.claims import AccessClaims
from sessiond.tokens.keys import Keyset
from sessiond.verifier import SessiondMiddleware
from sessiond.verifier.asgi import bearer_token
from sessiond.verifier.engine import Verifier
from sessiond.verifier.keys import LocalKeys
from sessiond.verifier.litestar import AuthRequest, SessiondPlugin, requires_scope
from sessiond.verifier.live import CLOSE_REVOKED

KEYSET = Keyset.generate("ES256")
TICK = 0.02
GIVE_UP = 5.0  # a handler ends by itself after this, so a broken close fails, never hangs


def make_verifier(stale: bool = False) -> Verifier:
    keys = LocalKeys(KEYSET)
    decoder = AccessTokenDecoder(
        keys.current, issuer="i", audience="a", leeway=0, max_bytes=4096, retain=60
    )
    return Verifier(decoder, keys, Denylist(), staleness=lambda now: 5.0 if stale else 0.0)


def token(sid: str = "s1", scope: str | None = "accounts:read") -> str:
    signed, _ = sign_access_token(
        KEYSET.active,
        issuer="i",
        audience="a",
        sub="alice",
        sid=sid,
        scope=scope,
        ttl=60,
        now=time.time(),
    )
    return signed


async def ticks() -> AsyncIterator[bytes]:
    deadline = time.monotonic() + GIVE_UP
    while time.monotonic() < deadline:
        yield b"tick\n"
        await asyncio.sleep(TICK)


def litestar_app(verifier: Verifier) -> Any:
    @get("/balance", guards=[requires_scope("accounts:read")])
    async def balance(
        request: AuthRequest, claims: NamedDependency[AccessClaims]
    ) -> dict[str, Any]:
        return {"sub": request.user.sub, "same": claims is request.user}

    @get("/transfer", guards=[requires_scope("accounts:write")])
    async def transfer() -> dict[str, Any]:
        return {}

    @get("/public", opt={"exclude_from_auth": True})
    async def public() -> dict[str, Any]:
        return {"public": True}

    @get("/stream")
    async def stream() -> Stream:
        return Stream(ticks())

    @websocket("/ws")
    async def feed(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_text("hello " + socket.user.sub)
        async with asyncio.timeout(GIVE_UP):
            await socket.receive_text()

    return Litestar(
        [balance, transfer, public, stream, feed],
        plugins=[SessiondPlugin(verifier=verifier, readiness_path="/readyz")],
    )


def starlette_routes() -> tuple[list[Route], list[WebSocketRoute]]:
    async def balance(request: StarletteRequest) -> JSONResponse:
        return JSONResponse({"sub": request.user.sub, "same": True})

    async def public(request: StarletteRequest) -> JSONResponse:
        return JSONResponse({"public": True})

    async def stream(request: StarletteRequest) -> StreamingResponse:
        return StreamingResponse(ticks())

    async def feed(socket: StarletteWebSocket) -> None:
        await socket.accept()
        await socket.send_text("hello " + socket.user.sub)
        async with asyncio.timeout(GIVE_UP):
            await socket.receive_text()

    routes = [Route("/balance", balance), Route("/public", public), Route("/stream", stream)]
    return routes, [WebSocketRoute("/ws", feed)]


def starlette_app(verifier: Verifier) -> Any:
    routes, sockets = starlette_routes()
    return SessiondMiddleware(
        Starlette(routes=[*routes, *sockets]),
        verifier=verifier,
        exclude=["^/public$"],
        required_scopes=["accounts:read"],
    )


def fastapi_app(verifier: Verifier) -> Any:
    app = FastAPI()

    @app.get("/balance")
    async def balance(request: FastAPIRequest) -> dict[str, Any]:
        return {"sub": request.user.sub, "same": True}

    @app.get("/public")
    async def public() -> dict[str, Any]:
        return {"public": True}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(ticks())

    @app.websocket("/ws")
    async def feed(socket: StarletteWebSocket) -> None:
        await socket.accept()
        await socket.send_text("hello " + socket.user.sub)
        async with asyncio.timeout(GIVE_UP):
            await socket.receive_text()

    app.add_middleware(
        SessiondMiddleware,
        verifier=verifier,
        exclude=["^/public$"],
        required_scopes=["accounts:read"],
    )
    return app


APPS: dict[str, Callable[[Verifier], Any]] = {
    "litestar-plugin": litestar_app,
    "starlette-middleware": starlette_app,
    "fastapi-middleware": fastapi_app,
}


@pytest.fixture(params=sorted(APPS))
def build(request: pytest.FixtureRequest) -> Callable[[Verifier], Any]:
    return APPS[request.param]


def http(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


def revoke(verifier: Verifier, sid: str = "s1") -> None:
    verifier.denylist.apply(SessionRevoked(id="r" * 32, at=time.time(), sid=sid, expires_at=2e9))


async def test_a_valid_token_reaches_the_handler_as_typed_claims(build: Any) -> None:
    async with http(build(make_verifier())) as client:
        response = await client.get("/balance", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "same": True}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Authorization: Bearer"),
        ({"Authorization": "Basic YTpi"}, "Authorization: Bearer"),
        ({"Authorization": "Bearer not.a.token"}, "malformed"),
    ],
)
async def test_no_or_a_bad_token_is_a_401_problem_with_a_challenge(
    build: Any, headers: dict[str, str], detail: str
) -> None:
    async with http(build(make_verifier())) as client:
        response = await client.get("/balance", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith('Bearer realm="sessiond"')
    assert detail in response.json()["detail"]


async def test_a_revoked_token_is_refused_at_once(build: Any) -> None:
    verifier = make_verifier()
    signed = token()
    async with http(build(verifier)) as client:
        headers = {"Authorization": f"Bearer {signed}"}
        assert (await client.get("/balance", headers=headers)).status_code == 200
        revoke(verifier)
        response = await client.get("/balance", headers=headers)
    assert response.status_code == 401
    assert response.json()["type"] == "urn:sessiond:problem:token-revoked"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_missing_scope_is_a_403_with_insufficient_scope(build: Any) -> None:
    path = "/transfer" if build is litestar_app else "/balance"
    scope = "accounts:read" if build is litestar_app else "other"
    async with http(build(make_verifier())) as client:
        response = await client.get(path, headers={"Authorization": f"Bearer {token(scope=scope)}"})
    assert response.status_code == 403
    assert response.json()["type"] == "urn:sessiond:problem:insufficient-scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_an_excluded_path_needs_no_token(build: Any) -> None:
    async with http(build(make_verifier())) as client:
        response = await client.get("/public")
    assert response.json() == {"public": True}


async def test_a_stale_denylist_fails_closed_with_503(build: Any) -> None:
    async with http(build(make_verifier(stale=True))) as client:
        response = await client.get("/balance", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 503
    assert response.json()["type"] == "urn:sessiond:problem:denylist-stale"


def plugin_app(**options: Any) -> Any:
    @route("/hello", http_method=["GET", "POST"])
    async def hello() -> str:
        return "hi"

    return Litestar([hello], plugins=[SessiondPlugin(verifier=make_verifier(), **options)])


async def test_the_plugin_requires_its_required_scopes() -> None:
    async with http(plugin_app(required_scopes=["accounts:write"])) as client:
        refused = await client.get("/hello", headers={"Authorization": f"Bearer {token()}"})
        both = token(scope="accounts:read accounts:write")
        allowed = await client.get("/hello", headers={"Authorization": f"Bearer {both}"})
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:sessiond:problem:insufficient-scope"
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert allowed.text == "hi"


async def test_the_plugin_lets_its_exclude_methods_through_without_a_token() -> None:
    async with http(plugin_app(exclude_methods=["GET"])) as client:
        assert (await client.get("/hello")).text == "hi"
        assert (await client.post("/hello")).status_code == 401


async def test_the_plugin_serves_readiness() -> None:
    async with http(litestar_app(make_verifier())) as client:
        assert (await client.get("/readyz")).json() == {"status": "ready"}
    async with http(litestar_app(make_verifier(stale=True))) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


class Peer:
    """Drives one ASGI connection by hand: what the app sent, and what it may receive."""

    def __init__(self, app: Any, scope: dict[str, Any]) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.ensure_future(app(scope, self.inbox.get, self.sent.put))

    async def next_sent(self, within: float = 2.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            return await self.sent.get()


def asgi_scope(kind: str, path: str, signed: str) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws" if kind == "websocket" else "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"app"), (b"authorization", f"Bearer {signed}".encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("app", 80),
        "state": {},
    }
    if kind == "http":
        scope["method"] = "GET"
    return scope


async def test_a_websocket_is_closed_the_moment_its_session_is_revoked(build: Any) -> None:
    verifier = make_verifier()
    peer = Peer(build(verifier), asgi_scope("websocket", "/ws", token()))
    await peer.inbox.put({"type": "websocket.connect"})
    assert (await peer.next_sent())["type"] == "websocket.accept"
    assert (await peer.next_sent())["text"] == "hello alice"
    assert len(verifier.live) == 1
    started = time.monotonic()
    revoke(verifier)
    closed = await peer.next_sent()
    assert closed["type"] == "websocket.close"
    assert closed["code"] == CLOSE_REVOKED
    assert "session" in closed["reason"]
    await asyncio.wait_for(peer.task, 2.0)
    assert time.monotonic() - started < 1.0
    assert len(verifier.live) == 0


async def test_a_websocket_of_another_session_stays_open(build: Any) -> None:
    verifier = make_verifier()
    peer = Peer(build(verifier), asgi_scope("websocket", "/ws", token(sid="s2")))
    await peer.inbox.put({"type": "websocket.connect"})
    assert (await peer.next_sent())["type"] == "websocket.accept"
    await peer.next_sent()
    revoke(verifier, sid="s1")
    with pytest.raises(TimeoutError):
        await peer.next_sent(within=0.3)
    await peer.inbox.put({"type": "websocket.disconnect", "code": 1000})
    done, _ = await asyncio.wait({peer.task}, timeout=2.0)
    assert done  # (FastAPI's handler raises WebSocketDisconnect here, as without sessiond)
    assert len(verifier.live) == 0


async def test_a_websocket_with_a_revoked_token_is_never_accepted(build: Any) -> None:
    verifier = make_verifier()
    revoke(verifier)
    peer = Peer(build(verifier), asgi_scope("websocket", "/ws", token()))
    await peer.inbox.put({"type": "websocket.connect"})
    closed = await peer.next_sent()
    assert closed == {"type": "websocket.close", "code": 4401, "reason": "Access token revoked"}


async def test_a_streamed_response_ends_the_moment_its_session_is_revoked(build: Any) -> None:
    verifier = make_verifier()
    peer = Peer(build(verifier), asgi_scope("http", "/stream", token()))
    await peer.inbox.put({"type": "http.request", "body": b"", "more_body": False})
    assert (await peer.next_sent())["type"] == "http.response.start"
    assert (await peer.next_sent())["body"] == b"tick\n"
    revoke(verifier)
    bodies = []
    while True:
        message = await peer.next_sent(within=1.0)
        bodies.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    assert len(bodies) <= 2  # at most one tick was already on its way
    await asyncio.wait_for(peer.task, 2.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"Bearer abc", "abc"),
        (b"bearer abc", "abc"),
        (b"BeArEr   abc \t", "abc"),
        (b"Bearer \xa0abc\xa0", "abc"),  # whitespace as str.strip sees it (latin-1)
        (b"Bearer a b", "a b"),
        (b"Bearer", None),
        (b"Bearer ", None),
        (b"Bearer   ", None),
        (b"Bearerabc", None),
        (b"Bearer\tabc", None),
        (b" Bearer abc", None),
        (b"Basic YTpi", None),
        (b"Bear abc", None),
    ],
)
def test_the_bearer_token_is_read_from_the_first_authorization_header(
    value: bytes, expected: str | None
) -> None:
    headers = [(b"host", b"app"), (b"authorization", value), (b"authorization", b"Bearer other")]
    assert bearer_token(headers) == expected
    assert bearer_token([(b"host", b"app")]) is None


async def test_a_plain_response_is_never_watched_and_options_pass_through() -> None:
    verifier = make_verifier()
    watched: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        watched.append(len(verifier.live))
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})

    middleware = SessiondMiddleware(app, verifier=verifier)
    async with http(middleware) as client:
        response = await client.get("/x", headers={"Authorization": f"Bearer {token()}"})
        assert response.text == "ok"
        assert (await client.options("/x")).text == "ok"  # no token needed
        assert (await client.get("/x")).status_code == 401
    assert watched == [0, 0]
    assert len(verifier.live) == 0


async def test_a_stale_denylist_makes_the_verifier_unready() -> None:
    with pytest.raises(DenylistStale):
        make_verifier(stale=True).check_ready()


def revoke_forced(verifier: Verifier) -> None:
    verifier.denylist.apply(
        SessionRevoked(
            id="f" * 32,
            at=time.time(),
            sid="s1",
            expires_at=2e9,
            reason_code="forced",
            reason="account locked",
        )
    )


async def test_a_revocations_reason_reaches_the_401_and_the_websocket_close(build: Any) -> None:
    verifier = make_verifier()
    peer = Peer(build(verifier), asgi_scope("websocket", "/ws", token()))
    await peer.inbox.put({"type": "websocket.connect"})
    assert (await peer.next_sent())["type"] == "websocket.accept"
    await peer.next_sent()
    revoke_forced(verifier)
    closed = await peer.next_sent()
    assert closed["reason"] == "token revoked (session); reason_code=forced"
    await asyncio.wait_for(peer.task, 2.0)

    async with http(build(verifier)) as client:
        response = await client.get("/balance", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 401
    problem = response.json()
    assert (problem["reason_code"], problem["reason"]) == ("forced", "account locked")
    challenge = 'error="invalid_token", error_description="token revoked: forced"'
    assert response.headers["www-authenticate"] == f'Bearer realm="sessiond", {challenge}'
    again = Peer(build(verifier), asgi_scope("websocket", "/ws", token()))
    await again.inbox.put({"type": "websocket.connect"})
    refused = await again.next_sent()
    assert refused["reason"] == "Access token revoked; reason_code=forced"
