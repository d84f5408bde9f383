"""Self-service routes: a signed-in user sees and ends their own sessions.

Each route is authenticated by the caller's own access token, as ``/v1/logout`` is
(``Authorization: Bearer``, or the access cookie in cookie mode ``both``, where a ``DELETE``
needs ``X-Sessiond-CSRF: 1``), and acts on the token's subject only. A session of another
subject is answered 404 ``session-not-found``, exactly as one that never existed, so that a
caller learns nothing about sessions that are not its own. Every revocation here has the
``reason_code`` ``logout``: the user signed themselves out.

``last_seen_at`` is the session's sign-in or its latest refresh: accurate to one access-token
lifetime (5 minutes by default), since verifying an access token never writes to the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter

from sessiond.api import cookies
from sessiond.api.auth import access_claims, client_context
from sessiond.api.openapi import ACCESS_TOKEN, problems, revocation_answers
from sessiond.api.schemas import RevocationView, revocation_response, utc
from sessiond.api.sessions import SessionId
from sessiond.runtime import Runtime
from sessiond.sessions.models import Device
from sessiond.sessions.selfservice import OwnSession
from sessiond.tokens.claims import AccessClaims

AnyRequest = Request[Any, Any, Any]
_OWN = {"claims": Provide(access_claims)}


class MySession(msgspec.Struct, kw_only=True):
    """One of the caller's sessions. ``current``: the session of the token that asked ("this
    device"). ``device`` is what the login backend said at sign-in (``ip`` included).
    ``last_seen_at``: the sign-in or the latest refresh."""

    session_id: str
    current: bool
    device: Device
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, own: OwnSession) -> MySession:
        session = own.session
        return cls(
            session_id=session.sid,
            current=own.current,
            device=session.device,
            created_at=utc(session.created_at),
            last_seen_at=utc(session.last_seen_at),
            expires_at=utc(session.ends_at),
        )


class MySessions(msgspec.Struct, kw_only=True):
    sessions: list[MySession]


class SignedOut(msgspec.Struct, kw_only=True):
    """The revocations of a "sign out everywhere else", one per session ended."""

    revocations: list[RevocationView]


@get(
    "/v1/me/sessions",
    dependencies=_OWN,
    security=ACCESS_TOKEN,
    cache_control=CacheControlHeader(no_store=True),
    responses=problems(401, 403, 503),
)
async def my_sessions(
    claims: NamedDependency[AccessClaims], runtime: NamedDependency[Runtime]
) -> MySessions:
    """The caller's live sessions, oldest first, its own marked ``current``.

    ``last_seen_at`` is when the session signed in or last refreshed its tokens: it is accurate
    to one access-token lifetime, and costs no store write per request."""
    own = await runtime.sessions.list_own(claims.sub, claims.sid)
    return MySessions(sessions=[MySession.of(s) for s in own])


@delete(
    "/v1/me/sessions/{sid:str}",
    dependencies=_OWN,
    security=ACCESS_TOKEN,
    status_code=202,
    responses=revocation_answers(204) | problems(400, 401, 403, 404, 503),
)
async def sign_out_my_session(
    sid: SessionId,
    claims: NamedDependency[AccessClaims],
    runtime: NamedDependency[Runtime],
    request: AnyRequest,
) -> Response[RevocationView | None]:
    """Sign one of the caller's sessions out (its own too: then the cookies are cleared).

    404 ``session-not-found`` for a session that is not a live one of the caller's subject,
    another subject's included."""
    by = client_context(request, claims.sid)
    revoked = await runtime.sessions.revoke_own(claims.sub, sid, by)
    response = revocation_response(revoked, 204)
    if sid == claims.sid:
        cookies.clear(response, runtime.settings)
    return response


@delete(
    "/v1/me/sessions",
    dependencies=_OWN,
    security=ACCESS_TOKEN,
    status_code=200,
    responses={
        202: ResponseSpec(
            SignedOut,
            description="Some revocations are pending: every replica gets them once the stream "
            "is back.",
            generate_examples=False,
        ),
        **problems(400, 401, 403, 503),
    },
)
async def sign_out_everywhere_else(
    keep: Annotated[
        Literal["current"],
        QueryParameter(name="except", description="`current`: the caller's session stays."),
    ],
    claims: NamedDependency[AccessClaims],
    runtime: NamedDependency[Runtime],
    request: AnyRequest,
) -> Response[SignedOut]:
    """Sign out every session of the caller but its own (``?except=current``, required).

    Each session is revoked on its own, rather than the subject at once, whose not-before
    would reject the caller's own token too."""
    by = client_context(request, claims.sid)
    revoked = await runtime.sessions.revoke_others(claims.sub, claims.sid, by)
    pending = any(not r.propagated for r in revoked)
    body = SignedOut(revocations=[RevocationView.of(r) for r in revoked])
    return Response(body, status_code=202 if pending else 200)


#: The self-service routes, for the app to register beside the other client routes.
ROUTES = [my_sessions, sign_out_my_session, sign_out_everywhere_else]
