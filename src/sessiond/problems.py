"""Every error as RFC 9457 problem details (``application/problem+json``), never a traceback.

Litestar exception handlers, shared by the service (``sessiond.api``) and the verifier's
Litestar plugin (``sessiond.verifier.litestar``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from sessiond import errors
from sessiond.errors import PROBLEM_JSON

# Errors are logged as the HTTP layer's, whichever app registered the handlers.
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


def problem(
    exc: errors.SessiondError,
    instance: str,
    invalid: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[errors.Problem]:
    """The problem-details response for ``exc``, with ``headers`` besides its own."""
    return Response(
        exc.problem(instance, invalid),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers={**(headers or {}), **exc.headers()} or None,
    )


def on_sessiond_error(request: Request[Any, Any, Any], exc: Exception) -> Response[errors.Problem]:
    assert isinstance(exc, errors.SessiondError)
    if exc.status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc.detail)
    return problem(exc, request.url.path)


def on_http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[errors.Problem]:
    """Litestar's own errors (validation, unknown route, body too large) as problems, with
    their headers (a 405's ``Allow``)."""
    assert isinstance(exc, HTTPException)
    kind = _BY_STATUS.get(exc.status_code, errors.SessiondError)
    if kind is errors.SessiondError:
        return on_unexpected_error(request, exc)
    return problem(kind(exc.detail or None), request.url.path, _invalid(exc.extra), exc.headers)


def _invalid(extra: object) -> list[dict[str, Any]] | None:
    """Litestar's list of invalid parameters, where a missing body, which Litestar reports as
    the text of a ``KeyError`` (``'data'``), is said in words."""
    if not isinstance(extra, list):
        return None
    return [
        {"message": "the request has no body", "source": "body"}
        if entry.get("source") == "body" and entry.get("message") == repr(entry.get("key"))
        else entry
        for entry in extra
    ]


def on_unexpected_error(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[errors.Problem]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(errors.SessiondError(), request.url.path)


EXCEPTION_HANDLERS = {
    errors.SessiondError: on_sessiond_error,
    HTTPException: on_http_error,
    Exception: on_unexpected_error,
}
