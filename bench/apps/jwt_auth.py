"""(d) Litestar's own ``JWTAuth``: HS256 with one secret, the user made from the token."""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTAuth, Token

from bench.apps import SECRET_ENV, User, balance


async def user_of(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> User:
    """The user of a verified token, without any I/O."""
    return User(sub=token.sub)


def create_app() -> Litestar:
    """The ``GET /balance`` app behind ``JWTAuth``."""
    auth = JWTAuth[User](token_secret=os.environ[SECRET_ENV], retrieve_user_handler=user_of)
    return Litestar(route_handlers=[balance], on_app_init=[auth.on_app_init])
