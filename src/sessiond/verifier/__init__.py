"""Local verification of access tokens: signature, claims and the denylist, no store lookup.

The engine is :class:`Verifier` (``engine.py``); ``asgi.py`` and ``litestar.py`` adapt it to
frameworks. A resource backend builds one with :meth:`Verifier.from_settings`.
"""

from sessiond.tokens.claims import AccessClaims
from sessiond.verifier.asgi import SessiondMiddleware
from sessiond.verifier.engine import Verifier
from sessiond.verifier.live import CLOSE_REVOKED
from sessiond.verifier.settings import VerifierSettings

__all__ = ["CLOSE_REVOKED", "AccessClaims", "SessiondMiddleware", "Verifier", "VerifierSettings"]
