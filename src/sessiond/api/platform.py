"""Routes for the platform: public keys, server metadata, liveness, readiness and metrics."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency

from sessiond.api.openapi import problems
from sessiond.errors import DPOP_ALGORITHMS
from sessiond.metrics import MEDIA_TYPE
from sessiond.runtime import Runtime
from sessiond.tokens.keys import JWKS_MAX_AGE

JWK_SET = "application/jwk-set+json"
JWKS_PATH = "/.well-known/jwks.json"


@get(JWKS_PATH, media_type=JWK_SET, responses=problems(503))
async def jwks(runtime: NamedDependency[Runtime]) -> Response[dict[str, Any]]:
    """The public keys that verify sessiond's access tokens (never HMAC secrets)."""
    body = runtime.keyset.jwks(time.time(), runtime.key_retention)
    return Response(
        body,
        media_type=JWK_SET,
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


@get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz", responses=problems(503))
async def readyz(runtime: NamedDependency[Runtime]) -> dict[str, str]:
    """Readiness: the session store answers, the denylist is caught up and current, and the
    clock is within its bound of the store's."""
    await runtime.store.ping()
    runtime.verifier.check_ready()
    runtime.now()
    return {"status": "ready"}


@get("/.well-known/oauth-authorization-server")
async def server_metadata(
    runtime: NamedDependency[Runtime], request: Request[Any, Any, Any]
) -> dict[str, Any]:
    """RFC 8414 metadata: the issuer, where its keys are, its token (the refresh grant),
    introspection (a service credential as bearer token) and revocation endpoints, public
    clients, and the algorithms its DPoP proofs may use (RFC 9449 section 5.1). No
    authorization endpoint, so no response types. URLs start with ``SESSIOND_PUBLIC_URL``,
    else with the address the request came to."""
    base = (runtime.settings.public_url or str(request.base_url)).rstrip("/")
    return {
        "issuer": runtime.settings.issuer,
        "jwks_uri": base + JWKS_PATH,
        "token_endpoint": base + "/v1/token",
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["refresh_token"],
        "introspection_endpoint": base + "/v1/introspect",
        "introspection_endpoint_auth_methods_supported": ["Bearer"],
        "revocation_endpoint": base + "/v1/revoke",
        "revocation_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": [],
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
    }


@get("/metrics", media_type=MEDIA_TYPE)
async def metrics(runtime: NamedDependency[Runtime]) -> Response[bytes]:
    return Response(runtime.metrics.render(), media_type=MEDIA_TYPE)
