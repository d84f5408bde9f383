"""What one receiver is sent for one event: the HTTP request of its wire format, and which
answers count as delivered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

from sessiond.events import ReasonCode, Revocation
from sessiond.receivers.models import Receiver
from sessiond.tokens.keys import SigningKey

#: A private claim, in every logout token and SET, with the event's ``reason_code``.
REASON_CLAIM: Final = "reason_code"


@dataclass(frozen=True)
class Outgoing:
    """A POST to the receiver's endpoint: its body, headers and the statuses meaning success."""

    body: bytes
    headers: dict[str, str] = field(repr=False)
    accepted: frozenset[int]


def token_id(event: Revocation, receiver_id: str) -> str:
    """The ``jti`` of what ``receiver_id`` gets for ``event``: the same at every retry and
    redelivery (so the receiver can drop repeats), different for each receiver."""
    return uuid.uuid5(uuid.UUID(event.id), receiver_id).hex


def token_claims(
    event: Revocation, receiver: Receiver, issuer: str, now: float, **claims: Any
) -> dict[str, Any]:
    """The claims every logout token and SET has (``iss``, ``aud``, ``iat``, ``jti``, the
    reason code if any), and ``claims``."""
    common: dict[str, Any] = {
        "iss": issuer,
        "aud": receiver.audience,
        "iat": int(now),
        "jti": token_id(event, receiver.id),
        **claims,
    }
    if event.reason_code is not None:
        common[REASON_CLAIM] = event.reason_code
    return common


def signed(claims: dict[str, Any], key: SigningKey, typ: str) -> str:
    """The compact JWS of ``claims`` by ``key``, its header typed ``typ``."""
    headers = {"alg": key.alg, "kid": key.kid, "typ": typ}
    return jwt.encode(claims, key.private, algorithm=key.alg, headers=headers)


def reason_text(event: Revocation) -> str | None:
    """The reason for people: the event's text, else its code."""
    return event.reason or event.reason_code


#: Who started a revocation, by reason code, in CAEP's ``initiating_entity`` terms.
INITIATED_BY: Final[dict[ReasonCode, str]] = {
    "logout": "user",
    "password_change": "user",
    "forced": "admin",
    "admin": "admin",
    "session_limit": "policy",
    "refresh_reuse": "system",
    "key_compromise": "system",
}
