"""Signed revocation events (broadcast/signing.py): what a follower applies and what it drops."""

from __future__ import annotations

import base64
import json
import time

import pytest

from sessiond.broadcast import signing
from sessiond.broadcast.signing import (
    EVENT_TYPE,
    SNAPSHOT_TYPE,
    EventSigner,
    EventVerifier,
    Rejected,
    sign_detached,
)
from sessiond.events import AllRevoked, encode, new_event_id
from sessiond.settings import Algorithm
from sessiond.tokens.access import sign_access_token
from sessiond.tokens.keys import Keyset
from sessiond.verifier.keys import LocalKeys

NOW = time.time()


class Refreshing:
    """Keys that change to ``later`` on the first refresh, counting refreshes."""

    def __init__(self, now: Keyset, later: Keyset, refused: int = 0) -> None:
        self.keyset, self.later, self.refreshes = now, later, 0
        self.refused = refused  # refreshes refused first, as a cooldown or a failed fetch would
        self.fetched_at = -float("inf")

    def current(self) -> Keyset:
        return self.keyset

    async def refresh(self) -> bool:
        self.refreshes += 1
        if self.refreshes <= self.refused:
            return False
        self.fetched_at = time.monotonic()
        changed = self.keyset is not self.later
        self.keyset = self.later
        return changed


def all_event() -> bytes:
    return encode(AllRevoked(id=new_event_id(), at=NOW, not_before=int(NOW) + 1))


def checker(keyset: Keyset, unsigned_before: float = 0.0) -> EventVerifier:
    return EventVerifier(LocalKeys(keyset), retain=300, unsigned_before=unsigned_before)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "HS256"])
async def test_a_signed_event_is_applied(alg: Algorithm) -> None:
    keyset = Keyset.generate(alg)
    payload = all_event()
    signature = EventSigner(lambda: keyset).sign(payload, NOW)
    header = json.loads(base64.urlsafe_b64decode(signature.split(".")[0] + "=="))
    assert header == {"alg": alg, "kid": keyset.active_kid, "typ": EVENT_TYPE}
    assert signature.split(".")[1] == ""  # detached: no payload in the header value
    event = await checker(keyset).event(payload, signature, NOW)
    assert isinstance(event, AllRevoked)


async def test_unsigned_events_apply_only_if_stored_before_the_cutoff() -> None:
    keyset, payload = Keyset.generate("EdDSA"), all_event()
    assert await checker(keyset).event(payload, None, NOW) == Rejected(
        "unsigned", "no Sessiond-Signature header"
    )
    migrating = checker(keyset, unsigned_before=NOW)
    assert isinstance(await migrating.event(payload, None, NOW - 1), AllRevoked)
    rejected = await migrating.event(payload, None, NOW)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "unsigned"


async def test_a_changed_payload_fails_the_signature() -> None:
    keyset = Keyset.generate("ES256")
    payload = all_event()
    signature = sign_detached(payload, keyset.active)
    replayed = encode(AllRevoked(id=new_event_id(), at=NOW, not_before=int(NOW) + 1))
    altered = payload.replace(b'"all"', b'"all" ')
    for forged in (replayed, altered):
        rejected = await checker(keyset).event(forged, signature, NOW)
        assert isinstance(rejected, Rejected)
        assert rejected.reason == "bad_signature"


@pytest.mark.parametrize(
    "forge",
    [
        lambda key, payload: "garbage",
        lambda key, payload: sign_detached(payload, key, SNAPSHOT_TYPE),  # another typ
        lambda key, payload: sign_access_token(
            key, issuer="i", audience="a", sub="s", sid="x", ttl=60, now=NOW
        )[0],  # an access token: not detached, typ at+jwt
        lambda key, payload: (
            b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": EVENT_TYPE}).encode())
            + ".."
            + b64(b"x" * 32)
        ),  # the header's alg is not the key's
        lambda key, payload: (
            b64(
                json.dumps(
                    {"alg": "ES256", "kid": key.kid, "typ": EVENT_TYPE, "b64": False}
                ).encode()
            )
            + ".."
            + b64(b"x" * 64)
        ),  # a member the verifier does not understand
    ],
    ids=["garbage", "snapshot-typ", "access-token", "alg-confusion", "extra-member"],
)
async def test_a_signature_of_another_kind_is_bad(forge: object) -> None:
    keyset, payload = Keyset.generate("ES256"), all_event()
    signature = forge(keyset.active, payload)  # type: ignore[operator]
    rejected = await checker(keyset).event(payload, signature, NOW)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "bad_signature"


async def test_an_unknown_key_is_looked_for_once_then_rejected() -> None:
    authority, stranger = Keyset.generate("EdDSA"), Keyset.generate("EdDSA")
    payload = all_event()
    keys = Refreshing(authority, authority)
    verifier = EventVerifier(keys, retain=300)
    rejected = await verifier.event(payload, sign_detached(payload, stranger.active), NOW)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "unknown_key"
    assert keys.refreshes == 1


async def test_a_key_published_after_a_rotation_is_found_by_a_refresh() -> None:
    before = Keyset.generate("ES256", now=NOW - 10)
    after = before.rotate(NOW, retain=300)
    keys = Refreshing(before, after)
    payload = all_event()
    signature = EventSigner(lambda: after).sign(payload, NOW)
    assert isinstance(
        await EventVerifier(keys, retain=300).event(payload, signature, NOW), AllRevoked
    )
    assert keys.refreshes == 1


async def test_an_unknown_key_is_judged_only_after_a_fetch_that_could_have_found_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refresh refused by the cooldown (a forged event may just have used it up) does not
    drop a genuine event signed by a newly published key: the follower waits and tries again."""
    monkeypatch.setattr(signing, "KEY_RETRY", 0.01)
    before = Keyset.generate("ES256", now=NOW - 10)
    after = before.rotate(NOW, retain=300)
    keys = Refreshing(before, after, refused=2)
    payload = all_event()
    signature = EventSigner(lambda: after).sign(payload, NOW)
    assert isinstance(
        await EventVerifier(keys, retain=300).event(payload, signature, NOW), AllRevoked
    )
    assert keys.refreshes == 3


async def test_a_retired_key_verifies_what_the_stream_stored_while_it_signed() -> None:
    before = Keyset.generate("ES256", now=NOW - 1000)
    payload = all_event()
    signature = EventSigner(lambda: before).sign(payload, NOW - 500)
    after = before.rotate(NOW - 400, retain=300)  # retired 400 s ago, kept 300 s
    verifier = EventVerifier(LocalKeys(after), retain=300)
    assert isinstance(await verifier.event(payload, signature, NOW - 500), AllRevoked)
    late = await verifier.event(payload, signature, NOW)  # stored after it stopped verifying
    assert isinstance(late, Rejected)
    assert late.reason == "unknown_key"


async def test_a_signed_non_event_is_malformed() -> None:
    keyset = Keyset.generate("EdDSA")
    payload = b'{"v": 1, "kind": "everything"}'
    rejected = await checker(keyset).event(payload, sign_detached(payload, keyset.active), NOW)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "malformed"
