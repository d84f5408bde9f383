"""Who is calling: service credentials (with scopes) and clients (with access tokens)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from sessiond.api import cookies
from sessiond.audit import Actor, AuditContext, Source
from sessiond.credentials.store import Credential
from sessiond.errors import (
    AuthenticationFailed,
    DpopNonceRequired,
    DpopProofRefused,
    InvalidDpopProof,
    StoreUnavailable,
    UseDpopNonce,
)
from sessiond.runtime import Runtime
from sessiond.tokens.claims import AccessClaims
from sessiond.verifier.asgi import dpop_credentials, dpop_proof, request_url


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


def bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The token of an ``Authorization: Bearer`` header."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("send 'Authorization: Bearer <token>'")
    return token


async def service_credential(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard of the service routes: a known credential holding the route's ``opt['scope']``,
    within the rate limit ``opt['rate']`` (a :data:`~sessiond.ratelimit.limits.Kind`) if any.
    The limit is waived while the limiter's Redis is down if ``opt['rate_fails_open']``."""
    if connection.scope.get("method") == "OPTIONS":
        return  # Litestar's automatic OPTIONS handler only lists the allowed methods
    credential = runtime_of(connection).credentials.authenticate(bearer(connection))
    credential.require(handler.opt["scope"])
    connection.state.credential = credential
    if "rate" in handler.opt:
        try:
            await runtime_of(connection).limits.check(handler.opt["rate"], credential.id)
        except StoreUnavailable:
            if not handler.opt.get("rate_fails_open"):
                raise


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Credential:
    """The credential :func:`service_credential` accepted for this request."""
    credential: Credential = connection.state.credential
    return credential


def request_source(connection: ASGIConnection[Any, Any, Any, Any]) -> Source:
    """Where a request came from, for the audit trail: the peer address (``X-Forwarded-For``
    is not trusted), the user agent and the ``X-Request-Id``, truncated."""
    client = connection.scope.get("client")
    return Source.of(
        client[0] if client else None,
        connection.headers.get("user-agent"),
        connection.headers.get("x-request-id"),
    )


def service_context(connection: ASGIConnection[Any, Any, Any, Any]) -> AuditContext:
    """Audit context of a service route: the credential that :func:`service_credential` accepted."""
    credential = caller(connection)
    return AuditContext(
        actor=Actor.service(credential.id, credential.name), source=request_source(connection)
    )


def client_context(connection: ASGIConnection[Any, Any, Any, Any], sid: str) -> AuditContext:
    """Audit context of a client acting with session ``sid``'s own token."""
    return AuditContext(actor=Actor.client(sid), source=request_source(connection))


async def access_claims(request: ASGIConnection[Any, Any, Any, Any]) -> AccessClaims:
    """Dependency of the client routes: the verified claims of the caller's access token
    (``Authorization: Bearer``, ``Authorization: DPoP`` with its proof, or in cookie mode
    ``both`` the access cookie)."""
    runtime = runtime_of(request)
    token = cookies.access_token(request, runtime.settings)
    dpop = None
    if token is None:
        token, dpop = dpop_credentials(request.scope, runtime.settings.public_url)
    return await runtime.verifier.verify(token or bearer(request), dpop)


def dpop_key(connection: ASGIConnection[Any, Any, Any, Any], url: str | None = None) -> str | None:
    """The thumbprint of the client key whose DPoP proof came with this sign-in or refresh,
    made for ``url`` (default: this request's, under ``SESSIOND_PUBLIC_URL``); ``None``
    without a proof. An invalid proof is a 400 ``invalid_dpop_proof`` (RFC 9449 section 5)."""
    runtime = runtime_of(connection)
    scope = connection.scope
    try:
        dpop = dpop_proof(scope, url or request_url(scope, runtime.settings.public_url))
        return None if dpop is None else runtime.verifier.proofs.check(dpop, runtime.now())
    except UseDpopNonce as exc:
        raise DpopNonceRequired(exc.detail, exc.nonce) from None
    except InvalidDpopProof as exc:
        raise DpopProofRefused(exc.detail) from None
