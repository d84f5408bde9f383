"""The verifier as a Litestar plugin: one line in the app's config.

::

    from sessiond.verifier.litestar import SessiondPlugin, requires_scope

    app = Litestar([balance], plugins=[SessiondPlugin(exclude=["^/healthz$"])])

    @get("/balance", guards=[requires_scope("accounts:read")])
    async def balance(request: AuthRequest, claims: NamedDependency[AccessClaims]) -> dict: ...

What it installs (:meth:`SessiondPlugin.on_app_init`):

- the lean :class:`~sessiond.verifier.asgi.SessiondMiddleware` on every route (Litestar's
  ``AbstractAuthenticationMiddleware`` builds a connection object per request and costs about a
  third of a hello-world endpoint's throughput; this one reads ``scope`` directly). A route
  handler with ``opt={"exclude_from_auth": True}`` (Litestar's own key), a path matching
  ``exclude``, and requests of the ``exclude_methods`` (``OPTIONS`` by default) are passed
  through; with ``required_scopes``, every token must hold them; a route handler with
  ``opt={"acr": "aal2", "max_age": 300}`` (either or both) wants a step-up: a token whose
  ``acr`` ranks below (``SESSIOND_ACR_LEVELS``) or whose ``auth_time`` is older gets 401
  ``insufficient_user_authentication`` with the RFC 9470 challenge;
- ``request.user`` is the token's :class:`AccessClaims`, ``request.auth`` the token (type
  requests as :data:`AuthRequest`); the dependencies ``claims`` and ``verifier``;
- the verifier's start and close in the app's lifespan (keys fetched, revocation stream
  followed: a failure there does not stop the app, its readiness tells);
- problem details (RFC 9457) with ``WWW-Authenticate`` for sessiond's errors, including those
  of :func:`requires_scope` guards;
- with ``readiness_path``, a ``GET`` route answering 200 once the verifier has its keys and a
  current denylist, 503 problem details before (for a Kubernetes readiness probe);
- in the app's OpenAPI document (if it has one), the bearer security scheme
  ``openapi_scheme`` (``BearerToken``, as Litestar's ``JWTAuth``) required by every route; an
  excluded route says ``security=[]`` in its decorator to be documented as open.

Settings come from ``SESSIOND_*`` (:class:`~sessiond.verifier.settings.VerifierSettings`) unless
a :class:`VerifierSettings` or a ready :class:`Verifier` is given.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeAlias

from litestar import Litestar, Request, get
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol
from litestar.types import Guard

from sessiond.errors import InsufficientScope, SessiondError
from sessiond.problems import on_sessiond_error
from sessiond.tokens.claims import AccessClaims
from sessiond.verifier.asgi import SessiondMiddleware
from sessiond.verifier.engine import Verifier
from sessiond.verifier.settings import VerifierSettings

__all__ = ["AuthRequest", "SessiondPlugin", "requires_scope"]

#: A request that passed the verifier: ``request.user`` is the claims, ``request.auth`` the token.
AuthRequest: TypeAlias = Request[AccessClaims, str, State]


class SessiondPlugin(InitPluginProtocol):
    """Verify sessiond access tokens on every route of a Litestar app.

    ``exclude``, ``exclude_methods`` and ``required_scopes`` are the
    :class:`~sessiond.verifier.asgi.SessiondMiddleware`'s: paths (regular expressions) and HTTP
    methods passed through without a token, and scopes every token must hold (403 otherwise).
    ``public_url`` (default: the settings' ``SESSIOND_PUBLIC_URL``) is where clients reach the
    app, the base of the URL its DPoP proofs must name.
    """

    def __init__(
        self,
        settings: VerifierSettings | None = None,
        *,
        verifier: Verifier | None = None,
        exclude: Sequence[str] = (),
        exclude_methods: Collection[str] = ("OPTIONS",),
        required_scopes: Collection[str] = (),
        readiness_path: str | None = None,
        openapi_scheme: str = "BearerToken",
        public_url: str | None = None,
    ) -> None:
        self._settings = settings
        self._public_url = public_url
        self._verifier = verifier
        self._exclude = exclude
        self._exclude_methods = exclude_methods
        self._required_scopes = required_scopes
        self._readiness_path = readiness_path
        self._openapi_scheme = openapi_scheme

    @property
    def verifier(self) -> Verifier:
        """The verifier, made from the settings (or ``SESSIOND_*``) on first use."""
        if self._verifier is None:
            self._settings = self._settings or VerifierSettings.load(os.environ)
            self._verifier = Verifier.from_settings(self._settings)
        return self._verifier

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        verifier = self.verifier
        app_config.middleware.insert(
            0,
            DefineMiddleware(
                SessiondMiddleware,
                verifier=verifier,
                exclude=self._exclude,
                exclude_methods=self._exclude_methods,
                required_scopes=self._required_scopes,
                public_url=self._public_url or (self._settings and self._settings.public_url),
            ),
        )
        app_config.lifespan.append(self._lifespan)
        app_config.dependencies.setdefault("claims", Provide(_claims, sync_to_thread=False))
        app_config.dependencies.setdefault(
            "verifier", Provide(lambda: verifier, use_cache=True, sync_to_thread=False)
        )
        app_config.signature_namespace.update(
            {"AccessClaims": AccessClaims, "AuthRequest": AuthRequest, "Verifier": Verifier}
        )
        app_config.exception_handlers.setdefault(SessiondError, on_sessiond_error)
        if self._readiness_path is not None:
            app_config.route_handlers.append(_readiness(self._readiness_path, verifier))
        if app_config.openapi_config is not None:
            app_config.openapi_config = self._documented(app_config.openapi_config)
        return app_config

    def _documented(self, config: OpenAPIConfig) -> OpenAPIConfig:
        """``config`` with the bearer scheme, required by every route (as ``JWTAuth`` does)."""
        holding = " ".join(sorted(self._required_scopes))
        scheme = SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="An access token issued by sessiond"
            + (f", holding {holding}." if holding else "."),
        )
        components = Components(security_schemes={self._openapi_scheme: scheme})
        existing = config.components if isinstance(config.components, list) else [config.components]
        return replace(
            config,
            components=[components, *existing],
            security=[*(config.security or []), {self._openapi_scheme: []}],
        )

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        async with self.verifier:
            yield


def requires_scope(*scopes: str) -> Guard:
    """A guard letting through only tokens that hold every one of ``scopes`` (403 otherwise)."""
    needed = frozenset(scopes)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        claims = connection.scope.get("user")
        granted = claims.scopes if isinstance(claims, AccessClaims) else frozenset()
        missing = needed - granted
        if missing:
            names = " ".join(sorted(missing))
            raise InsufficientScope(f"the token lacks the scope {names}", " ".join(sorted(needed)))

    return guard


def _claims(request: Request[Any, Any, Any]) -> AccessClaims:
    claims: AccessClaims = request.scope["user"]
    return claims


def _readiness(path: str, verifier: Verifier) -> Any:
    @get(path, opt={"exclude_from_auth": True}, include_in_schema=False, sync_to_thread=False)
    def ready() -> dict[str, str]:
        """200 once the verifier can decide; problem details (503) until then."""
        verifier.check_ready()
        return {"status": "ready"}

    return ready
