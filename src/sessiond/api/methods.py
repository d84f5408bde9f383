"""HEAD on every GET route (RFC 9110 section 9.3.2), which Litestar does not serve by itself.

A HEAD request is routed as its GET and answered with the GET's status and headers, without
the body; every ``Allow`` header that lists GET (405 answers, OPTIONS) lists HEAD too.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI wrapper serving HEAD as GET without the body, in front of the app's router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = scope.copy()  # the server's own scope still says HEAD
            scope["method"] = "GET"

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [_head_allowed(h) for h in message.get("headers", ())]
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, receive, answer)


def _head_allowed(header: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    name, value = header
    if name.lower() != b"allow":
        return header
    methods = [m.strip() for m in value.split(b",")]
    if b"GET" in methods and b"HEAD" not in methods:
        methods.insert(methods.index(b"GET") + 1, b"HEAD")
    return name, b", ".join(methods)
