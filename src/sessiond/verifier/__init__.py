"""Local verification of access tokens: signature, claims and the denylist, no store lookup.

The engine is :class:`Verifier` (``engine.py``); ``asgi.py`` (:class:`SessiondMiddleware`, any
ASGI app) and ``litestar.py`` (``SessiondPlugin``) adapt it to frameworks. A resource backend
builds one with :meth:`Verifier.from_settings`, and ``async with`` starts and closes it.

Installing: this package is the SDK, and ``pip install sessiond`` installs what it needs (msgspec,
PyJWT with cryptography, nats-py) and nothing of the server's; ``pip install 'sessiond[litestar]'``
adds Litestar for the plugin. The server (``sessiond serve``, ``sessiond-relay``) is
``pip install 'sessiond[server]'``: Litestar, granian, click, prometheus-client and redis, none of
which this package imports.
"""

from sessiond.tokens.claims import AccessClaims
from sessiond.tokens.dpop import DpopRequest
from sessiond.verifier.asgi import SessiondMiddleware
from sessiond.verifier.engine import Verifier
from sessiond.verifier.live import CLOSE_REVOKED
from sessiond.verifier.settings import VerifierSettings

__all__ = [
    "CLOSE_REVOKED",
    "AccessClaims",
    "DpopRequest",
    "SessiondMiddleware",
    "Verifier",
    "VerifierSettings",
]
