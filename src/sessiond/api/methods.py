"""HTTP methods as RFC 9110 has them, where Litestar 2 falls short.

- HEAD on every GET route (section 9.3.2): routed as its GET and answered with the GET's
  status and headers, without the body.
- ``Allow`` (section 15.5.6) lists HEAD beside GET, in 405 answers and OPTIONS answers alike;
  an OPTIONS answer lists every method of the path (Litestar 2's automatic OPTIONS handler
  knows only the methods registered before it, litestar-org/litestar#4169).
"""

from __future__ import annotations

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send


class Methods:
    """ASGI wrapper in front of ``app``'s router: HEAD as GET without the body, and true
    ``Allow`` headers."""

    def __init__(self, asgi: ASGIApp, app: Litestar) -> None:
        self.asgi = asgi
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.asgi(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = scope.copy()  # the server's own scope still says HEAD
            scope["method"] = "GET"
        options = scope if scope["method"] == "OPTIONS" else None

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, self._allow(value, options))
                    if name.lower() == b"allow"
                    else (name, value)
                    for name, value in message.get("headers", ())
                ]
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.asgi(scope, receive, answer)

    def _allow(self, value: bytes, options: Scope | None) -> bytes:
        """``value`` with HEAD beside GET; for an OPTIONS answer (its ``scope``), with every
        method of the path."""
        methods = {m.strip().decode() for m in value.split(b",") if m.strip()}
        handler = options.get("route_handler") if options is not None else None
        if handler is not None:
            for route in self.app.routes:
                if isinstance(route, HTTPRoute) and route.path in handler.paths:
                    methods |= route.methods
        if "GET" in methods:
            methods.add("HEAD")
        return ", ".join(sorted(methods)).encode()
