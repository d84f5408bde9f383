"""Routes for the platform: public keys, liveness, readiness and metrics."""

from __future__ import annotations

import time
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from sessiond.api.openapi import problems
from sessiond.metrics import MEDIA_TYPE
from sessiond.runtime import Runtime
from sessiond.tokens.keys import JWKS_MAX_AGE

JWK_SET = "application/jwk-set+json"


@get("/.well-known/jwks.json", media_type=JWK_SET, responses=problems(503))
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


@get("/metrics", media_type=MEDIA_TYPE)
async def metrics(runtime: NamedDependency[Runtime]) -> Response[bytes]:
    return Response(runtime.metrics.render(), media_type=MEDIA_TYPE)
