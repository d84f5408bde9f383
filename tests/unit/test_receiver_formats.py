"""What each kind of receiver is sent, read by implementations nobody here wrote: joserfc
verifies logout tokens (OIDC Back-Channel Logout 1.0) and SETs (RFC 8417, CAEP) against the
JWKS, and the ``standardwebhooks`` library verifies webhook signatures."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
import standardwebhooks
from joserfc import jwt
from joserfc.jwk import KeySet

from sessiond.events import (
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
    new_event_id,
)
from sessiond.receivers.backchannel import BACKCHANNEL_LOGOUT, LIFETIME
from sessiond.receivers.formats import outgoing
from sessiond.receivers.models import Receiver, new_secret
from sessiond.receivers.outgoing import Outgoing
from sessiond.receivers.ssf import SESSION_REVOKED
from sessiond.tokens.keys import Keyset
from support.secrets import register

ISSUER = "https://auth.example.test"
NOW = time.time()
KEYSET = Keyset.generate("ES256", now=NOW - 10)
JWKS = KeySet.import_key_set(KEYSET.jwks(NOW, 3600))  # type: ignore[arg-type]


def session_event(**reason: Any) -> SessionRevoked:
    return SessionRevoked(
        id=new_event_id(), at=NOW - 1, sid="s" * 43, expires_at=NOW + 300, **reason
    )


def subject_event(**reason: Any) -> SubjectRevoked:
    return SubjectRevoked(
        id=new_event_id(),
        at=NOW - 1,
        sub="alice",
        not_before=int(NOW),
        expires_at=NOW + 300,
        **reason,
    )


def token_event() -> TokenRevoked:
    return TokenRevoked(id=new_event_id(), at=NOW, jti="j" * 22, expires_at=NOW + 300)


def all_event() -> AllRevoked:
    return AllRevoked(id=new_event_id(), at=NOW, not_before=int(NOW))


RP = Receiver(
    id="portal", kind="backchannel_logout", endpoint="https://rp.test/bcl", audience="portal-client"
)
SSF = Receiver(id="gateway", kind="ssf", endpoint="https://gw.test/ssf", audience="https://gw.test")


def webhook() -> tuple[Receiver, str]:
    secret = new_secret()
    register("webhook secret", secret)
    return Receiver(
        id="crm", kind="webhook", endpoint="https://crm.test/hook", secret=secret
    ), secret


def send(event: Revocation, receiver: Receiver) -> Outgoing:
    request = outgoing(event, receiver, KEYSET, ISSUER, NOW)
    assert request is not None
    return request


def decoded(token: str, typ: str) -> jwt.Token:
    token_ = jwt.decode(token, JWKS, algorithms=["ES256"])
    assert token_.header["typ"] == typ
    assert token_.header["kid"] == KEYSET.active.kid
    return token_


def logout_token(request: Outgoing) -> jwt.Token:
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.body.decode())
    assert list(form) == ["logout_token"]
    return decoded(form["logout_token"][0], "logout+jwt")


def test_a_session_revocation_is_a_logout_token_with_sid_for_the_client() -> None:
    event = session_event(reason="offboarded", reason_code="forced")
    token = logout_token(send(event, RP))
    essential: jwt.ClaimsOption = {"essential": True}
    jwt.JWTClaimsRegistry(
        now=int(NOW),  # the tokens are made at NOW, whenever the suite gets here
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": "portal-client"},
        sid={"essential": True, "value": event.sid},
        iat=essential,
        exp=essential,
        jti=essential,
    ).validate(token.claims)
    assert token.claims["events"] == {BACKCHANNEL_LOGOUT: {}}
    assert "nonce" not in token.claims
    assert "sub" not in token.claims
    assert token.claims["exp"] - token.claims["iat"] == LIFETIME
    assert token.claims["reason_code"] == "forced"


def test_a_subject_revocation_is_a_logout_token_with_sub() -> None:
    token = logout_token(send(subject_event(), RP))
    assert token.claims["sub"] == "alice"
    assert "sid" not in token.claims
    assert "reason_code" not in token.claims


def test_the_jti_is_the_same_at_every_retry_and_differs_between_receivers() -> None:
    event = session_event()
    first = logout_token(send(event, RP)).claims["jti"]
    again = outgoing(event, RP, KEYSET, ISSUER, NOW + 30)
    assert again is not None
    assert logout_token(again).claims["jti"] == first
    other = Receiver(id="other", kind="backchannel_logout", endpoint=RP.endpoint, audience="x")
    assert logout_token(send(event, other)).claims["jti"] != first


@pytest.mark.parametrize("receiver", [RP, SSF], ids=["backchannel_logout", "ssf"])
@pytest.mark.parametrize("event", [token_event(), all_event()], ids=["token", "all"])
def test_token_and_all_revocations_have_no_oidc_or_caep_form(
    receiver: Receiver, event: Revocation
) -> None:
    assert outgoing(event, receiver, KEYSET, ISSUER, NOW) is None


def test_a_session_revocation_is_a_caep_session_revoked_set() -> None:
    event = session_event(reason="signed out on the phone", reason_code="logout")
    request = send(event, SSF)
    assert request.headers["Content-Type"] == "application/secevent+jwt"
    assert request.accepted == {202}
    token = decoded(request.body.decode(), "secevent+jwt")
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": "https://gw.test"},
        iat={"essential": True},
        jti={"essential": True},
    ).validate(token.claims)
    assert token.claims["sub_id"] == {"format": "opaque", "id": event.sid}
    assert token.claims["events"] == {
        SESSION_REVOKED: {
            "event_timestamp": int(event.at),
            "initiating_entity": "user",
            "reason_admin": {"en": "signed out on the phone"},
            "reason_user": {"en": "signed out on the phone"},
        }
    }


def test_a_subject_revocation_names_the_subject_by_issuer_and_sub() -> None:
    token = decoded(
        send(subject_event(reason_code="password_change"), SSF).body.decode(), "secevent+jwt"
    )
    assert token.claims["sub_id"] == {"format": "iss_sub", "iss": ISSUER, "sub": "alice"}
    revoked = token.claims["events"][SESSION_REVOKED]
    assert revoked["reason_admin"] == {"en": "password_change"}
    assert revoked["initiating_entity"] == "user"


@pytest.mark.parametrize("event", [session_event(reason_code="admin"), token_event(), all_event()])
def test_standard_webhooks_verifies_the_webhook_and_its_body_is_the_event(
    event: Revocation,
) -> None:
    receiver, secret = webhook()
    request = outgoing(event, receiver, KEYSET, ISSUER, time.time())
    assert request is not None
    verified = standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    body = json.loads(request.body)
    assert verified == body
    assert body["type"] == f"revocation.{body['data']['kind']}"
    assert body["data"]["id"] == event.id
    assert body["data"]["reason_code"] == event.reason_code


def test_a_webhook_signed_with_another_secret_or_long_ago_is_refused() -> None:
    receiver, secret = webhook()
    request = send(session_event(), receiver)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(request.body, request.headers)
    stale = outgoing(session_event(), receiver, KEYSET, ISSUER, time.time() - 3600)
    assert stale is not None
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(stale.body, stale.headers)


def test_a_receiver_gets_only_the_kinds_it_asked_for() -> None:
    only_subjects = Receiver(
        id="x", kind="webhook", endpoint="https://x.test", secret=new_secret(), events=("subject",)
    )
    assert outgoing(session_event(), only_subjects, KEYSET, ISSUER, NOW) is None
    assert outgoing(subject_event(), only_subjects, KEYSET, ISSUER, NOW) is not None
