"""The settings of a verifier in a resource backend, read from ``SESSIOND_*`` like the service's.

The names and meanings that both have (issuer, audience, leeway, stream, staleness budget and
policy, token size, access-token lifetime) are the same, so a backend and the authority are
configured with the same values. What only a backend has: where the keys come from
(``SESSIOND_JWKS_URL``, or ``SESSIOND_KEYSET_FILE`` for a backend that shares the key file)
and the token cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from sessiond.settings import (
    DEFAULT_STREAM,
    DEFAULT_SUBJECT,
    AccessTtl,
    AcrLevels,
    Budget,
    Bytes,
    DpopMaxAge,
    Leeway,
    Name,
    NatsClientSettings,
    NonceSecret,
    PublicUrl,
    StalePolicy,
    StreamName,
    SubjectPrefix,
    UnsignedBefore,
    load_from_env,
)
from sessiond.verifier.cache import DEFAULT_SIZE


class VerifierSettings(NatsClientSettings, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Validated configuration of one verifier (one backend process)."""

    jwks_url: str | None = None
    keyset_file: str | None = None
    nats_url: str | None = None
    nats_stream: StreamName = DEFAULT_STREAM
    nats_subject: SubjectPrefix = DEFAULT_SUBJECT
    issuer: Name = "sessiond"
    audience: Name = "sessiond"
    access_ttl: AccessTtl = 300
    leeway: Leeway = 5
    staleness_budget: Budget = 1.0
    #: ``fallback`` asks a session store, which a backend does not have: pass a
    #: ``session_exists`` to :meth:`~sessiond.verifier.engine.Verifier.from_settings`.
    stale_policy: StalePolicy = "fail_closed"
    unsigned_events_before: UnsignedBefore = 0.0
    max_token_bytes: Bytes = 8 * 1024
    token_cache_size: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = DEFAULT_SIZE
    jwks_cooldown: Annotated[float, msgspec.Meta(ge=0.1, le=3600)] = 10.0
    jwks_refresh: Annotated[float, msgspec.Meta(ge=1, le=86400)] = 300.0
    dpop_max_age: DpopMaxAge = 60
    public_url: PublicUrl | None = None
    dpop_nonce_secret: NonceSecret | None = None
    acr_levels: AcrLevels = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.jwks_url is None) == (self.keyset_file is None):
            raise ValueError("set exactly one of SESSIOND_JWKS_URL and SESSIOND_KEYSET_FILE")
        if self.jwks_url is not None and urlsplit(self.jwks_url).scheme not in ("http", "https"):
            raise ValueError("SESSIOND_JWKS_URL must be an http:// or https:// URL")
        if self.nats_url is None:
            raise ValueError(
                "SESSIOND_NATS_URL is required: without the revocation stream a verifier "
                "would accept revoked tokens until they expire"
            )

    @classmethod
    def load(
        cls, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
    ) -> VerifierSettings:
        """Build settings from ``environ``'s ``SESSIOND_*`` variables plus explicit overrides."""
        return load_from_env(cls, environ, overrides)
