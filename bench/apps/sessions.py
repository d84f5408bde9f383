"""(f) Litestar's ``SessionAuth``: server-side sessions in a ``RedisStore`` (one store read
and one write back per request, as Litestar's session middleware does)."""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, Request, post
from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.security.session_auth import SessionAuth
from litestar.stores.redis import RedisStore

from bench.apps import REDIS_ENV, User, balance
from sessiond.redis_client import blocking_client

MAX_CONNECTIONS = 64
TIMEOUT = 5.0
LOGIN_PATH = "/login"


async def user_of(
    session: dict[str, Any], connection: ASGIConnection[Any, Any, Any, Any]
) -> User | None:
    """The user of a session, without further I/O (the session came from Redis already)."""
    sub = session.get("sub")
    return User(sub=sub) if isinstance(sub, str) else None


@post(LOGIN_PATH, status_code=204, sync_to_thread=False)
def login(request: Request[Any, Any, Any], data: dict[str, str]) -> None:
    """Sign ``data["sub"]`` in: a new server-side session, its id in a cookie."""
    request.set_session({"sub": data["sub"]})


def create_app() -> Litestar:
    """The ``GET /balance`` app behind server-side sessions in Redis (``POST /login`` signs
    a subject in)."""
    redis = blocking_client(os.environ[REDIS_ENV], max_connections=MAX_CONNECTIONS, timeout=TIMEOUT)
    auth = SessionAuth[User, ServerSideSessionBackend](
        retrieve_user_handler=user_of,
        session_backend_config=ServerSideSessionConfig(),
        exclude=[LOGIN_PATH],
    )
    return Litestar(
        route_handlers=[balance, login],
        on_app_init=[auth.on_app_init],
        stores={"sessions": RedisStore(redis, handle_client_shutdown=True)},
    )
