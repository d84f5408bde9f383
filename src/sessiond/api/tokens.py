"""Token routes: refresh, logout, whoami (clients) and RFC 7662 / RFC 7009 endpoints."""

from __future__ import annotations

import time
from typing import Any, TypeVar

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.exceptions import SerializationException
from litestar.params import JSONBody

from sessiond.api import cookies
from sessiond.api.auth import access_claims, client_context, dpop_key, request_source
from sessiond.api.openapi import (
    ACCESS_TOKEN,
    FORM,
    JSON,
    dpop_proof,
    empty,
    problems,
    request_body,
    revocation_answers,
)
from sessiond.api.schemas import (
    Introspection,
    RefreshGrant,
    RefreshRequest,
    RevocationView,
    TokenForm,
    TokenResponse,
    WhoAmI,
    revocation_response,
)
from sessiond.audit import AuditContext
from sessiond.errors import InvalidGrant, InvalidRequest, InvalidToken, UnsupportedGrantType
from sessiond.runtime import Runtime
from sessiond.sessions.service import Issued
from sessiond.tokens.claims import AccessClaims
from sessiond.tokens.refresh import RefreshToken

client_claims = {"claims": Provide(access_claims)}
AnyRequest = Request[Any, Any, Any]
#: ``response_headers=`` of every route answering with tokens or their claims: no cache may
#: keep the answer (RFC 6749 section 5.1; ``Pragma`` for HTTP/1.0 caches).
NO_STORE = [
    ResponseHeader(name="Cache-Control", value="no-store", description="Never cache tokens."),
    ResponseHeader(name="Pragma", value="no-cache", description="For HTTP/1.0 caches."),
]


def token_response(issued: Issued) -> TokenResponse:
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.claims.exp - issued.claims.iat,
        refresh_token=msgspec.UNSET if issued.refresh_token is None else issued.refresh_token,
        refresh_expires_in=max(0, int(issued.session.ends_at - time.time())),
        session_id=issued.session.sid,
        token_type=issued.claims.token_type,
    )


@post(
    "/v1/tokens/refresh",
    status_code=200,
    response_headers=NO_STORE,
    operation_class=dpop_proof(),
    responses=problems(400, 403, 413, 429, 503),
)
async def refresh(
    runtime: NamedDependency[Runtime],
    request: AnyRequest,
    data: JSONBody[RefreshRequest | None] = None,
) -> Response[TokenResponse]:
    """Rotate the refresh token and get a new access token (in cookie mode: the cookie's)."""
    body_token = data.refresh_token if data is not None else None
    return await _refreshed(runtime, request, body_token)


@post(
    "/v1/token",
    status_code=200,
    response_headers=NO_STORE,
    operation_class=dpop_proof(request_body(RefreshGrant, FORM, JSON)),
    responses=problems(400, 403, 413, 429, 503),
)
async def token_endpoint(
    runtime: NamedDependency[Runtime], request: AnyRequest
) -> Response[TokenResponse]:
    """RFC 6749's token endpoint for its one grant here, ``refresh_token`` (section 6): the
    refresh of ``/v1/tokens/refresh`` for OAuth clients. Public clients: no authentication."""
    grant = await oauth_form(request, RefreshGrant)
    if grant.grant_type != "refresh_token":
        raise UnsupportedGrantType("the only grant_type here is refresh_token")
    return await _refreshed(runtime, request, grant.refresh_token)


async def _refreshed(
    runtime: Runtime, request: AnyRequest, body_token: str | None
) -> Response[TokenResponse]:
    token = cookies.refresh_token(request, runtime.settings, body_token)
    await runtime.limits.check("refresh_per_session", RefreshToken.parse(token).sid)
    by = AuditContext(source=request_source(request))  # the service audits the token's session
    issued = await runtime.sessions.refresh(token, by=by, jkt=dpop_key(request))
    return cookies.deliver(token_response(issued), runtime.settings, 200)


@post(
    "/v1/logout",
    status_code=202,
    dependencies=client_claims,
    security=ACCESS_TOKEN,
    responses=revocation_answers(204) | problems(401, 403, 503),
)
async def logout(
    claims: NamedDependency[AccessClaims], runtime: NamedDependency[Runtime], request: AnyRequest
) -> Response[RevocationView | None]:
    """Revoke the caller's own session."""
    by = client_context(request, claims.sid)
    revoked = await runtime.sessions.revoke_session(
        claims.sid, reason="logout", by=by, code="logout"
    )
    response = revocation_response(revoked, 204)
    cookies.clear(response, runtime.settings)
    return response


@get(
    "/v1/whoami",
    dependencies=client_claims,
    security=ACCESS_TOKEN,
    responses=problems(401, 503),
)
async def whoami(claims: NamedDependency[AccessClaims]) -> WhoAmI:
    """Verify the caller's token exactly as a resource server would: keys and denylist."""
    return WhoAmI.of(claims)


@post(
    "/v1/introspect",
    opt={"scope": "tokens:introspect", "rate": "introspections_per_client"},
    status_code=200,
    operation_class=request_body(TokenForm, FORM, JSON),
    response_headers=NO_STORE,
    responses=problems(400, 401, 403, 413, 429, 503),
)
async def introspect(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
) -> Introspection:
    """RFC 7662: is this access or refresh token active right now (asks the store too)."""
    form = await oauth_form(request, TokenForm)
    refresh_token = _as_refresh(form.token)
    if refresh_token is not None:
        session = await runtime.sessions.session_of_refresh(refresh_token)
        if session is None:
            return Introspection(active=False)
        return Introspection(
            active=True,
            sub=session.sub,
            sid=session.sid,
            exp=int(session.ends_at),
            iss=runtime.settings.issuer,
            client_id=session.client_id,
        )
    try:
        claims = await runtime.verifier.inspect(form.token)
    except InvalidToken:
        return Introspection(active=False)
    if await runtime.store.get(claims.sid) is None:
        return Introspection(active=False)
    return Introspection.of_access_token(claims)


@post(
    "/v1/revoke",
    status_code=200,
    operation_class=request_body(TokenForm, FORM, JSON),
    responses={200: empty("Revoked, or the token was not valid (RFC 7009): no body.")}
    | problems(400, 403, 413, 503),
)
async def revoke_token(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
) -> Response[bytes]:
    """RFC 7009: a refresh token ends its session, an access token is denied by its jti.

    As the RFC asks, an invalid or unknown token is answered 200 too. In cookie mode a request
    without a body revokes the refresh cookie's session and clears the cookies.
    """
    cookie_token = await cookies.revocable_token(request, runtime.settings)
    form = TokenForm(token=cookie_token) if cookie_token else await oauth_form(request, TokenForm)
    done = Response(b"", status_code=200, media_type=MediaType.TEXT)
    if cookie_token:
        cookies.clear(done, runtime.settings)
    refresh_token = _as_refresh(form.token)
    if refresh_token is not None:
        if await runtime.sessions.session_of_refresh(refresh_token) is not None:
            by = client_context(request, refresh_token.sid)
            await runtime.sessions.revoke_session(
                refresh_token.sid, reason="revoked by client", by=by, code="logout"
            )
        return done
    try:
        claims = await runtime.verifier.inspect(form.token)
    except InvalidToken:
        return done
    by = client_context(request, claims.sid)
    await runtime.sessions.revoke_token(
        claims.jti, "revoked by client", float(claims.exp), by=by, code="logout"
    )
    return done


Form = TypeVar("Form", bound=msgspec.Struct)


async def oauth_form(request: AnyRequest, struct: type[Form]) -> Form:
    """The parameters of an OAuth endpoint, form-encoded as the RFCs say, or as JSON; one
    missing or malformed is OAuth's ``invalid_request``."""
    raw: Any
    try:
        if request.content_type[0] == JSON:
            raw = await request.json()
        else:
            raw = dict(await request.form())
        return msgspec.convert(raw, struct, strict=False)
    except SerializationException:
        raise InvalidRequest("the body is not JSON") from None
    except msgspec.ValidationError as exc:
        raise InvalidRequest(str(exc)) from None


def _as_refresh(token: str) -> RefreshToken | None:
    try:
        return RefreshToken.parse(token)
    except InvalidGrant:
        return None
