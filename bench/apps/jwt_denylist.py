"""(e) Litestar's ``JWTAuth`` with a ``revoked_token_handler`` that asks a Redis denylist
(``EXISTS denylist:<jti>``) on every request: the usual way to make its tokens revocable."""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTAuth, Token

from bench.apps import REDIS_ENV, SECRET_ENV, User, balance
from bench.apps.jwt_auth import user_of
from sessiond.redis_client import blocking_client

#: The Redis key that marks a revoked token.
DENYLIST_PREFIX = "denylist:"
MAX_CONNECTIONS = 64
TIMEOUT = 5.0


def create_app() -> Litestar:
    """The ``GET /balance`` app behind ``JWTAuth`` and a Redis denylist."""
    redis = blocking_client(os.environ[REDIS_ENV], max_connections=MAX_CONNECTIONS, timeout=TIMEOUT)

    async def revoked(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        return bool(await redis.exists(f"{DENYLIST_PREFIX}{token.jti}"))

    auth = JWTAuth[User](
        token_secret=os.environ[SECRET_ENV],
        retrieve_user_handler=user_of,
        revoked_token_handler=revoked,
    )
    return Litestar(
        route_handlers=[balance], on_app_init=[auth.on_app_init], on_shutdown=[redis.aclose]
    )
