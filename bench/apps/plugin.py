"""(b) The sessiond Litestar plugin: it loads ``VerifierSettings`` from the ``SESSIOND_*``
environment at start-up, follows the revocation stream and puts the verified
``AccessClaims`` in ``request.user``."""

from __future__ import annotations

from litestar import Litestar

from bench.apps import balance
from sessiond.verifier.litestar import SessiondPlugin


def create_app() -> Litestar:
    """The ``GET /balance`` app behind the sessiond plugin."""
    return Litestar(route_handlers=[balance], plugins=[SessiondPlugin()])
