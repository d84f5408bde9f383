"""OpenID Connect Back-Channel Logout 1.0: the logout token a relying party gets.

A JWT with ``typ: logout+jwt``, signed with the keyset's signing key (the JWKS verifies it),
POSTed form-encoded as ``logout_token=...``; a 200 (any 2xx) means it was accepted. Claims:
``iss`` (``SESSIOND_ISSUER``), ``aud`` (the receiver's ``client_id``), ``iat``, ``exp``
(:data:`LIFETIME` later), ``jti`` (the same for every retry), ``events`` with the back-channel
logout member, no ``nonce``, and:

- a ``session`` revocation: ``sid`` (sessiond's session id, the ``sid`` of its access tokens);
- a ``subject`` revocation (every session of a user): ``sub``;
- ``token`` and ``all`` revocations: nothing is sent (one access token is not a relying
  party's session, and the specification has no "everyone").

A ``reason_code`` claim carries the event's reason code when it has one.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlencode

from sessiond.events import Revocation, SessionRevoked, SubjectRevoked
from sessiond.receivers.models import Receiver
from sessiond.receivers.outgoing import Outgoing, signed, token_claims
from sessiond.tokens.keys import SigningKey

LOGOUT_TOKEN_TYPE: Final = "logout+jwt"  # noqa: S105 (a media type, not a secret)
BACKCHANNEL_LOGOUT: Final = "http://schemas.openid.net/event/backchannel-logout"
#: Seconds a logout token is valid: it is sent at once, and made again for a retry.
LIFETIME: Final = 120


def logout_claims(
    event: Revocation, receiver: Receiver, issuer: str, now: float
) -> dict[str, Any] | None:
    """The claims of ``event``'s logout token, or ``None`` if it has none."""
    if isinstance(event, SessionRevoked):
        who = {"sid": event.sid}
    elif isinstance(event, SubjectRevoked):
        who = {"sub": event.sub}
    else:
        return None
    events: dict[str, object] = {BACKCHANNEL_LOGOUT: {}}
    return token_claims(event, receiver, issuer, now, exp=int(now) + LIFETIME, events=events, **who)


def logout_request(
    event: Revocation, receiver: Receiver, key: SigningKey, issuer: str, now: float
) -> Outgoing | None:
    """The POST of ``event``'s logout token to ``receiver``, or ``None`` if it has none."""
    claims = logout_claims(event, receiver, issuer, now)
    if claims is None:
        return None
    token = signed(claims, key, LOGOUT_TOKEN_TYPE)
    return Outgoing(
        body=urlencode({"logout_token": token}).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        accepted=frozenset(range(200, 300)),
    )
