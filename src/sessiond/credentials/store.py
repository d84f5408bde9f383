"""Service credentials and the set of them that a deployment trusts.

A credential is presented as ``Authorization: Bearer sdc_<id>_<secret>``: ``id`` (16 hex
characters) names the record, ``secret`` is 256 random bits in base64url. Only the SHA-256 of
the secret is stored, so the credentials file reveals no usable secret. The plaintext is shown
once, when the credential is issued, and is never logged nor put into an error message.

Credentials are stored as JSON (``CredentialSet.save``/``CredentialSet.load``) in a file of
mode 0600 that is replaced atomically.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Final, Literal, get_args

import msgspec

from sessiond.errors import ConfigError, InsufficientScope, InvalidCredential
from sessiond.files import read_json, write_json

__all__ = [
    "ALL_SCOPES",
    "PREFIX",
    "Credential",
    "CredentialSet",
    "Scope",
    "parse_scopes",
]

Scope = Literal[
    "sessions:create",
    "sessions:read",
    "sessions:revoke",
    "tokens:introspect",
    "receivers:manage",
    "console:admin",
]
ALL_SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)

#: The prefix of every presented credential (makes leaked ones easy to scan for).
PREFIX: Final = "sdc"
_ID_BYTES = 8  # 16 hex characters
_SECRET_BYTES = 32  # 256 bits, 43 base64url characters
_PRESENTED = re.compile(r"sdc_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", re.ASCII)
_MAX_PRESENTED = 128
_FILE_VERSION: Final = 1

_Id = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{16}$")]
_Hash = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_Scopes = Annotated[tuple[Scope, ...], msgspec.Meta(min_length=1)]


class Credential(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One service credential, as stored: no secret, only its hash.

    ``hash`` is the hex SHA-256 of the secret. A slow password hash (bcrypt, Argon2) would
    add nothing: the secret is 256 random bits, far beyond any brute force, so a fast hash
    that cannot be inverted is enough and keeps every authenticated request cheap.
    """

    id: _Id
    name: _Name
    scopes: _Scopes
    hash: _Hash
    created_at: float

    def has(self, scope: Scope) -> bool:
        """True if this credential carries ``scope``."""
        return scope in self.scopes

    def require(self, scope: Scope) -> None:
        """Raise :class:`InsufficientScope` unless this credential carries ``scope``."""
        if scope not in self.scopes:
            raise InsufficientScope(f"this credential lacks the {scope} scope", scope)


def parse_scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    """Validated scopes, deduplicated, in canonical order; :class:`ConfigError` on unknown."""
    wanted = {value.strip() for value in values if value.strip()}
    unknown = sorted(wanted.difference(ALL_SCOPES))
    if unknown:
        raise ConfigError(f"unknown scope {unknown[0]!r} (known: {', '.join(ALL_SCOPES)})")
    if not wanted:
        raise ConfigError(f"give at least one scope (known: {', '.join(ALL_SCOPES)})")
    return tuple(scope for scope in ALL_SCOPES if scope in wanted)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Compared against when the id is unknown, so both paths do the same work.
_DUMMY_HASH: Final = _digest("")


@dataclass(frozen=True, slots=True)
class CredentialSet:
    """An immutable set of credentials with unique ids."""

    credentials: tuple[Credential, ...] = ()
    _by_id: Mapping[str, Credential] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {credential.id: credential for credential in self.credentials}
        if len(by_id) != len(self.credentials):
            raise ConfigError("credentials: duplicate credential id")
        object.__setattr__(self, "_by_id", by_id)

    def issue(
        self, name: str, scopes: Iterable[str], now: float | None = None
    ) -> tuple[str, CredentialSet]:
        """A new credential: its plaintext (returned once, never stored) and the new set."""
        ident = secrets.token_hex(_ID_BYTES)
        while ident in self._by_id:
            ident = secrets.token_hex(_ID_BYTES)
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        try:
            credential = msgspec.convert(
                {
                    "id": ident,
                    "name": name,
                    "scopes": parse_scopes(scopes),
                    "hash": _digest(secret),
                    "created_at": time.time() if now is None else now,
                },
                Credential,
            )
        except msgspec.ValidationError as exc:
            raise ConfigError(f"credential: {exc}") from None
        return f"{PREFIX}_{ident}_{secret}", CredentialSet((*self.credentials, credential))

    @classmethod
    def ephemeral(cls) -> tuple[str, CredentialSet]:
        """A set of one credential with every scope, for the embedded single-process mode."""
        return cls().issue("embedded", ALL_SCOPES)

    def get(self, ident: str) -> Credential | None:
        """The credential with id ``ident``, if any."""
        return self._by_id.get(ident)

    def authenticate(self, presented: str) -> Credential:
        """The credential whose secret is ``presented``; :class:`InvalidCredential` otherwise.

        The secret's hash is compared in constant time. The presented value never appears in
        an error message.
        """
        match = (
            _PRESENTED.fullmatch(presented)
            if isinstance(presented, str) and len(presented) <= _MAX_PRESENTED
            else None
        )
        if match is None:
            raise InvalidCredential("malformed service credential")
        ident, secret = match.groups()
        credential = self._by_id.get(ident)
        expected = _DUMMY_HASH if credential is None else credential.hash
        if not hmac.compare_digest(_digest(secret), expected) or credential is None:
            raise InvalidCredential("unknown or invalid service credential")
        return credential

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CredentialSet:
        """Read a credentials file; any problem raises :class:`ConfigError` naming the file."""
        stored = read_json(path, _CredentialsFile, _WHAT)
        try:
            return cls(tuple(stored.credentials))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.detail}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write this set atomically to ``path`` with mode 0600."""
        write_json(
            path, _CredentialsFile(version=_FILE_VERSION, credentials=list(self.credentials)), _WHAT
        )


_WHAT = "credentials file"


class _CredentialsFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    version: Literal[1]
    credentials: list[Credential]
