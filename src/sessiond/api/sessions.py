"""Service routes (service credential with scopes): sessions, subjects, revocations."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import (
    Body,
    FromPath,
    FromQuery,
    HeaderParameter,
    JSONBody,
    PathParameter,
)

from sessiond.api import cookies
from sessiond.api.auth import caller, dpop_key, service_context
from sessiond.api.openapi import dpop_proof, link, links, problems, revocation_answers
from sessiond.api.schemas import (
    AuthenticationIn,
    CreateSession,
    RevocationRequest,
    RevocationView,
    SessionList,
    SessionRevocation,
    SessionView,
    SubjectRevocation,
    TokenResponse,
    TokenRevocation,
    revocation_response,
)
from sessiond.api.tokens import NO_STORE, token_response
from sessiond.events import ReasonCode
from sessiond.runtime import Runtime
from sessiond.sessions.data import etag, parse_if_match
from sessiond.sessions.models import SID_PATTERN

SessionId = Annotated[str, PathParameter(pattern=SID_PATTERN)]
AnyRequest = Request[Any, Any, Any]
#: The media type of a JSON merge patch (RFC 7396 section 4); plain JSON is read alike.
MERGE_PATCH = "application/merge-patch+json"
#: Required, but answered 428 (RFC 6585) rather than 400 when missing: documented as required,
#: typed as optional.
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=True,
        max_length=1024,
        description="The ETag of the session data this change was made against, or *.",
    ),
]
#: A subject holding a ``/`` matches no route once the path is decoded (for a forced sign-out
#: of such a subject, ``POST /v1/revocations`` takes it in the body).
SUBJECT_NOT_ROUTABLE = 404
#: The revocation routes share one rate limit per credential.
#: A revocation does not need Redis (I7), so neither does its rate limit.
REVOKE = {"scope": "sessions:revoke", "rate": "revocations_per_client", "rate_fails_open": True}


@post(
    "/v1/sessions",
    opt={"scope": "sessions:create"},
    status_code=201,
    operation_class=dpop_proof(
        links(
            201,
            ReadSession=link("GET", "/v1/sessions/{sid}", sid="$response.body#/session_id"),
            RevokeSession=link("DELETE", "/v1/sessions/{sid}", sid="$response.body#/session_id"),
            ListSessions=link("GET", "/v1/subjects/{sub}/sessions", sub="$request.body#/subject"),
        )
    ),
    response_headers=NO_STORE,
    responses=problems(400, 401, 403, 413, 429, 503),
)
async def create_session(
    data: JSONBody[CreateSession], runtime: NamedDependency[Runtime], request: AnyRequest
) -> Response[TokenResponse]:
    """Sign a subject in: a new session, an access token and a refresh token (in cookie mode,
    ``Set-Cookie`` headers for the login backend to forward to the browser). With the
    client's ``DPoP`` proof (forwarded by the login backend), the session is bound to its key."""
    # Both limits in one round trip, so the credential's is counted here and not by the guard.
    await runtime.limits.check_all(
        [("sessions_per_client", caller(request).id), ("sessions_per_subject", data.subject)]
    )
    issued = await runtime.sessions.create(
        data.subject,
        client_id=caller(request).id,
        claims=data.claims,
        data=data.data,
        device=data.device.model() if data.device else None,
        scope=data.scope,
        authentication=data.authentication(),
        lifetime=data.lifetime.model(runtime.settings) if data.lifetime else None,
        jkt=dpop_key(request, runtime.settings.dpop_login_url),
        by=service_context(request),
    )
    return cookies.deliver(token_response(issued), runtime.settings, 201)


@post(
    "/v1/sessions/{sid:str}/authentication",
    opt={"scope": "sessions:create"},
    status_code=200,
    response_headers=NO_STORE,
    responses=problems(400, 401, 403, 404, 413, 503),
)
async def step_up(
    sid: SessionId,
    data: JSONBody[AuthenticationIn],
    runtime: NamedDependency[Runtime],
    request: AnyRequest,
) -> Response[TokenResponse]:
    """Step-up: the session's subject authenticated again (the login backend checked it).
    The session keeps its id and refresh token and records the new ``acr``, ``amr`` and
    ``auth_time``; the answer is an access token that carries them (no refresh token)."""
    issued = await runtime.sessions.authenticate(
        sid, data.authentication(), by=service_context(request)
    )
    return cookies.deliver(token_response(issued), runtime.settings, 200)


@get(
    "/v1/sessions/{sid:str}",
    opt={"scope": "sessions:read"},
    responses=problems(400, 401, 403, 404, 503),
)
async def read_session(sid: SessionId, runtime: NamedDependency[Runtime]) -> Response[SessionView]:
    """The session; its ``ETag`` is the version of its ``data`` (for ``PATCH``'s ``If-Match``)."""
    session = await runtime.sessions.get(sid)
    return Response(SessionView.of(session), headers={"ETag": etag(session.data_version)})


@patch(
    "/v1/sessions/{sid:str}",
    opt={"scope": "sessions:create"},
    status_code=200,
    responses=problems(400, 401, 403, 404, 412, 413, 428, 503),
)
async def update_session_data(
    sid: SessionId,
    data: Annotated[dict[str, Any], Body(media_type=MERGE_PATCH)],
    runtime: NamedDependency[Runtime],
    request: AnyRequest,
    if_match: IfMatch = None,
) -> Response[SessionView]:
    """Change the session's ``data`` with a JSON merge patch (RFC 7396), only if it is still
    the version ``If-Match`` names (428 without ``If-Match``, 412 if it changed since)."""
    session = await runtime.sessions.update_data(
        sid,
        data,
        None if if_match is None else parse_if_match(if_match),
        by=service_context(request),
    )
    return Response(SessionView.of(session), headers={"ETag": etag(session.data_version)})


@delete(
    "/v1/sessions/{sid:str}",
    opt=REVOKE,
    status_code=202,
    responses=revocation_answers(204) | problems(400, 401, 403, 429, 503),
)
async def revoke_session(
    sid: SessionId,
    runtime: NamedDependency[Runtime],
    request: AnyRequest,
    reason_code: FromQuery[ReasonCode] = "forced",
) -> Response[RevocationView | None]:
    """Revoke one session; idempotent, and effective even if the session already expired.
    ``reason_code`` (query) is what the 401 of its tokens tells the app."""
    by = service_context(request)
    revoked = await runtime.sessions.revoke_session(
        sid, reason="revoked by service", by=by, code=reason_code
    )
    return revocation_response(revoked, 204)


@get(
    "/v1/subjects/{sub:str}/sessions",
    opt={"scope": "sessions:read"},
    responses=problems(400, 401, 403, SUBJECT_NOT_ROUTABLE, 503),
)
async def list_sessions(sub: FromPath[str], runtime: NamedDependency[Runtime]) -> SessionList:
    sessions = await runtime.sessions.list_subject(sub)
    return SessionList(sessions=[SessionView.of(s) for s in sessions])


@delete(
    "/v1/subjects/{sub:str}/sessions",
    opt=REVOKE,
    status_code=202,
    responses=revocation_answers(204) | problems(400, 401, 403, SUBJECT_NOT_ROUTABLE, 429, 503),
)
async def sign_out_everywhere(
    sub: FromPath[str],
    runtime: NamedDependency[Runtime],
    request: AnyRequest,
    reason_code: FromQuery[ReasonCode] = "forced",
) -> Response[RevocationView | None]:
    """Forced sign-out: every session of the subject, every access token issued so far.
    ``reason_code`` (query) is what the 401 of its tokens tells the app."""
    by = service_context(request)
    revoked = await runtime.sessions.revoke_subject(
        sub, reason="forced sign-out", by=by, code=reason_code
    )
    return revocation_response(revoked, 204)


@post(
    "/v1/revocations",
    opt=REVOKE,
    status_code=200,
    responses=revocation_answers(200) | problems(400, 401, 403, 413, 429, 503),
)
async def revoke(
    data: JSONBody[RevocationRequest], runtime: NamedDependency[Runtime], request: AnyRequest
) -> Response[RevocationView | None]:
    """Revoke by kind: one token, one session, one subject, or everything."""
    sessions, by, code = runtime.sessions, service_context(request), data.reason_code
    if isinstance(data, TokenRevocation):
        revoked = await sessions.revoke_token(data.jti, data.reason, by=by, code=code)
    elif isinstance(data, SessionRevocation):
        revoked = await sessions.revoke_session(data.session_id, data.reason, by=by, code=code)
    elif isinstance(data, SubjectRevocation):
        revoked = await sessions.revoke_subject(
            data.subject, data.reason, by=by, code=code, not_before=data.not_before_epoch
        )
    else:
        revoked = await sessions.revoke_all(
            data.reason, by=by, code=code, not_before=data.not_before_epoch
        )
    return revocation_response(revoked, 200)
