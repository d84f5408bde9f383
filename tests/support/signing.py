"""Signed revocation events for tests: a keyset that signs them and a verifier that trusts it."""

from __future__ import annotations

import time
from typing import Any

from sessiond.broadcast.signing import SIGNATURE_HEADER, EventSigner, EventVerifier
from sessiond.broadcast.stream import MSG_ID_HEADER
from sessiond.events import Revocation, encode
from sessiond.tokens.keys import Keyset
from sessiond.verifier.keys import LocalKeys

#: The authority of the tests that run buses without a sessiond service.
KEYSET = Keyset.generate("ES256")
#: How long a retired key still verifies in these tests' verifiers.
RETAIN = 3600.0


def verifier(keyset: Keyset = KEYSET, *, unsigned_before: float = 0.0) -> EventVerifier:
    """A verifier that trusts ``keyset``'s keys."""
    return EventVerifier(LocalKeys(keyset), retain=RETAIN, unsigned_before=unsigned_before)


def signer(keyset: Keyset = KEYSET) -> EventSigner:
    return EventSigner(lambda: keyset)


def bus_signing(keyset: Keyset = KEYSET) -> dict[str, Any]:
    """The ``verifier`` and ``signer`` keywords of a ``JetStreamBus`` that signs with
    ``keyset``."""
    return {"verifier": verifier(keyset), "signer": signer(keyset)}


def signed_headers(event: Revocation, keyset: Keyset = KEYSET) -> dict[str, str]:
    """The headers the authority publishes ``event`` with."""
    signature = signer(keyset).sign(encode(event), time.time())
    return {MSG_ID_HEADER: event.id, SIGNATURE_HEADER: signature}
