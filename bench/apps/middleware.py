"""(c) The sessiond pure ASGI middleware around the app of (a): the verifier is started and
closed in the app's lifespan, and ``scope["user"]`` is the verified ``AccessClaims``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from bench.apps import balance
from sessiond.verifier.asgi import SessiondMiddleware
from sessiond.verifier.engine import Verifier
from sessiond.verifier.settings import VerifierSettings


def create_app() -> SessiondMiddleware:
    """The app of (a), wrapped in the sessiond ASGI middleware."""
    verifier = Verifier.from_settings(VerifierSettings.load(os.environ))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await verifier.start()
        try:
            yield
        finally:
            await verifier.aclose()

    app = Litestar(route_handlers=[balance], lifespan=[lifespan])
    return SessiondMiddleware(app, verifier=verifier)
