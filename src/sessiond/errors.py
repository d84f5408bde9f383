"""Every error a user of sessiond can meet, as one tree.

Each class carries a stable problem ``type`` (RFC 9457), a title and an HTTP status, so
the API turns any of them into ``application/problem+json`` and the CLI into one line::

    SessiondError                       500 internal
    ├── ConfigError                     (start-up only: the CLI prints it and exits 2)
    ├── BadRequest                      400 bad-request
    │   ├── InvalidGrant                400 invalid-grant   (refresh token unknown, expired, reused)
    │   ├── ClaimNotAllowed             400 claim-not-allowed
    │   ├── TooManyClaims               400 too-many-claims
    │   └── JsonTooDeep                 400 json-too-deep
    ├── AuthenticationFailed            401 unauthenticated
    │   ├── InvalidToken                401 invalid-token
    │   │   └── TokenRevoked            401 token-revoked
    │   └── InvalidCredential           401 invalid-credential
    ├── InsufficientScope               403 insufficient-scope
    ├── CsrfRejected                    403 csrf   (cookie-authenticated request without CSRF proof)
    ├── NotFound                        404 not-found
    │   └── SessionNotFound             404 session-not-found
    ├── MethodNotAllowed                405 method-not-allowed
    ├── PayloadTooLarge                 413 payload-too-large
    ├── RateLimited                     429 rate-limited    (with Retry-After)
    ├── HeadersTooLarge                 431 headers-too-large
    └── Unavailable                     503 unavailable
        ├── StoreUnavailable            503 store-unavailable
        ├── BroadcastUnavailable        503 broadcast-unavailable
        └── DenylistStale               503 denylist-stale
"""

from __future__ import annotations

from typing import ClassVar

PROBLEM_BASE = "urn:sessiond:problem:"


class SessiondError(Exception):
    """Base of every sessiond error; ``detail`` is safe to show to the caller."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug


class ConfigError(SessiondError):
    slug = "config"
    title = "Invalid configuration"


class BadRequest(SessiondError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class InvalidGrant(BadRequest):
    """OAuth 2.0 ``invalid_grant`` (RFC 6749 section 5.2): the refresh token is not usable."""

    slug = "invalid-grant"
    title = "Invalid refresh token"


class ClaimNotAllowed(BadRequest):
    slug = "claim-not-allowed"
    title = "Claim not allowed"


class TooManyClaims(BadRequest):
    slug = "too-many-claims"
    title = "Too many custom claims"


class JsonTooDeep(BadRequest):
    slug = "json-too-deep"
    title = "JSON nested too deeply"


class AuthenticationFailed(SessiondError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"


class InvalidToken(AuthenticationFailed):
    slug = "invalid-token"
    title = "Invalid access token"


class TokenRevoked(InvalidToken):
    slug = "token-revoked"
    title = "Access token revoked"


class InvalidCredential(AuthenticationFailed):
    slug = "invalid-credential"
    title = "Invalid service credential"


class InsufficientScope(SessiondError):
    status = 403
    slug = "insufficient-scope"
    title = "Insufficient scope"


class CsrfRejected(SessiondError):
    """A cookie-authenticated state change without ``X-Sessiond-CSRF: 1`` or from another site."""

    status = 403
    slug = "csrf"
    title = "Cross-site request refused"


class NotFound(SessiondError):
    status = 404
    slug = "not-found"
    title = "Not found"


class SessionNotFound(NotFound):
    slug = "session-not-found"
    title = "Session not found"


class MethodNotAllowed(SessiondError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class PayloadTooLarge(SessiondError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class RateLimited(SessiondError):
    """Over a rate limit; ``retry_after`` is whole seconds (at least 1) until it may pass."""

    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class HeadersTooLarge(SessiondError):
    status = 431
    slug = "headers-too-large"
    title = "Request header fields too large"


class Unavailable(SessiondError):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"


class StoreUnavailable(Unavailable):
    slug = "store-unavailable"
    title = "Session store unavailable"


class BroadcastUnavailable(Unavailable):
    slug = "broadcast-unavailable"
    title = "Revocation stream unavailable"


class DenylistStale(Unavailable):
    slug = "denylist-stale"
    title = "Revocation list is not current"
