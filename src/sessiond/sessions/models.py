"""The session record: what the store keeps for each signed-in device."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import msgspec


class Device(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What the login backend told us about the device a session belongs to."""

    label: str | None = None
    user_agent: str | None = None
    ip: str | None = None


class Authentication(msgspec.Struct, kw_only=True, frozen=True):
    """How the subject authenticated, as the login backend says (OpenID Connect ``acr``,
    ``amr`` and ``auth_time``; ``None`` for ``auth_time``: now)."""

    acr: str | None = None
    amr: tuple[str, ...] = ()
    auth_time: float | None = None


class RefreshState(msgspec.Struct, kw_only=True, frozen=True):
    """Hashes of the session's refresh tokens; plaintext tokens are never stored.

    ``successor_box`` is the current secret masked with a pad derived from the previous
    secret: only a client that still holds the previous token can unmask it, which is how a
    retry inside the grace window gets the same successor without the store keeping it.
    ``retired`` keeps the hashes of older generations so that their reuse is recognised as
    theft rather than as a random guess.
    """

    hash: str
    generation: int = 0
    previous_hash: str | None = None
    successor_box: str | None = None
    rotated_at: float | None = None
    retired: tuple[str, ...] = ()


#: The ``client_id`` of a session stored before sessions recorded the credential that made them.
UNKNOWN_CLIENT = "unknown"


class Session(msgspec.Struct, kw_only=True, frozen=True):
    """One session: a subject signed in on one device."""

    sid: str
    sub: str
    created_at: float
    last_seen_at: float
    idle_expires_at: float
    expires_at: float
    refresh: RefreshState
    device: Device = Device()
    data: dict[str, Any] = {}
    claims: dict[str, Any] = {}
    scope: str | None = None
    #: The id of the service credential that created this session: the RFC 9068 ``client_id``
    #: of its access tokens (:data:`UNKNOWN_CLIENT` in records stored before it was kept).
    client_id: str = UNKNOWN_CLIENT
    #: How the subject authenticated, as the login backend said: the ``acr``, ``amr`` and
    #: ``auth_time`` (OpenID Connect) its access tokens carry; raised in place by a step-up.
    acr: str | None = None
    amr: tuple[str, ...] = ()
    auth_time: float | None = None
    #: Bumped by every change of ``data``: its ETag (``PATCH /v1/sessions/{sid}``).
    data_version: int = 0
    #: This session's own idle lifetime in seconds, if it asked for one (else the setting's).
    idle_ttl: int | None = None
    #: The RFC 7638 thumbprint of the client key the session is bound to (DPoP, RFC 9449):
    #: its access tokens carry it as ``cnf.jkt``, and a refresh needs a proof by that key.
    jkt: str | None = None

    @property
    def authenticated_at(self) -> float:
        """When the subject last authenticated: ``auth_time``, or the sign-in."""
        return self.created_at if self.auth_time is None else self.auth_time

    @property
    def ends_at(self) -> float:
        """When the session dies unless refreshed: the earlier of idle and absolute expiry."""
        return min(self.idle_expires_at, self.expires_at)

    def alive(self, now: float) -> bool:
        return now < self.ends_at


SID_PATTERN = "^[0-9a-f]{32}$"


def new_session_id(sub: str) -> str:
    """A fresh session id whose first 8 hex digits hash the subject.

    The prefix is the Redis Cluster hash tag shared by a subject's sessions and its index, so
    every multi-key change stays in one slot while a session is still found by its id alone.
    """
    return subject_tag(sub) + secrets.token_hex(12)


def subject_tag(sub: str) -> str:
    return hashlib.sha256(sub.encode()).hexdigest()[:8]
