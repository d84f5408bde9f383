"""The wire format of each receiver kind: what a receiver is sent for an event."""

from __future__ import annotations

from sessiond.events import Revocation, kind_of
from sessiond.receivers.backchannel import logout_request
from sessiond.receivers.models import Receiver
from sessiond.receivers.outgoing import Outgoing
from sessiond.receivers.ssf import set_request
from sessiond.receivers.webhook import webhook_request
from sessiond.tokens.keys import Keyset


def outgoing(
    event: Revocation, receiver: Receiver, keyset: Keyset, issuer: str, now: float
) -> Outgoing | None:
    """The request telling ``receiver`` about ``event``; ``None`` if it does not want it or
    its format cannot say it (see each format's module)."""
    if not receiver.wants(kind_of(event)):
        return None
    if receiver.kind == "webhook":
        return webhook_request(event, receiver, now)
    key = keyset.signing_key(now)
    if receiver.kind == "ssf":
        return set_request(event, receiver, key, issuer, now)
    return logout_request(event, receiver, key, issuer, now)
