"""Revocation events: what one replica tells every other replica, versioned JSON on the wire.

Each event is one msgspec Struct, tagged by ``kind``. ``id`` is unique per revocation and
doubles as the JetStream message id, so a replayed or retried event is harmless.
``expires_at`` is when every token the event can match has expired: a denylist drops the
entry then (I5). Tokens issued in the same second as a subject or global not-before are
rejected too: JWT ``iat`` has one-second resolution and we err on the side of rejecting.

An event goes to subject ``<nats_subject>.<kind>``. Unknown fields are ignored (so fields can
be added within a version); an unknown ``kind`` cannot be decoded and counts as malformed.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

VERSION = 1

Reason = Annotated[
    str, msgspec.Meta(max_length=200, description="Free text for people; never acted on.")
]
ReasonCode = Annotated[
    Literal[
        "logout",
        "forced",
        "session_limit",
        "refresh_reuse",
        "password_change",
        "key_compromise",
        "admin",
    ],
    msgspec.Meta(
        description="Why, for machines, so an app can tell its user why they were signed out: "
        "logout (the user signed out), forced (a service signed the user out), session_limit "
        "(evicted by a newer sign-in over the per-subject limit), refresh_reuse (a rotated "
        "refresh token came back: theft suspected), password_change, key_compromise, admin "
        "(an operator or administrator). Absent on events from before it existed."
    ),
]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
EventId = Annotated[
    str,
    msgspec.Meta(
        pattern="^[0-9a-f]{32}$",
        description="Unique per revocation; also the JetStream Nats-Msg-Id header.",
    ),
]
EpochSeconds = Annotated[float, msgspec.Meta(ge=0, description="Unix time, seconds.")]
Expiry = Annotated[
    float,
    msgspec.Meta(
        ge=0,
        description="Unix time at which every token the event matches has expired, leeway "
        "included: drop the entry when now >= expires_at.",
    ),
]
NotBefore = Annotated[
    int,
    msgspec.Meta(ge=0, description="Unix time, whole seconds: reject tokens with iat <= it."),
]


class _Event(msgspec.Struct, kw_only=True, frozen=True, tag_field="kind"):
    id: EventId
    at: EpochSeconds
    reason: Reason | None = None
    reason_code: ReasonCode | None = None
    v: Annotated[int, msgspec.Meta(ge=1, description="Event format version.")] = VERSION


class TokenRevoked(_Event, tag="token", frozen=True):
    """One access token, by ``jti``."""

    jti: Key
    expires_at: Expiry


class SessionRevoked(_Event, tag="session", frozen=True):
    """Every access token of one session, by ``sid``."""

    sid: Key
    expires_at: Expiry


class SubjectRevoked(_Event, tag="subject", frozen=True):
    """Every access token of ``sub`` issued at or before ``not_before``."""

    sub: Key
    not_before: NotBefore
    expires_at: Expiry


class AllRevoked(_Event, tag="all", frozen=True):
    """Every access token issued at or before ``not_before``: emergencies, key compromise.

    It needs no ``expires_at``: it is one number, and once the stream forgets it (after the
    longest token lifetime) every token it matched has expired anyway.
    """

    not_before: NotBefore


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
