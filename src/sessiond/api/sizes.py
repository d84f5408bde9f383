"""Request size limits checked before any parsing: headers, JSON nesting depth, custom claims.

:class:`RequestLimits` is a pure-ASGI wrapper put in front of everything else the app does
(routing included), so an oversized header block is answered ``431`` before Litestar looks at
it. It also watches the request body as the app reads it and stops a JSON document nested
deeper than ``max_json_depth`` (msgspec has no depth limit) with ``400 json-too-deep`` before the
decoder sees it. The body size itself is Litestar's ``request_max_body_size`` (``413``).

The limits of the running app are also published in a context variable for the duration of a
request, so validators that run inside msgspec (``CreateSession.__post_init__``) can read the
configured number of custom claims without any access to the settings.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from sessiond import errors
from sessiond.settings import Settings
from sessiond.verifier.asgi import send_problem

_SIGNIFICANT = re.compile(rb'[\\"\[\]{}]')
_BACKSLASH, _QUOTE, _OPEN_ARRAY, _OPEN_OBJECT = 0x5C, 0x22, 0x5B, 0x7B
#: Bodies that are never decoded as JSON (the token endpoints also accept form encoding).
_FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")


@dataclass(frozen=True)
class Limits:
    """The request limits of one app, from its settings."""

    header_bytes: int
    header_field_bytes: int
    json_depth: int
    custom_claims: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            header_bytes=settings.max_header_bytes,
            header_field_bytes=settings.max_header_field_bytes,
            json_depth=settings.max_json_depth,
            custom_claims=settings.max_custom_claims,
        )


DEFAULT_LIMITS = Limits.of(Settings())
_current: ContextVar[Limits] = ContextVar("sessiond_limits", default=DEFAULT_LIMITS)


def current() -> Limits:
    """The limits of the app serving the current request (the defaults outside a request)."""
    return _current.get()


class DepthScanner:
    """Incremental JSON nesting counter over raw bytes, honouring strings and escapes.

    Only the six significant bytes (``[ ] { } " \\``) are visited, so it costs a regex scan per
    chunk. It does not validate JSON: an invalid document is left to the decoder.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the previous chunk ended with a backslash inside a string

    def feed(self, chunk: bytes) -> bool:
        """Scan ``chunk``; False as soon as the nesting goes deeper than the limit."""
        skip = 0 if self.escaped else -1
        self.escaped = False
        for match in _SIGNIFICANT.finditer(chunk):
            at = match.start()
            if at == skip:
                continue
            byte = chunk[at]
            if self.in_string:
                if byte == _BACKSLASH:
                    skip = at + 1
                    self.escaped = skip == len(chunk)
                elif byte == _QUOTE:
                    self.in_string = False
            elif byte == _QUOTE:
                self.in_string = True
            elif byte in (_OPEN_ARRAY, _OPEN_OBJECT):
                self.depth += 1
                if self.depth > self.limit:
                    return False
            elif byte != _BACKSLASH:
                self.depth = max(0, self.depth - 1)
        return True


class RequestLimits:
    """Pure-ASGI wrapper enforcing :class:`Limits` in front of ``app``."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        too_large = self._header_problem(scope["headers"])
        if too_large is not None:
            await send_problem(too_large, scope, send, close=True)
            return
        token = _current.set(self.limits)
        try:
            await self.app(scope, self._scanning(scope, receive), send)
        finally:
            _current.reset(token)

    def _header_problem(self, headers: Any) -> errors.HeadersTooLarge | None:
        total = 0
        for name, value in headers:
            size = len(name) + len(value)
            if size > self.limits.header_field_bytes:
                return errors.HeadersTooLarge(
                    f"a header field exceeds {self.limits.header_field_bytes} bytes"
                )
            total += size
        if total > self.limits.header_bytes:
            return errors.HeadersTooLarge(
                f"the request headers exceed {self.limits.header_bytes} bytes"
            )
        return None

    def _scanning(self, scope: Scope, receive: Receive) -> Receive:
        content_type = b""
        for name, value in scope["headers"]:
            if name.lower() == b"content-type":
                content_type = value.lower()
        if content_type.startswith(_FORM_TYPES):
            return receive
        scanner = DepthScanner(self.limits.json_depth)

        async def scanned() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.request" and not scanner.feed(message.get("body", b"")):
                raise errors.JsonTooDeep(f"JSON nested deeper than {self.limits.json_depth} levels")
            return message

        return scanned
