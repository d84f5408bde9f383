"""What one receiver is sent for one event: the HTTP request of its wire format, and which
answers count as delivered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

from sessiond.events import ReasonCode, Revocation

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
