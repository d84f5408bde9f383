"""Shared Signals: a CAEP ``session-revoked`` Security Event Token (RFC 8417), pushed per
RFC 8935.

The SET has ``typ: secevent+jwt`` and is signed with the keyset's signing key (the JWKS
verifies it); it is POSTed as ``application/secevent+jwt`` and only a 202 means accepted (a
400 carries an RFC 8935 error object: refused for good). Claims: ``iss``, ``aud`` (the
receiver's audience), ``iat``, ``jti`` (the same for every retry), ``sub_id`` and ``events``
with the ``session-revoked`` member (``event_timestamp``: when the revocation happened;
``initiating_entity`` and ``reason_admin``/``reason_user`` from the event's reason):

- a ``session`` revocation: ``sub_id`` ``{"format": "opaque", "id": <sid>}``;
- a ``subject`` revocation: ``sub_id`` ``{"format": "iss_sub", "iss": <issuer>, "sub": <sub>}``;
- ``token`` and ``all`` revocations: nothing (CAEP has no event for one access token, nor
  for everyone).
"""

from __future__ import annotations

from typing import Any, Final

from sessiond.events import Revocation, SessionRevoked, SubjectRevoked
from sessiond.receivers.models import Receiver
from sessiond.receivers.outgoing import INITIATED_BY, Outgoing, reason_text, signed, token_claims
from sessiond.tokens.keys import SigningKey

SET_TYPE: Final = "secevent+jwt"
SESSION_REVOKED: Final = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
CONTENT_TYPE: Final = "application/secevent+jwt"


def set_claims(
    event: Revocation, receiver: Receiver, issuer: str, now: float
) -> dict[str, Any] | None:
    """The claims of ``event``'s SET, or ``None`` if it has none."""
    if isinstance(event, SessionRevoked):
        subject: dict[str, str] = {"format": "opaque", "id": event.sid}
    elif isinstance(event, SubjectRevoked):
        subject = {"format": "iss_sub", "iss": issuer, "sub": event.sub}
    else:
        return None
    revoked: dict[str, Any] = {"event_timestamp": int(event.at)}
    text = reason_text(event)
    if event.reason_code is not None:
        revoked["initiating_entity"] = INITIATED_BY[event.reason_code]
    if text is not None:
        revoked["reason_admin"] = {"en": text}
        revoked["reason_user"] = {"en": text}
    return token_claims(
        event, receiver, issuer, now, sub_id=subject, events={SESSION_REVOKED: revoked}
    )


def set_request(
    event: Revocation, receiver: Receiver, key: SigningKey, issuer: str, now: float
) -> Outgoing | None:
    """The RFC 8935 push of ``event``'s SET to ``receiver``, or ``None`` if it has none."""
    claims = set_claims(event, receiver, issuer, now)
    if claims is None:
        return None
    return Outgoing(
        body=signed(claims, key, SET_TYPE).encode("ascii"),
        headers={"Content-Type": CONTENT_TYPE, "Accept": "application/json"},
        accepted=frozenset({202}),
    )
