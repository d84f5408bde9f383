"""How this process signs in to NATS: its credentials, its TLS context and its identity.

:meth:`NatsAccess.from_settings` reads the ``SESSIOND_NATS_*`` credential and TLS settings once
at start (a missing file or a bad certificate is a :class:`~sessiond.errors.ConfigError` naming
the setting) and gives :func:`~sessiond.broadcast.stream.connect` its keyword arguments for
``nats.connect``. The service, the relay and a backend's verifier all connect through it.
"""

from __future__ import annotations

import importlib.util
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sessiond.errors import ConfigError
from sessiond.settings import ANONYMOUS, NatsClientSettings

#: What the log says when the server's certificate is not signed by the configured CA.
VERIFY_FAILED_HINT = (
    "NATS TLS: certificate verify failed; is SESSIOND_NATS_TLS_CA the CA that signed the "
    "server's certificate?"
)


@dataclass(frozen=True)
class NatsAccess:
    """The ``nats.connect`` options that authenticate this process, and the identity under
    which its follower publishes receipts (``<prefix>-applied.<identity>``)."""

    identity: str = ANONYMOUS
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # holds secrets

    @classmethod
    def from_settings(cls, settings: NatsClientSettings) -> NatsAccess:
        """Build the options, the TLS context included, once; raise ``ConfigError`` naming
        the setting whose file cannot be used."""
        options: dict[str, Any] = {}
        if settings.nats_user is not None:
            options.update(user=settings.nats_user, password=settings.nats_password)
        if settings.nats_token is not None:
            options["token"] = settings.nats_token
        if settings.nats_creds_file is not None:
            options["user_credentials"] = _readable("nats_creds_file", settings.nats_creds_file)
        if settings.nats_nkey_file is not None:
            options["nkeys_seed"] = _readable("nats_nkey_file", settings.nats_nkey_file)
        if ("user_credentials" in options or "nkeys_seed" in options) and (
            importlib.util.find_spec("nkeys") is None
        ):
            raise ConfigError(
                "SESSIOND_NATS_CREDS_FILE and SESSIOND_NATS_NKEY_FILE need the nkeys package "
                "(pip install 'nats-py[nkeys]')"
            )
        if settings.nats_tls_ca is not None or settings.nats_tls_cert is not None:
            options["tls"] = _tls_context(settings)
        return cls(identity=settings.nats_client_identity, options=options)


def _tls_context(settings: NatsClientSettings) -> ssl.SSLContext:
    """The server is checked against ``nats_tls_ca`` (else the system's CAs); the client
    presents ``nats_tls_cert`` if set."""
    try:
        context = ssl.create_default_context(cafile=settings.nats_tls_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"SESSIOND_NATS_TLS_CA: cannot load {settings.nats_tls_ca}: {exc}"
        ) from None
    if settings.nats_tls_cert is not None:
        try:
            context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"SESSIOND_NATS_TLS_CERT, SESSIOND_NATS_TLS_KEY: cannot load "
                f"{settings.nats_tls_cert}: {exc}"
            ) from None
    return context


def _readable(name: str, path: str) -> str:
    try:
        with open(path, "rb"):
            return path
    except OSError as exc:
        raise ConfigError(f"SESSIOND_{name.upper()}: cannot read {path}: {exc.strerror}") from None
