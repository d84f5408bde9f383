"""The console's browser defences: the response headers of its pages and its CSRF check.

Every console response carries a Content-Security-Policy that lets the page load scripts,
styles and images from sessiond itself only, run no inline script or style, post forms only
to sessiond, and be framed by nobody. The API's routes carry none of this (no cost there).

CSRF: every console form holds a token that must equal the ``__Host-sessiond-console-csrf``
cookie (double submit). A page on another site can neither read the cookie (HttpOnly) nor
plant one (the ``__Host-`` prefix forbids a sibling subdomain to set it, the classic weakness
of a plain double submit), so it cannot post a form that matches. As in the API's cookie mode,
a browser's ``Sec-Fetch-Site`` must also be ``same-origin`` or ``none`` and, without it, an
``Origin`` header must name this host; the session cookies are ``SameSite=Strict`` besides.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, ResponseHeader

from sessiond.errors import CsrfRejected

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CSP),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="no-referrer"),
    ResponseHeader(name="Cross-Origin-Opener-Policy", value="same-origin"),
    ResponseHeader(name="Cache-Control", value="no-store"),
]
CSRF_COOKIE = "__Host-sessiond-console-csrf"
#: The name of the form field that carries the token.
CSRF_FIELD = "csrf"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_SITES = frozenset({"same-origin", "none"})

Connection = ASGIConnection[Any, Any, Any, Any]


def csrf_token(connection: Connection) -> str:
    """The token of this browser's CSRF cookie, or a new one (then set it: :func:`cookie`)."""
    token = connection.cookies.get(CSRF_COOKIE, "")
    return token if _TOKEN.fullmatch(token) else secrets.token_urlsafe(32)


def cookie(token: str) -> Cookie:
    """The CSRF cookie holding ``token``: for the browser session, never sent cross-site."""
    return host_cookie(CSRF_COOKIE, token)


def host_cookie(name: str, value: str, max_age: int | None = None) -> Cookie:
    """A ``__Host-`` cookie of the console: HttpOnly, Secure, SameSite=Strict, Path=/."""
    return Cookie(
        key=name,
        value=value,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def check_csrf(connection: Connection, submitted: str) -> None:
    """Refuse a console form that a page of another origin could have posted."""
    site = connection.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _SITES:
        raise CsrfRejected(f"a {site.strip().lower()!r} request cannot post console forms")
    origin = connection.headers.get("origin")
    if site is None and origin is not None and not _names_host(origin, connection):
        raise CsrfRejected("the request's Origin is not this host")
    expected = connection.cookies.get(CSRF_COOKIE, "")
    if not (_TOKEN.fullmatch(expected) and hmac.compare_digest(expected, submitted)):
        raise CsrfRejected("the form's CSRF token does not match this browser's; reload the page")


def _names_host(origin: str, connection: Connection) -> bool:
    parts = urlsplit(origin.strip())
    host = connection.headers.get("host", "").strip().lower()
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == host
