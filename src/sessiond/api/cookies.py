"""Browser cookie mode: tokens in ``__Host-`` cookies that JavaScript never sees, and CSRF defence.

``SESSIOND_COOKIE_MODE``:

- ``off`` (default): tokens travel in JSON bodies and ``Authorization: Bearer`` headers only.
- ``refresh``: the refresh token travels only in the ``__Host-sessiond-refresh`` cookie; the
  access token stays in the body (the single-page app keeps it in memory and sends it as a
  bearer token). This is the SuperTokens / Auth0 SPA pattern: the long-lived secret is out of
  reach of XSS, the short-lived one is not persisted.
- ``both``: the access token travels in ``__Host-sessiond-access`` too, and neither token is in
  any body (Ory Kratos style: the browser holds nothing JavaScript can read).

Cookies are ``HttpOnly; Secure; Path=/; SameSite=Strict`` (``SESSIOND_COOKIE_SAMESITE=lax``
allows top-level navigations from other sites to carry them), never with ``Domain`` (the
``__Host-`` prefix forbids it, so a sibling subdomain can neither read nor plant them), and
``Max-Age`` is the remaining refresh lifetime (idle or absolute, whichever ends first) or the
access-token lifetime. ``POST /v1/sessions`` and ``POST /v1/tokens/refresh`` set them; logout
and cookie revocation clear them (``Max-Age=0``, same attributes, as ``__Host-`` requires).

Because ``__Host-`` cookies are host-only, the browser must reach sessiond's client routes on the
application's own origin (a reverse proxy routes ``/v1/tokens/refresh``, ``/v1/logout``,
``/v1/whoami`` and ``/v1/revoke`` to sessiond), and the login backend forwards the
``Set-Cookie`` headers of ``POST /v1/sessions`` to the browser unchanged.

CSRF: every state-changing route authenticated by a cookie (refresh, logout, revoke) requires
``X-Sessiond-CSRF: 1``. A cross-site form or ``fetch`` cannot send a custom header without a
CORS preflight, and sessiond never answers one with ``Access-Control-Allow-*``, so only
same-origin scripts can. We chose this over a double-submit token because it needs no extra
state or token for the client to fetch, store and echo (the SuperTokens ``VIA_CUSTOM_HEADER``
choice; OWASP lists it as a sound defence for APIs called with ``fetch``), and it cannot be
defeated by a cookie planted from a sibling subdomain, which is the classic weakness of a
naive double-submit. As defence in depth, the Fetch Metadata ``Sec-Fetch-Site`` header must be
``same-origin`` or ``none`` when present, and otherwise an ``Origin`` header, when present,
must name the request's ``Host``. A refusal is ``403 urn:sessiond:problem:csrf``. SameSite is a
third layer, never the only one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection

from sessiond.api.schemas import TokenResponse
from sessiond.errors import BadRequest, CsrfRejected
from sessiond.settings import Settings

REFRESH_COOKIE = "__Host-sessiond-refresh"
ACCESS_COOKIE = "__Host-sessiond-access"
CSRF_HEADER = "x-sessiond-csrf"
#: ``Sec-Fetch-Site`` values a cookie-authenticated state change may come with. ``same-site``
#: is refused too: sessiond never grants CORS, so no legitimate sibling origin can call it.
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Connection = ASGIConnection[Any, Any, Any, Any]


def enabled(settings: Settings) -> bool:
    return settings.cookie_mode != "off"


def deliver(body: TokenResponse, settings: Settings, status_code: int) -> Response[TokenResponse]:
    """The token response in the configured mode: each token that travels in a cookie is set
    as one and left out of the body, so that JavaScript never sees it."""
    response: Response[TokenResponse] = Response(body, status_code=status_code)
    if not enabled(settings):
        return response
    if isinstance(body.refresh_token, str):
        _set(response, settings, REFRESH_COOKIE, body.refresh_token, body.refresh_expires_in)
        body.refresh_token = msgspec.UNSET
    if settings.cookie_mode == "both" and isinstance(body.access_token, str):
        _set(response, settings, ACCESS_COOKIE, body.access_token, body.expires_in)
        body.access_token = msgspec.UNSET
    return response


def clear(response: Response[Any], settings: Settings) -> None:
    """Expire every sessiond cookie in the browser (logout, revocation)."""
    if not enabled(settings):
        return
    for name in (
        (REFRESH_COOKIE, ACCESS_COOKIE) if settings.cookie_mode == "both" else (REFRESH_COOKIE,)
    ):
        _set(response, settings, name, "", 0)


def _set(response: Response[Any], settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=True,
        samesite=settings.cookie_samesite,
    )


def check_csrf(connection: Connection) -> None:
    """Refuse a cookie-authenticated state change that a cross-site page could have forged."""
    if connection.headers.get(CSRF_HEADER, "").strip() != "1":
        raise CsrfRejected(f"send '{CSRF_HEADER.title()}: 1' with cookie-authenticated requests")
    site = connection.headers.get("sec-fetch-site")
    if site is not None:
        if site.strip().lower() not in ALLOWED_FETCH_SITES:
            raise CsrfRejected(f"a {site.strip().lower()!r} request cannot use the session cookies")
        return
    origin = connection.headers.get("origin")
    if origin is not None and not _same_host(origin, connection.headers.get("host", "")):
        raise CsrfRejected("the request's Origin is not this host")


def _same_host(origin: str, host: str) -> bool:
    origin = origin.strip()
    if origin.lower() == "null" or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


def refresh_token(connection: Connection, settings: Settings, body_token: str | None) -> str:
    """The refresh token of ``POST /v1/tokens/refresh``: the body's, or in cookie mode the
    cookie's (CSRF checked; a token in the body is refused so it never leaves the cookie)."""
    if not enabled(settings):
        if body_token is None:
            raise BadRequest("send {'refresh_token': ...}")
        return body_token
    if body_token is not None:
        raise BadRequest(f"cookie mode: send the refresh token in the {REFRESH_COOKIE} cookie")
    check_csrf(connection)
    token = connection.cookies.get(REFRESH_COOKIE)
    if not token:
        raise BadRequest(f"no {REFRESH_COOKIE} cookie")
    return token


def access_token(connection: Connection, settings: Settings) -> str | None:
    """In ``both`` mode and without an ``Authorization`` header, the access cookie (CSRF checked
    unless the method is safe); else ``None`` (the caller asks for a bearer token)."""
    if settings.cookie_mode != "both" or "authorization" in connection.headers:
        return None
    token = connection.cookies.get(ACCESS_COOKIE)
    if not token:
        return None
    if connection.scope.get("method", "GET") not in SAFE_METHODS:
        check_csrf(connection)
    return token


async def revocable_token(request: Request[Any, Any, Any], settings: Settings) -> str | None:
    """``POST /v1/revoke`` without a body in cookie mode: the refresh cookie (CSRF checked)."""
    if not enabled(settings) or (await request.body()).strip():
        return None
    check_csrf(request)
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise BadRequest(f"send a 'token' parameter or the {REFRESH_COOKIE} cookie")
    return token
