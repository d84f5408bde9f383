"""Revocation events: what one replica tells every other replica, versioned JSON on the wire.

Each event is one msgspec Struct, tagged by ``kind``. ``id`` is unique per revocation and
doubles as the JetStream message id, so a replayed or retried event is harmless.
``expires_at`` is when every token the event can match has expired: a denylist drops the
entry then (I5). Tokens issued in the same second as a subject or global not-before are
rejected too: JWT ``iat`` has one-second resolution and we err on the side of rejecting.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

VERSION = 1

Reason = Annotated[str, msgspec.Meta(max_length=200)]


class _Event(msgspec.Struct, kw_only=True, frozen=True, tag_field="kind"):
    id: str
    at: float
    reason: Reason | None = None
    v: int = VERSION


class TokenRevoked(_Event, tag="token", frozen=True):
    """One access token, by ``jti``."""

    jti: str
    expires_at: float


class SessionRevoked(_Event, tag="session", frozen=True):
    """Every access token of one session, by ``sid``."""

    sid: str
    expires_at: float


class SubjectRevoked(_Event, tag="subject", frozen=True):
    """Every access token of ``sub`` issued at or before ``not_before``."""

    sub: str
    not_before: int
    expires_at: float


class AllRevoked(_Event, tag="all", frozen=True):
    """Every access token issued at or before ``not_before``: emergencies, key compromise."""

    not_before: int


Revocation = TokenRevoked | SessionRevoked | SubjectRevoked | AllRevoked
Kind = Literal["token", "session", "subject", "all"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Revocation)


def kind_of(event: Revocation) -> Kind:
    kind: Kind = type(event).__struct_config__.tag  # type: ignore[assignment]
    return kind


def new_event_id() -> str:
    return uuid.uuid4().hex


def encode(event: Revocation) -> bytes:
    return _encoder.encode(event)


def decode(payload: bytes) -> Revocation:
    """Parse one event; raises ``msgspec.ValidationError``/``DecodeError`` on a bad payload."""
    event: Revocation = _decoder.decode(payload)
    return event
