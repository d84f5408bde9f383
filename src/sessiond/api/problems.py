"""Every error as RFC 9457 problem details (``application/problem+json``), never a traceback."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from sessiond import errors

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("sessiond.api")

_BY_STATUS: dict[int, type[errors.SessiondError]] = {
    400: errors.BadRequest,
    401: errors.AuthenticationFailed,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    429: errors.RateLimited,
    431: errors.HeadersTooLarge,
    503: errors.Unavailable,
}


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    error: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem(
    exc: errors.SessiondError, instance: str, invalid: list[dict[str, Any]] | None = None
) -> Response[Problem]:
    """The problem-details response for ``exc``."""
    body = Problem(
        type=exc.type,
        title=exc.title,
        status=exc.status,
        detail=exc.detail,
        instance=instance,
        error="invalid_grant" if isinstance(exc, errors.InvalidGrant) else None,
        errors=invalid,
    )
    return Response(body, status_code=exc.status, media_type=PROBLEM_JSON, headers=_headers(exc))


def on_sessiond_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    assert isinstance(exc, errors.SessiondError)
    if exc.status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc.detail)
    return problem(exc, request.url.path)


def on_http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Litestar's own errors (validation, unknown route, body too large) as problems."""
    assert isinstance(exc, HTTPException)
    kind = _BY_STATUS.get(exc.status_code, errors.SessiondError)
    if kind is errors.SessiondError:
        return on_unexpected_error(request, exc)
    invalid = exc.extra if isinstance(exc.extra, list) else None
    return problem(kind(exc.detail or None), request.url.path, invalid)


def on_unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(errors.SessiondError(), request.url.path)


def _headers(exc: errors.SessiondError) -> dict[str, str] | None:
    if isinstance(exc, errors.InvalidToken):
        return {"WWW-Authenticate": 'Bearer realm="sessiond", error="invalid_token"'}
    if isinstance(exc, errors.AuthenticationFailed):
        return {"WWW-Authenticate": 'Bearer realm="sessiond"'}
    if isinstance(exc, errors.RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, errors.InsufficientScope):
        return {"WWW-Authenticate": 'Bearer realm="sessiond", error="insufficient_scope"'}
    return None


EXCEPTION_HANDLERS = {
    errors.SessiondError: on_sessiond_error,
    HTTPException: on_http_error,
    Exception: on_unexpected_error,
}
