"""How this process signs in to NATS: its credentials, its TLS context and its identity.

:meth:`NatsAccess.from_settings` reads the ``SESSIOND_NATS_*`` credential and TLS settings once
at start (a missing file or a bad certificate is a :class:`~sessiond.errors.ConfigError` naming
the setting) and gives :func:`~sessiond.broadcast.stream.connect` its keyword arguments for
``nats.connect``. The service, the relay and a backend's verifier all connect through it.
An nkey seed or ``.creds`` file is checked here too: nats-py reads it again at every connect,
where a bad one would fail in a background task instead of at start.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nkeys

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
            options["user_credentials"] = _creds_file(settings.nats_creds_file)
        if settings.nats_nkey_file is not None:
            options["nkeys_seed"] = _nkey_file(settings.nats_nkey_file)
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


def _nkey_file(path: str) -> str:
    """A file holding one user's nkey seed (``SU...``), as ``nsc`` writes it."""
    _check_user_seed("SESSIOND_NATS_NKEY_FILE", path, _read("SESSIOND_NATS_NKEY_FILE", path))
    return path


def _creds_file(path: str) -> str:
    """A ``.creds`` file: a user JWT and that user's nkey seed, each on the line after its
    ``-----BEGIN ...-----`` marker (nats-py reads them so, and loops forever on a file without
    the JWT marker)."""
    lines = _read("SESSIOND_NATS_CREDS_FILE", path).splitlines()
    if not _after(lines, b"BEGIN NATS USER JWT"):
        raise ConfigError(f"SESSIOND_NATS_CREDS_FILE: {path} holds no NATS user JWT")
    _check_user_seed("SESSIOND_NATS_CREDS_FILE", path, _after(lines, b"BEGIN USER NKEY SEED"))
    return path


def _after(lines: list[bytes], marker: bytes) -> bytes:
    """The stripped line after the first line containing ``marker``, else empty."""
    for line, following in itertools.pairwise(lines):
        if marker in line:
            return following.strip()
    return b""


def _check_user_seed(setting: str, path: str, text: bytes) -> None:
    """Raise ``ConfigError`` unless ``text`` is a user's nkey seed; the message never holds
    the text, which is a secret."""
    try:
        prefix, _ = nkeys.decode_seed(text.strip())
    except (nkeys.NkeysError, ValueError):
        raise ConfigError(f"{setting}: {path} holds no nkey seed") from None
    if prefix != nkeys.PREFIX_BYTE_USER:
        raise ConfigError(f"{setting}: {path} holds an nkey seed that is not a user's (SU...)")


def _read(setting: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None
