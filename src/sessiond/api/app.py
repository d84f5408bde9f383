"""The Litestar application of the session authority."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from sessiond import __version__
from sessiond.api import cookies, me, platform, receivers, sessions, tokens
from sessiond.api.auth import service_credential
from sessiond.api.methods import Methods
from sessiond.api.openapi import COMPONENTS, SERVICE_CREDENTIAL, STRUCTS, finish
from sessiond.api.sizes import Limits, RequestLimits
from sessiond.console import ConsolePlugin, UserCookies
from sessiond.problems import EXCEPTION_HANDLERS
from sessiond.runtime import Runtime
from sessiond.settings import Settings

log = logging.getLogger("sessiond")

service_routes = Router(
    path="/",
    guards=[service_credential],
    security=SERVICE_CREDENTIAL,
    route_handlers=[
        sessions.create_session,
        sessions.read_session,
        sessions.step_up,
        sessions.update_session_data,
        sessions.revoke_session,
        sessions.list_sessions,
        sessions.sign_out_everywhere,
        sessions.revoke,
        tokens.introspect,
        receivers.create_receiver,
        receivers.list_receivers,
        receivers.read_receiver,
        receivers.read_dead_letters,
        receivers.delete_receiver,
    ],
)

client_routes = [
    tokens.refresh,
    tokens.token_endpoint,
    tokens.logout,
    tokens.whoami,
    tokens.revoke_token,
    *me.ROUTES,
]
platform_routes = [
    platform.jwks,
    platform.server_metadata,
    platform.healthz,
    platform.readyz,
    platform.metrics,
]


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def create_app(runtime: Runtime) -> Litestar:
    """The ASGI app serving ``runtime``; its lifespan starts and stops the runtime."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await runtime.start()
        for line in runtime.banner():  # to the operator's terminal, never into the logs
            print(f"sessiond: {line}", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            await runtime.aclose()

    app = Litestar(
        route_handlers=[service_routes, *client_routes, *platform_routes],
        dependencies={"runtime": Provide(_runtime, sync_to_thread=False)},
        state=State({"runtime": runtime}),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=runtime.settings.max_body_bytes,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="sessiond", version=__version__, path="/schema", components=COMPONENTS
        ),
        logging_config=None,
        plugins=[
            STRUCTS,
            ConsolePlugin(runtime, UserCookies(cookies.REFRESH_COOKIE, cookies.clear)),
        ],
    )
    finish(app.openapi_schema)
    # In front of routing and Litestar's own exception handling: oversized headers never reach
    # the router, and request bodies are watched for JSON nesting as they are read.
    limits = Limits.of(runtime.settings)
    app.asgi_handler = RequestLimits(Methods(app.asgi_handler, app), limits)
    return app


def app_from_env() -> Litestar:
    """Factory for the ASGI server: settings from ``SESSIOND_*`` variables."""
    settings = Settings.load(os.environ)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return create_app(Runtime(settings))
