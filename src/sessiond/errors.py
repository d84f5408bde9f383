"""Every error a user of sessiond can meet, as one tree.

Each class carries a stable problem ``type`` (RFC 9457), a title and an HTTP status, so
the API turns any of them into ``application/problem+json`` and the CLI into one line::

    SessiondError                       500 internal
    ├── ConfigError                     (start-up only: the CLI prints it and exits 2)
    ├── BadRequest                      400 bad-request
    │   ├── InvalidRequest              400 bad-request     (an OAuth endpoint's parameter missing)
    │   ├── UnsupportedGrantType        400 bad-request     (a grant_type but refresh_token)
    │   ├── InvalidGrant                400 invalid-grant   (refresh token unknown, expired, reused)
    │   ├── ClaimNotAllowed             400 claim-not-allowed
    │   ├── TooManyClaims               400 too-many-claims
    │   ├── DpopProofRefused            400 invalid-dpop-proof (a token request's DPoP proof)
    │   │   └── DpopNonceRequired       400 use-dpop-nonce  (with DPoP-Nonce)
    │   └── JsonTooDeep                 400 json-too-deep
    ├── AuthenticationFailed            401 unauthenticated
    │   ├── InvalidToken                401 invalid-token
    │   │   ├── UnknownSigningKey       401 invalid-token   (a verifier fetches the JWKS again)
    │   │   ├── RevokedToken            401 token-revoked
    │   │   └── DpopTokenMisused        401 invalid-token   (a DPoP-bound token as Bearer, ...)
    │   ├── InvalidDpopProof            401 invalid-dpop-proof (RFC 9449, with a DPoP challenge)
    │   │   └── UseDpopNonce            401 use-dpop-nonce  (with DPoP-Nonce)
    │   ├── InvalidCredential           401 invalid-credential
    │   └── InsufficientUserAuthentication 401 insufficient-user-authentication (RFC 9470)
    ├── InsufficientScope               403 insufficient-scope
    ├── CsrfRejected                    403 csrf   (cookie-authenticated request without CSRF proof)
    ├── NotFound                        404 not-found
    │   ├── SessionNotFound             404 session-not-found
    │   └── ReceiverNotFound            404 receiver-not-found
    ├── Conflict                        409 conflict   (a receiver id taken, or read-only)
    ├── MethodNotAllowed                405 method-not-allowed
    ├── PreconditionFailed              412 precondition-failed (If-Match names another version)
    ├── PayloadTooLarge                 413 payload-too-large
    ├── PreconditionRequired            428 precondition-required (a change without If-Match)
    ├── RateLimited                     429 rate-limited    (with Retry-After)
    ├── HeadersTooLarge                 431 headers-too-large
    └── Unavailable                     503 unavailable
        ├── StoreUnavailable            503 store-unavailable
        ├── BroadcastUnavailable        503 broadcast-unavailable
        ├── DenylistStale               503 denylist-stale
        ├── KeysUnavailable             503 keys-unavailable (a verifier without the JWKS yet)
        └── ClockSkewed                 503 clock-skewed (this replica's clock is not Redis's)

:meth:`SessiondError.problem` and :meth:`SessiondError.headers` give the response, whichever
framework sends it (the service's Litestar app, or the verifier's ASGI middleware).
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

PROBLEM_BASE = "urn:sessiond:problem:"
PROBLEM_JSON = "application/problem+json"
#: The ``realm`` of every ``WWW-Authenticate`` challenge (RFC 6750 section 3).
REALM = "sessiond"
#: The algorithms a DPoP proof may use (asymmetric only, RFC 9449 section 4.2): the ``algs`` of
#: every DPoP challenge.
DPOP_ALGORITHMS = ("ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512", "RS256")


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem details document; ``error`` is the OAuth error code, if any."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    error: str | None = None
    errors: list[dict[str, Any]] | None = None
    #: ``token-revoked`` only: why the token was revoked (``logout``, ``forced``, ...), and
    #: the revocation's reason for people, if it had them.
    reason_code: str | None = None
    reason: str | None = None


class SessiondError(Exception):
    """Base of every sessiond error; ``detail`` is safe to show to the caller."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"
    #: The OAuth 2.0 ``error`` code this error stands for (RFC 6749, RFC 6750), if any.
    oauth_error: ClassVar[str | None] = None

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def problem(self, instance: str, invalid: list[dict[str, Any]] | None = None) -> Problem:
        """The problem details of this error for the resource ``instance``."""
        return Problem(
            type=self.type,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            error=self.oauth_error,
            errors=invalid,
        )

    def headers(self) -> dict[str, str]:
        """Response headers this error calls for (an authentication challenge, a retry time)."""
        return {}


class ConfigError(SessiondError):
    slug = "config"
    title = "Invalid configuration"


class BadRequest(SessiondError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class InvalidRequest(BadRequest):
    """OAuth 2.0 ``invalid_request`` (RFC 6749 section 5.2): a parameter of an OAuth endpoint
    (introspection, revocation) is missing or malformed."""

    oauth_error = "invalid_request"


class UnsupportedGrantType(BadRequest):
    """OAuth 2.0 ``unsupported_grant_type`` (RFC 6749 section 5.2): the token endpoint grants
    ``refresh_token`` only."""

    oauth_error = "unsupported_grant_type"


class InvalidGrant(BadRequest):
    """OAuth 2.0 ``invalid_grant`` (RFC 6749 section 5.2): the refresh token is not usable."""

    slug = "invalid-grant"
    title = "Invalid refresh token"
    oauth_error = "invalid_grant"


class ClaimNotAllowed(BadRequest):
    slug = "claim-not-allowed"
    title = "Claim not allowed"


class TooManyClaims(BadRequest):
    slug = "too-many-claims"
    title = "Too many custom claims"


class DpopProofRefused(BadRequest):
    """A sign-in or refresh whose DPoP proof is invalid: ``invalid_dpop_proof`` at a token
    endpoint is a 400 (RFC 9449 section 5)."""

    slug = "invalid-dpop-proof"
    title = "Invalid DPoP proof"
    oauth_error = "invalid_dpop_proof"


class DpopNonceRequired(DpopProofRefused):
    """:class:`UseDpopNonce` at sign-in or refresh: a 400 (RFC 9449 section 8)."""

    slug = "use-dpop-nonce"
    title = "DPoP nonce required"
    oauth_error = "use_dpop_nonce"

    def __init__(self, detail: str | None = None, nonce: str = "") -> None:
        super().__init__(detail)
        self.nonce = nonce

    def headers(self) -> dict[str, str]:
        return {"DPoP-Nonce": self.nonce}


class JsonTooDeep(BadRequest):
    slug = "json-too-deep"
    title = "JSON nested too deeply"


class AuthenticationFailed(SessiondError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": _challenge(self.oauth_error)}


class InvalidToken(AuthenticationFailed):
    slug = "invalid-token"
    title = "Invalid access token"
    oauth_error = "invalid_token"


class UnknownSigningKey(InvalidToken):
    """The token names a ``kid`` this verifier does not know (yet: it may look again)."""


class RevokedToken(InvalidToken):
    """A revoked token; ``reason_code`` and ``reason`` are its revocation's, if known: its
    problem carries them, and its challenge's ``error_description`` names the code, so that an
    app can tell its user why they were signed out."""

    slug = "token-revoked"
    title = "Access token revoked"

    def __init__(
        self,
        detail: str | None = None,
        *,
        reason_code: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason_code = reason_code
        self.reason = reason

    def problem(self, instance: str, invalid: list[dict[str, Any]] | None = None) -> Problem:
        return msgspec.structs.replace(
            super().problem(instance, invalid), reason_code=self.reason_code, reason=self.reason
        )

    def headers(self) -> dict[str, str]:
        if self.reason_code is None:
            return super().headers()
        # A code is a lower-case word: always a valid error_description (RFC 6750 3).
        description = f'error_description="token revoked: {self.reason_code}"'
        return {"WWW-Authenticate": f"{_challenge(self.oauth_error)}, {description}"}


class DpopTokenMisused(InvalidToken):
    """A DPoP-bound token sent as a bearer token, or an unbound one with the DPoP scheme
    (RFC 9449 section 7): the challenge asks for DPoP."""

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": _dpop_challenge(self.oauth_error)}


class InvalidDpopProof(AuthenticationFailed):
    """A request's DPoP proof is missing, malformed, stale, replayed or not by the token's key
    (RFC 9449 sections 4.3 and 7.1)."""

    slug = "invalid-dpop-proof"
    title = "Invalid DPoP proof"
    oauth_error = "invalid_dpop_proof"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": _dpop_challenge(self.oauth_error)}


class UseDpopNonce(InvalidDpopProof):
    """A proof without the server's current nonce (RFC 9449 section 9): the client retries
    with ``nonce``, which ``DPoP-Nonce`` carries."""

    slug = "use-dpop-nonce"
    title = "DPoP nonce required"
    oauth_error = "use_dpop_nonce"

    def __init__(self, detail: str | None = None, nonce: str = "") -> None:
        super().__init__(detail)
        self.nonce = nonce

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "DPoP-Nonce": self.nonce}


class InvalidCredential(AuthenticationFailed):
    slug = "invalid-credential"
    title = "Invalid service credential"


class InsufficientUserAuthentication(AuthenticationFailed):
    """The token is valid, but the subject's authentication is too weak or too old for this
    resource (RFC 9470): the challenge names the ``acr_values`` and ``max_age`` to step up to."""

    slug = "insufficient-user-authentication"
    title = "Insufficient user authentication"
    oauth_error = "insufficient_user_authentication"

    def __init__(
        self,
        detail: str | None = None,
        *,
        acr_values: tuple[str, ...] = (),
        max_age: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.acr_values = acr_values
        self.max_age = max_age

    def headers(self) -> dict[str, str]:
        params = [f'error_description="{self.detail}"']
        if self.acr_values:
            params.append(f'acr_values="{" ".join(self.acr_values)}"')
        if self.max_age is not None:
            params.append(f"max_age={self.max_age}")
        return {"WWW-Authenticate": ", ".join([_challenge(self.oauth_error), *params])}


class InsufficientScope(SessiondError):
    """The token is valid but lacks a scope; ``scope`` names the scopes needed (RFC 6750)."""

    status = 403
    slug = "insufficient-scope"
    title = "Insufficient scope"
    oauth_error = "insufficient_scope"

    def __init__(self, detail: str | None = None, scope: str | None = None) -> None:
        super().__init__(detail)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": _challenge(self.oauth_error, self.scope)}


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


class ReceiverNotFound(NotFound):
    slug = "receiver-not-found"
    title = "Receiver not found"


class Conflict(SessiondError):
    """The request contradicts what exists: a receiver id taken, a receiver of the file."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class MethodNotAllowed(SessiondError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class PreconditionFailed(SessiondError):
    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class PayloadTooLarge(SessiondError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class PreconditionRequired(SessiondError):
    status = 428
    slug = "precondition-required"
    title = "Precondition required"


class RateLimited(SessiondError):
    """Over a rate limit; ``retry_after`` is whole seconds (at least 1) until it may pass."""

    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


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


class KeysUnavailable(Unavailable):
    slug = "keys-unavailable"
    title = "Signing keys not loaded yet"


class ClockSkewed(Unavailable):
    """This replica's clock is too far from the session store's to sign, verify or revoke."""

    slug = "clock-skewed"
    title = "Clock out of step"


def _challenge(error: str | None, scope: str | None = None) -> str:
    params = [f'realm="{REALM}"']
    if error is not None:
        params.append(f'error="{error}"')
    if scope is not None:
        params.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(params)


def _dpop_challenge(error: str) -> str:
    algs = " ".join(DPOP_ALGORITHMS)
    return f'DPoP realm="{REALM}", error="{error}", algs="{algs}"'
