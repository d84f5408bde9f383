"""The verifier as pure ASGI middleware, for any ASGI app (Starlette, FastAPI, Litestar, ...).

``SessiondMiddleware(app, verifier=...)`` reads ``Authorization: Bearer <token>`` straight from
``scope["headers"]`` (no request object is built: on the hot path it costs a header scan and
one :meth:`~sessiond.verifier.engine.Verifier.verify`), then sets ``scope["user"]`` to the
token's :class:`~sessiond.tokens.claims.AccessClaims` and ``scope["auth"]`` to the token, which
is where Starlette's ``request.user``/``request.auth`` and Litestar's look. A token bound to a
client's key comes as ``Authorization: DPoP <token>`` with a ``DPoP`` proof header, checked
against the request's method and URL (RFC 9449); a bound token sent as ``Bearer`` is refused.

Refusals are RFC 9457 ``application/problem+json`` with the ``WWW-Authenticate`` challenge of
RFC 6750 (401 invalid or revoked token, 403 missing scope, 503 stale denylist or keys not loaded
yet). A WebSocket that is refused is closed before it is accepted with code 4000 + the HTTP
status (4401, 4403, 4503).

**Live connections.** A WebSocket, and an HTTP response once it streams (a body part with
``more_body``), is watched: the moment a revocation that rejects its token is applied, the
middleware closes it with :data:`~sessiond.verifier.live.CLOSE_REVOKED` (a WebSocket) or ends
the streamed body; the app's ``receive`` then returns a disconnect and its ``send`` raises
:class:`ConnectionRevoked` (an ``OSError``, as ASGI 2.4 servers do for a closed connection), which
Litestar's and Starlette's handlers and streaming responses treat as the client leaving. A
WebSocket app that has not ended ``CANCEL_AFTER`` seconds later is cancelled.

Tokens are read from the header only: browsers cannot set headers on a WebSocket, so browser
clients reach a backend through their own server (a BFF), as cookie mode assumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Collection, Sequence
from typing import Any, Final

import msgspec

from sessiond.denylist.denylist import Denial
from sessiond.errors import (
    PROBLEM_JSON,
    AuthenticationFailed,
    InsufficientScope,
    InvalidDpopProof,
    RevokedToken,
    SessiondError,
)
from sessiond.tokens.assurance import Assurance
from sessiond.tokens.claims import AccessClaims
from sessiond.tokens.dpop import DpopRequest
from sessiond.verifier.engine import Verifier
from sessiond.verifier.live import CLOSE_REVOKED, Watch, close_reason, with_reason_code

__all__ = [
    "ConnectionRevoked",
    "SessiondMiddleware",
    "bearer_token",
    "dpop_credentials",
    "dpop_proof",
    "request_url",
    "send_problem",
]

log = logging.getLogger("sessiond.verifier")

# Each ASGI framework spells these types its own way (Litestar: TypedDicts); any of them fits.
Scope = Any
Message = dict[str, Any]
Receive = Any  # Callable[[], Awaitable[Message]]
Send = Any  # Callable[[Message], Awaitable[None]]
ASGIApp = Any

#: How long a revoked WebSocket's app may take to end once told, before it is cancelled.
CANCEL_AFTER: Final = 1.0
_ASK_BEARER = "send 'Authorization: Bearer <token>'"
_HTTP_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class SessiondMiddleware:
    """Authenticate every HTTP request and WebSocket with ``verifier`` (see the module doc).

    ``exclude``: regular expressions; a path any of them matches (``re.search``) is passed
    through. ``exclude_opt_key``: a Litestar route handler whose ``opt`` has this key set is
    passed through. ``exclude_methods``: HTTP methods passed through (CORS preflights carry no
    credentials). ``required_scopes``: scopes every request's token must hold (per-route scopes
    are the framework's guards). ``assurance``: the step-up requirement of every request
    (:meth:`Verifier.assurance`); a Litestar route handler's ``opt`` keys ``acr`` and
    ``max_age`` set its own instead (401 ``insufficient_user_authentication``, RFC 9470).
    ``public_url``: where clients reach this app (``SESSIOND_PUBLIC_URL``), the base of the
    URL that DPoP proofs must name; by default the request's own scheme and ``Host``.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: Verifier,
        *,
        exclude: Sequence[str] = (),
        exclude_opt_key: str | None = "exclude_from_auth",
        exclude_methods: Collection[str] = ("OPTIONS",),
        required_scopes: Collection[str] = (),
        assurance: Assurance | None = None,
        public_url: str | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self._exclude = re.compile("|".join(f"(?:{p})" for p in exclude)) if exclude else None
        self._opt_key = exclude_opt_key
        self._methods = frozenset(exclude_methods)
        self._scopes = frozenset(required_scopes)
        self._assurance = assurance
        self._public_url = public_url
        self._route_assurance: dict[Any, Assurance] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or self._passes(scope):
            await self.app(scope, receive, send)
            return
        token, dpop = bearer_token(scope["headers"]), None
        try:
            if token is None:
                token, dpop = dpop_credentials(scope, self._public_url)
            if token is None:
                raise AuthenticationFailed(_ASK_BEARER)
            claims = await self.verifier.verify(token, dpop)
            if self._scopes and not self._scopes.issubset(claims.scopes):
                missing = " ".join(sorted(self._scopes - claims.scopes))
                raise InsufficientScope(f"the token lacks the scope {missing}", missing)
            required = self._required(scope)
            if required is not None:
                required.check(claims)
        except SessiondError as exc:
            await send_problem(exc, scope, send)
            return
        scope["user"], scope["auth"] = claims, token
        connection = _Connection(self.verifier, claims, kind == "websocket", receive, send)
        if kind == "websocket":
            await connection.run_websocket(self.app, scope)
            return
        # HTTP, inline (no coroutine of its own: this is the hot path); once revoked, however
        # the app ends is not a fault.
        try:
            await self.app(scope, connection.receive, connection.send)
        except Exception:
            if not connection.closed:
                raise
            log.debug("app ended on revocation", exc_info=True)
        finally:
            if connection.watch is not None:  # it streamed
                await connection.finish()

    def _required(self, scope: Scope) -> Assurance | None:
        """The step-up requirement of this request: its route's ``opt``, else the global one."""
        handler = scope.get("route_handler")
        opt = handler.opt if handler is not None else {}
        if "acr" not in opt and "max_age" not in opt:
            return self._assurance
        required = self._route_assurance.get(handler)
        if required is None:
            required = self.verifier.assurance(acr=opt.get("acr"), max_age=opt.get("max_age"))
            self._route_assurance[handler] = required
        return required

    def _passes(self, scope: Scope) -> bool:
        """Whether ``scope`` is passed through unauthenticated (cheapest checks first)."""
        if scope["type"] == "http" and scope["method"] in self._methods:
            return True
        if self._opt_key:
            handler = scope.get("route_handler")
            if handler is not None and handler.opt.get(self._opt_key):
                return True
        return self._exclude is not None and self._exclude.search(scope["path"]) is not None


def bearer_token(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The token of the ``Authorization: Bearer`` header, if there is one."""
    for name, value in headers:
        if name == b"authorization":
            # The scheme (case-insensitive) and its space, compared as bytes before decoding.
            if value[:7].lower() != b"bearer ":
                return None
            return value[7:].decode("latin-1").strip() or None
    return None


def dpop_credentials(
    scope: Scope, public_url: str | None = None
) -> tuple[str | None, DpopRequest | None]:
    """The token of an ``Authorization: DPoP`` header and the request its proof must match
    (:func:`dpop_proof`); ``(None, None)`` without that header. A DPoP token without exactly
    one proof is an :class:`~sessiond.errors.InvalidDpopProof`."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            if value[:5].lower() != b"dpop ":
                break
            token = value[5:].decode("latin-1").strip()
            if not token:
                break
            dpop = dpop_proof(scope, request_url(scope, public_url))
            if dpop is None:
                raise InvalidDpopProof("a DPoP token needs a proof: send the DPoP header")
            return token, dpop
    return None, None


def dpop_proof(scope: Scope, url: str) -> DpopRequest | None:
    """The proof of the request's ``DPoP`` header, to match its method and ``url``; ``None``
    without one, :class:`~sessiond.errors.InvalidDpopProof` for several (RFC 9449 section
    4.3)."""
    proofs = [value for name, value in scope["headers"] if name == b"dpop"]
    if not proofs:
        return None
    if len(proofs) > 1:
        raise InvalidDpopProof("more than one DPoP header")
    method = scope.get("method", "GET")  # a WebSocket opens with a GET
    return DpopRequest(proofs[0].decode("latin-1").strip(), method, url)


def request_url(scope: Scope, public_url: str | None = None) -> str:
    """The URL the client sent this request to, without its query: ``public_url`` (where
    clients reach this server, behind its proxies) and the path as sent; without it, the
    request's own scheme and ``Host``."""
    raw = scope.get("raw_path")
    path: str = (raw.decode("latin-1") if raw else scope["path"]).partition("?")[0]
    if public_url is not None:
        return public_url.rstrip("/") + path
    scheme = _HTTP_SCHEMES.get(scope.get("scheme", "http"), "http")
    host = next((v for n, v in scope["headers"] if n == b"host"), b"").decode("latin-1")
    if not host and scope.get("server"):
        host = "{}:{}".format(*scope["server"])
    return f"{scheme}://{host}{path}"


async def send_problem(
    exc: SessiondError, scope: Scope, send: Send, *, close: bool = False
) -> None:
    """Answer with ``exc`` as problem details, or close a WebSocket with 4000 + its status
    (the reason: its title, and a revocation's reason code); ``close`` ends the HTTP connection
    too (its request body was not read)."""
    if scope["type"] == "websocket":
        code = exc.reason_code if isinstance(exc, RevokedToken) else None
        reason = with_reason_code(exc.title, code)
        await send({"type": "websocket.close", "code": 4000 + exc.status, "reason": reason})
        return
    body = msgspec.json.encode(exc.problem(scope.get("path", "")))
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in exc.headers().items()),
        *([(b"connection", b"close")] if close else []),
    ]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class ConnectionRevoked(ConnectionError):
    """Raised by ``send`` once the connection was closed for a revocation (ASGI 2.4: sending
    on a closed connection raises an ``OSError``)."""


class _Connection:
    """One authenticated connection, watched for revocation once it is live: a WebSocket at
    once, an HTTP response from its first streamed body part.

    Until then ``receive`` and ``send`` hand the server's own awaitables through, and nothing
    of the watching (lock, future, watch) is made: a plain request costs no more.
    """

    __slots__ = (
        "_claims",
        "_closing",
        "_receive",
        "_responding",
        "_revoked",
        "_send",
        "_sending",
        "_verifier",
        "_websocket",
        "closed",
        "watch",
    )

    def __init__(
        self,
        verifier: Verifier,
        claims: AccessClaims,
        websocket: bool,
        receive: Receive,
        send: Send,
    ) -> None:
        self._verifier = verifier
        self._claims = claims
        self._websocket = websocket
        self._receive = receive
        self._send = send
        self.watch: Watch | None = None  # set while live
        self.closed = False  # closed for a revocation
        self._revoked: asyncio.Future[Denial] | None = None
        self._responding = False  # http.response.start sent: a receive now waits for the end
        self._sending: asyncio.Lock | None = None  # once live, the close may race the app's sends
        self._closing: asyncio.Task[None] | None = None

    async def run_websocket(self, app: ASGIApp, scope: Scope) -> None:
        """Run a WebSocket ``app`` on this connection, live from the start; once revoked,
        however it ends is not a fault."""
        revoked = self._start_watching()
        task = asyncio.ensure_future(app(scope, self.receive, self.send))
        try:
            await asyncio.wait({task, revoked}, return_when=asyncio.FIRST_COMPLETED)
            if not revoked.done():
                await task
                return
            if not (await asyncio.wait({task}, timeout=CANCEL_AFTER))[0]:
                task.cancel()  # it ignored the disconnect
            await _ended(task)
        finally:
            task.cancel()
            await self.finish()

    async def finish(self) -> None:
        """Stop watching, and wait for our close if there is one: the server must send our
        close code (or end of the body), not its own."""
        if self.watch is not None:
            self._verifier.live.unwatch(self.watch)
            self.watch = None
        if self._closing is not None:
            await self._closing

    def receive(self) -> Awaitable[Message]:
        if self._websocket or self._responding:
            return self._receive_live()
        received: Awaitable[Message] = self._receive()
        return received

    def send(self, message: Message) -> Awaitable[None]:
        if self.watch is None:  # not live (yet): nothing else sends, no lock needed
            kind = message["type"]
            if kind == "http.response.start":
                self._responding = True
            if kind != "http.response.body" or not message.get("more_body"):
                sent: Awaitable[None] = self._send(message)
                return sent
            self._start_watching()  # the body streams: from now on it is live
        return self._send_live(message)

    async def _receive_live(self) -> Message:
        revoked = self._future()
        if not revoked.done():
            incoming = asyncio.ensure_future(self._receive())
            await asyncio.wait({incoming, revoked}, return_when=asyncio.FIRST_COMPLETED)
            if incoming.done():
                received: Message = incoming.result()
                return received
            incoming.cancel()
        if self._websocket:
            return {"type": "websocket.disconnect", "code": CLOSE_REVOKED}
        return {"type": "http.disconnect"}

    async def _send_live(self, message: Message) -> None:
        async with self._lock():
            if self.closed:
                raise ConnectionRevoked("the connection was closed: its token was revoked")
            await self._send(message)

    def _future(self) -> asyncio.Future[Denial]:
        if self._revoked is None:
            self._revoked = asyncio.get_running_loop().create_future()
        return self._revoked

    def _lock(self) -> asyncio.Lock:
        if self._sending is None:
            self._sending = asyncio.Lock()
        return self._sending

    def _start_watching(self) -> asyncio.Future[Denial]:
        revoked = self._future()
        self.watch = self._verifier.live.watch(self._claims, self._on_revoked)
        return revoked

    def _on_revoked(self, denial: Denial) -> None:
        revoked = self._future()
        if not revoked.done():
            revoked.set_result(denial)
        self._closing = asyncio.get_running_loop().create_task(self._close(denial))

    async def _close(self, denial: Denial) -> None:
        async with self._lock():
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(Exception):  # the peer may be gone already
                if self._websocket:
                    reason = close_reason(denial)
                    await self._send(
                        {"type": "websocket.close", "code": CLOSE_REVOKED, "reason": reason}
                    )
                else:
                    await self._send(
                        {"type": "http.response.body", "body": b"", "more_body": False}
                    )


async def _ended(task: asyncio.Future[None]) -> None:
    """Wait for an app told that its connection was revoked: however it ends (it may raise its
    framework's disconnect exception, or be cancelled), that was the revocation, not a fault."""
    try:
        await task
    except (Exception, asyncio.CancelledError) as exc:
        log.debug("app ended on revocation with %r", exc)
