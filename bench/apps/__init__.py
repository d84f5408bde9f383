"""The six apps of ``python -m bench verifier``, one module each, run by granian (one worker).

Each is a Litestar app with the same protected ``GET /balance`` handler (:func:`balance`); they
differ only in how the caller is authenticated:

- :mod:`.none`: no authentication at all (the ceiling);
- :mod:`.plugin`: the sessiond Litestar plugin;
- :mod:`.middleware`: the sessiond pure ASGI middleware around the app of :mod:`.none`;
- :mod:`.jwt_auth`: Litestar's ``JWTAuth`` (HS256, user made from the token, no I/O);
- :mod:`.jwt_denylist`: the same plus a ``revoked_token_handler`` asking Redis ``EXISTS``;
- :mod:`.sessions`: Litestar's ``SessionAuth`` with server-side sessions in a ``RedisStore``.

Every module has a ``create_app()`` factory (``granian --factory bench.apps.NAME:create_app``)
that reads its settings from the environment at start-up: ``SESSIOND_*`` for the sessiond
variants, :data:`SECRET_ENV` and :data:`REDIS_ENV` for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, get

__all__ = ("REDIS_ENV", "SECRET_ENV", "User", "balance")

#: The HS256 secret of :mod:`.jwt_auth` and :mod:`.jwt_denylist`.
SECRET_ENV = "BENCH_JWT_SECRET"  # noqa: S105 (the name of a variable, not a secret)
#: The Redis of :mod:`.jwt_denylist` (its denylist) and :mod:`.sessions` (its session store).
REDIS_ENV = "BENCH_REDIS_URL"


@dataclass(frozen=True, slots=True)
class User:
    """What the Litestar-auth apps make of a token or session: just the subject."""

    sub: str


@get("/balance", sync_to_thread=False)
def balance(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The protected resource: a small JSON body that uses the caller's subject (its ``sub``,
    whatever the authentication put in ``scope["user"]``; ``anonymous`` without one)."""
    subject = getattr(request.scope.get("user"), "sub", "anonymous")
    return {"subject": subject, "balance": "1024.00", "currency": "EUR"}
