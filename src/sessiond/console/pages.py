"""What every console page shares: rendering with the CSRF token, redirects, forms, times."""

from __future__ import annotations

import time
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from sessiond.audit import Actor, AuditContext, Source
from sessiond.console import security

AnyRequest = Request[Any, Any, Any]


class Form(msgspec.Struct, kw_only=True):
    """A console form: every one carries the CSRF token."""

    csrf: str = ""


F = TypeVar("F", bound=Form)
#: The body of a handler that takes a posted form of type ``F``: ``data: Posted[F]``.
Posted = Annotated[F, Body(media_type=RequestEncodingType.URL_ENCODED)]


def page(request: AnyRequest, name: str, status: int = 200, **context: Any) -> Template:
    """Render template ``name`` with the browser's CSRF token (setting its cookie if new)."""
    token = security.csrf_token(request)
    fresh = request.cookies.get(security.CSRF_COOKIE) != token
    return Template(
        template_name=name,
        context={"csrf": token, "csrf_field": security.CSRF_FIELD, **context},
        status_code=status,
        cookies=[security.cookie(token)] if fresh else [],
    )


def see_other(path: str, cookies: list[Cookie] | None = None) -> Redirect:
    """The answer to a form: go (GET) to ``path``, so that reloading posts nothing again."""
    return Redirect(path, status_code=303, cookies=cookies or [])


def audit_context(request: AnyRequest, actor: Actor) -> AuditContext:
    """Who acts and from where; the peer address only (``X-Forwarded-For`` is not trusted)."""
    client = request.scope.get("client")
    source = Source.of(
        client[0] if client else None,
        request.headers.get("user-agent"),
        request.headers.get("x-request-id"),
    )
    return AuditContext(actor=actor, source=source)


def when(at: float) -> str:
    """A Unix time as people read it, in UTC."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
