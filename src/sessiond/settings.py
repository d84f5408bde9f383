"""The one settings object, read from ``SESSIOND_*`` environment variables once at start.

Every field is ``SESSIOND_<FIELD NAME IN UPPER CASE>``; the CLI flags of ``sessiond serve``
override the environment. A wrong or unknown value raises :class:`ConfigError` whose message
names the variable and what it expects.

Defaults follow the NIST SP 800-63B AAL2 profile that Keycloak-style deployments use: access
tokens live 5 minutes, a session dies after 1 hour without a refresh and after 24 hours in any
case. Leaving ``redis_url`` unset selects the embedded single-process mode.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, get_args, get_type_hints
from urllib.parse import urlsplit

import msgspec

from sessiond.errors import ConfigError

PREFIX = "SESSIOND_"
S = TypeVar("S", bound=msgspec.Struct)
#: Seconds the revocation stream keeps events beyond the longest token lifetime plus leeway.
STREAM_AGE_MARGIN = 60
#: Seconds the deliveries' copy keeps an event beyond its retry budget: a backlog of events
#: past the budget still gets its last attempts (one request timeout each) before they age out.
DELIVERY_RETENTION_MARGIN = 3600

Seconds = Annotated[int, msgspec.Meta(ge=1, le=10 * 365 * 86400)]
Bytes = Annotated[int, msgspec.Meta(ge=256, le=64 * 1024 * 1024)]
Algorithm = Literal["ES256", "EdDSA", "RS256", "HS256"]
StalePolicy = Literal["fail_closed", "fallback", "fail_open"]
LogLevel = Literal["debug", "info", "warning", "error"]
CookieMode = Literal["off", "refresh", "both"]
SameSite = Literal["strict", "lax"]
# Types of the settings the service and a backend's verifier share (same names, same meaning).
StreamName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
SubjectPrefix = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")]
Name = Annotated[str, msgspec.Meta(min_length=1)]
AccessTtl = Annotated[int, msgspec.Meta(ge=1, le=86400)]
Leeway = Annotated[int, msgspec.Meta(ge=0, le=300)]
Budget = Annotated[float, msgspec.Meta(gt=0, le=60)]
#: Unsigned revocation events stored before this Unix time still apply (0: none do).
UnsignedBefore = Annotated[float, msgspec.Meta(ge=0)]
DEFAULT_STREAM = "SESSIOND_REVOCATIONS"
DEFAULT_SUBJECT = "sessiond.revocations"
#: Hits allowed per ``rate_window`` seconds (0: no limit).
RateLimit = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
#: One token of a NATS subject: a follower's receipts go to ``<prefix>-applied.<identity>``.
Identity = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Secret = Annotated[str, msgspec.Meta(min_length=1)]
#: One ``acr`` value: visible ASCII but ``"``, ``,`` and ``\\`` (it goes into RFC 9470 challenges).
ACR_PATTERN = r"[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+"
#: Authentication context classes (``acr`` values), weakest first, comma-separated.
AcrLevels = Annotated[str, msgspec.Meta(pattern=f"^({ACR_PATTERN}(,{ACR_PATTERN})*)?$")]
#: How old a DPoP proof may be (its ``iat``), in seconds: also how long its ``jti`` is remembered.
DpopMaxAge = Annotated[int, msgspec.Meta(ge=1, le=600)]
#: An http(s) URL without query or fragment: where clients reach a server (behind its proxy).
PublicUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")]
#: The secret the replicas derive their DPoP nonces from (an HMAC key: 32 characters or more).
NonceSecret = Annotated[str, msgspec.Meta(min_length=32)]
ANONYMOUS = "anonymous"


#: The scheme of a Redis URL that names Sentinels instead of Redis itself.
SENTINEL_SCHEME = "redis+sentinel"


class SentinelLocation(msgspec.Struct, frozen=True):
    """Where Sentinel says the master is: the Sentinels' addresses, the master's name (as
    in ``sentinel monitor <name> ...``) and the database number."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0


def sentinel_location(url: str) -> SentinelLocation | None:
    """The Sentinels of a ``redis+sentinel://host:port[,host:port...]/<master>[/<db>]`` URL;
    ``None`` for any other URL, ``ValueError`` naming SESSIOND_REDIS_URL if it is malformed."""
    scheme, _, rest = url.partition("://")
    if scheme != SENTINEL_SCHEME:
        return None
    hosts, _, path = rest.partition("/")
    master, _, db = path.partition("/")
    form = f"{SENTINEL_SCHEME}://host:port[,host:port...]/<master>[/<db>]"
    match = [re.fullmatch(r"([^:,@/]+):(\d{1,5})", host) for host in hosts.split(",")]
    if not all(match) or not re.fullmatch(r"[^/?#]+", master) or not re.fullmatch(r"\d*", db):
        raise ValueError(f"SESSIOND_REDIS_URL: expected {form}, not {url!r}")
    sentinels = tuple((m.group(1), int(m.group(2))) for m in match if m is not None)
    return SentinelLocation(sentinels, master, int(db or 0))


class NatsClientSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How a process authenticates to NATS and checks its certificate; the service, the relay
    and a backend's verifier share these settings."""

    #: Credentials: at most one of user and password, token, ``.creds`` file, nkey seed file.
    nats_user: Name | None = None
    nats_password: Secret | None = None
    nats_token: Secret | None = None
    nats_creds_file: str | None = None
    nats_nkey_file: str | None = None
    #: The token of the receipts subject this follower publishes on; default: the NATS user.
    nats_identity: Identity | None = None
    nats_tls_ca: str | None = None
    nats_tls_cert: str | None = None
    nats_tls_key: str | None = None

    def __post_init__(self) -> None:
        if (self.nats_user is None) != (self.nats_password is None):
            raise ValueError("SESSIOND_NATS_USER and SESSIOND_NATS_PASSWORD go together")
        methods = [
            name
            for name, value in (
                ("SESSIOND_NATS_USER", self.nats_user),
                ("SESSIOND_NATS_TOKEN", self.nats_token),
                ("SESSIOND_NATS_CREDS_FILE", self.nats_creds_file),
                ("SESSIOND_NATS_NKEY_FILE", self.nats_nkey_file),
            )
            if value is not None
        ]
        if len(methods) > 1:
            raise ValueError(
                f"{' and '.join(methods)}: set one NATS credential (user and password, token, "
                ".creds file or nkey seed file), not several"
            )
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise ValueError("SESSIOND_NATS_TLS_CERT and SESSIOND_NATS_TLS_KEY go together")

    @property
    def nats_client_identity(self) -> str:
        """:attr:`nats_identity`, else the NATS user, else ``anonymous``."""
        return self.nats_identity or self.nats_user or ANONYMOUS


class Settings(NatsClientSettings, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Validated configuration of one sessiond process."""

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    redis_url: str | None = None
    redis_username: Name | None = None
    redis_password: Name | None = None
    redis_tls_ca: str | None = None
    redis_tls_cert: str | None = None
    redis_tls_key: str | None = None
    redis_sentinel_password: Secret | None = None
    nats_url: str | None = None
    nats_stream: StreamName = DEFAULT_STREAM
    nats_subject: SubjectPrefix = DEFAULT_SUBJECT
    nats_replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    publish_budget: Budget = 10.0
    staleness_budget: Budget = 1.0
    stale_policy: StalePolicy = "fail_closed"
    unsigned_events_before: UnsignedBefore = 0.0
    issuer: Name = "sessiond"
    audience: Name = "sessiond"
    access_ttl: AccessTtl = 300
    refresh_idle_ttl: Seconds = 3600
    refresh_absolute_ttl: Seconds = 86400
    refresh_grace: Annotated[float, msgspec.Meta(ge=0, le=300)] = 10.0
    session_limit: Annotated[int, msgspec.Meta(ge=0)] = 0
    session_max_idle_ttl: Seconds = 3600
    session_max_absolute_ttl: Seconds = 86400
    acr_levels: AcrLevels = ""
    keyset_file: str | None = None
    key_algorithm: Algorithm = "ES256"
    credentials_file: str | None = None
    receivers_file: str | None = None
    delivery_retention: Seconds = 3 * 86400
    delivery_retry_budget: Seconds = 86400
    leeway: Leeway = 5
    max_body_bytes: Bytes = 64 * 1024
    max_token_bytes: Bytes = 8 * 1024
    max_data_bytes: Bytes = 4 * 1024
    max_header_bytes: Bytes = 32 * 1024
    max_header_field_bytes: Bytes = 24 * 1024
    max_json_depth: Annotated[int, msgspec.Meta(ge=2, le=1024)] = 32
    max_custom_claims: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 32
    rate_window: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0
    rate_sessions_per_subject: RateLimit = 30
    rate_sessions_per_client: RateLimit = 60_000
    rate_refresh_per_session: RateLimit = 30
    rate_revocations_per_client: RateLimit = 6_000
    rate_introspections_per_client: RateLimit = 60_000
    cookie_mode: CookieMode = "off"
    cookie_samesite: SameSite = "strict"
    console: Literal["on", "off"] = "on"
    log_level: LogLevel = "info"
    dpop_max_age: DpopMaxAge = 60
    public_url: PublicUrl | None = None
    dpop_login_url: PublicUrl | None = None
    dpop_nonce_secret: NonceSecret | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.refresh_idle_ttl > self.refresh_absolute_ttl:
            raise ValueError(
                "SESSIOND_REFRESH_IDLE_TTL must not exceed SESSIOND_REFRESH_ABSOLUTE_TTL"
            )
        if self.max_header_field_bytes > self.max_header_bytes:
            raise ValueError(
                "SESSIOND_MAX_HEADER_FIELD_BYTES must not exceed SESSIOND_MAX_HEADER_BYTES"
            )
        self._check_redis()
        if self.delivery_retention < self.delivery_retry_budget + DELIVERY_RETENTION_MARGIN:
            raise ValueError(
                f"SESSIOND_DELIVERY_RETENTION must exceed SESSIOND_DELIVERY_RETRY_BUDGET by "
                f"{DELIVERY_RETENTION_MARGIN} s or more (an event must outlive its last retry)"
            )
        if self.nats_url and not self.redis_url:
            raise ValueError(
                "SESSIOND_NATS_URL needs SESSIOND_REDIS_URL: revocations wait in a durable "
                "outbox in Redis until the stream has them"
            )
        if self.redis_url and not (self.keyset_file and self.credentials_file):
            raise ValueError(
                "SESSIOND_KEYSET_FILE and SESSIOND_CREDENTIALS_FILE are required with "
                "SESSIOND_REDIS_URL (every replica must sign and authenticate alike)"
            )

    def _check_redis(self) -> None:
        """The URL carries no password (it is logged), TLS files need ``rediss://``, a
        Sentinel URL names its Sentinels and master."""
        url = urlsplit(self.redis_url or "")
        sentinel = sentinel_location(self.redis_url or "")
        if url.scheme == "rediss+sentinel":
            raise ValueError("SESSIOND_REDIS_URL: Sentinel over TLS is not supported yet")
        if self.redis_sentinel_password is not None and sentinel is None:
            raise ValueError(f"SESSIOND_REDIS_SENTINEL_PASSWORD needs a {SENTINEL_SCHEME}:// URL")
        if url.password is not None:
            raise ValueError(
                "SESSIOND_REDIS_URL must not carry a password (the URL is logged): set "
                "SESSIOND_REDIS_USERNAME and SESSIOND_REDIS_PASSWORD instead"
            )
        if url.username:
            raise ValueError("SESSIOND_REDIS_URL: set the user in SESSIOND_REDIS_USERNAME")
        if self.redis_username is not None and self.redis_password is None:
            raise ValueError("SESSIOND_REDIS_USERNAME needs SESSIOND_REDIS_PASSWORD")
        if (self.redis_tls_cert is None) != (self.redis_tls_key is None):
            raise ValueError("SESSIOND_REDIS_TLS_CERT and SESSIOND_REDIS_TLS_KEY go together")
        tls = self.redis_tls_ca or self.redis_tls_cert
        if tls and url.scheme != "rediss":
            raise ValueError(
                "SESSIOND_REDIS_TLS_CA, SESSIOND_REDIS_TLS_CERT and SESSIOND_REDIS_TLS_KEY "
                "need a rediss:// SESSIOND_REDIS_URL"
            )

    @property
    def stream_max_age(self) -> int:
        """How long the stream keeps an event: as long as any token it matches can live."""
        return self.access_ttl + self.leeway + STREAM_AGE_MARGIN

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: one process, in-memory store and broadcast."""
        return self.redis_url is None

    @classmethod
    def load(
        cls, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Build settings from ``environ``'s ``SESSIOND_*`` variables plus explicit overrides."""
        return load_from_env(cls, environ, overrides)


def acr_order(levels: str) -> tuple[str, ...]:
    """The ``acr`` values of an :data:`AcrLevels` setting, weakest first."""
    return tuple(levels.split(",")) if levels else ()


def load_from_env(
    cls: type[S], environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> S:
    """Convert ``environ``'s ``SESSIOND_*`` variables (plus ``overrides``) to the Struct ``cls``.

    An unknown variable or a wrong value raises :class:`ConfigError` naming the variable.
    """
    raw: dict[str, Any] = {
        key[len(PREFIX) :].lower(): value
        for key, value in environ.items()
        if key.startswith(PREFIX) and value != ""
    }
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(raw) - set(cls.__struct_fields__))
    if unknown:
        raise ConfigError(f"{env_name(unknown[0])}: unknown setting")
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(cls, str(exc))) from None


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return PREFIX + field.upper()


def _explain(cls: type[msgspec.Struct], message: str) -> str:
    match = re.fullmatch(r"(.*) - at `\$\.(\w+)`", message)
    if match is None:
        return message
    field, problem = match.group(2), match.group(1)
    choices = get_args(get_type_hints(cls).get(field))
    if choices and all(isinstance(c, str) for c in choices):
        problem += f" (expected one of: {', '.join(choices)})"
    return f"{env_name(field)}: {problem}"
