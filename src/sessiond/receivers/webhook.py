"""Webhooks: the event as JSON, signed in the Standard Webhooks style.

The body::

    {"type": "revocation.<kind>", "timestamp": "<ISO 8601, UTC>",
     "data": <the event as on the stream: kind, id, at, sid/sub/jti/not_before, expires_at,
              reason, reason_code, v>}

and the headers ``webhook-id`` (the same for every retry: drop repeats by it),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` keyed by the base64 part of the
``whsec_`` secret). A receiver checks the signature and rejects timestamps more than a few
minutes away from its clock (replays). Any 2xx means accepted.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from typing import Any

import msgspec

from sessiond.events import Revocation, kind_of
from sessiond.receivers.models import Receiver
from sessiond.receivers.outgoing import Outgoing, token_id


def webhook_body(event: Revocation, now: float) -> bytes:
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {
        "type": f"revocation.{kind_of(event)}",
        "timestamp": stamp,
        "data": event,
    }
    return msgspec.json.encode(body)


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode("ascii")


def webhook_request(event: Revocation, receiver: Receiver, now: float) -> Outgoing:
    body = webhook_body(event, now)
    message_id = token_id(event, receiver.id)
    timestamp = int(now)
    return Outgoing(
        body=body,
        headers={
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(receiver.hmac_key(), message_id, timestamp, body),
        },
        accepted=frozenset(range(200, 300)),
    )
