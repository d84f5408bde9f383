"""Signed revocation events against a real nats-server and Redis: what anyone who can publish
on the stream can no longer do (issue 17's forged ``all`` event and its relatives), the
migration window for unsigned events, forged snapshots, and key rotation."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NATS

from sessiond.broadcast.follower import JetStreamFollower
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.signing import SIGNATURE_HEADER, EventSigner, sign_detached
from sessiond.broadcast.snapshots import write_snapshot
from sessiond.broadcast.stream import MSG_ID_HEADER, StreamSpec, ensure_stream
from sessiond.denylist.denylist import Denylist
from sessiond.errors import RevokedToken
from sessiond.events import TokenRevoked, encode, new_event_id
from sessiond.tokens.keys import Keyset, SigningKey
from sessiond.verifier.engine import Verifier
from support.authority import Authority, MakeAuthority
from support.servers import JsonServer
from support.verifiers import following_verifier, ready


@pytest.fixture
def backend(stream_backend: dict[str, str]) -> dict[str, str]:
    """The distributed mode on this test's own stream."""
    return stream_backend


@dataclass
class Followers:
    """An authority (a service replica) and a backend's verifier, both following the stream."""

    authority: Authority
    verifier: Verifier
    jwks: JsonServer

    @property
    def followers(self) -> list[JetStreamFollower]:
        bus = self.verifier._bus
        assert isinstance(bus, JetStreamBus)
        service = self.authority.runtime.bus
        assert isinstance(service, JetStreamBus)
        return [service.follower, bus.follower]

    def publish_jwks(self) -> None:
        runtime = self.authority.runtime
        self.jwks.document = runtime.keyset.jwks(time.time(), runtime.key_retention)


@pytest.fixture
async def world(make_authority: MakeAuthority, backend: dict[str, str]) -> AsyncIterator[Followers]:
    authority = await make_authority()
    runtime = authority.runtime
    with JsonServer(runtime.keyset.jwks(time.time(), runtime.key_retention)) as jwks:
        verifier = await following_verifier(backend, jwks)
        try:
            yield Followers(authority, verifier, jwks)
        finally:
            await verifier.aclose()


async def sid_of(verifier: Verifier, access_token: str) -> str:
    return (await verifier.verify(access_token)).sid


async def last_seq(client: NATS, spec: StreamSpec) -> int:
    return (await client.jetstream().stream_info(spec.name)).state.last_seq


async def all_applied(world: Followers, seq: int) -> None:
    for follower in world.followers:
        assert await follower.wait_applied(seq, 5), "a follower fell behind"


def rejected_metric(authority: Authority, reason: str) -> float:
    registry = authority.runtime.metrics.registry
    return registry.get_sample_value("sessiond_events_rejected_total", {"reason": reason}) or 0.0


async def test_forged_events_are_rejected_by_every_follower(
    world: Followers, client: NATS, spec: StreamSpec
) -> None:
    authority, verifier = world.authority, world.verifier
    alice = await authority.login("alice")
    carol = await authority.login("carol")
    bob = await authority.login("bob")
    alice_sid = await sid_of(verifier, alice["access_token"])
    js = client.jetstream()
    now = time.time()

    async def publish(kind: str, body: bytes, signature: str | None = None) -> None:
        headers = {MSG_ID_HEADER: new_event_id()}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        await js.publish(f"{spec.subject_prefix}.{kind}", body, headers=headers)

    def event(**fields: Any) -> bytes:
        return msgspec.json.encode({"v": 1, "id": new_event_id(), "at": now, **fields})

    # Issue 17's forgery, and its relatives, by a plain NATS client with no key.
    await publish("all", event(kind="all", not_before=int(now) + 1))
    await publish("session", event(kind="session", sid=alice_sid, expires_at=now + 600))
    await publish(
        "subject", event(kind="subject", sub="alice", not_before=int(now) + 1, expires_at=now + 600)
    )
    # A genuine signed event (bob's session revoked), replayed with a new id and altered.
    response = await authority.http.delete(
        f"/v1/sessions/{await sid_of(verifier, bob['access_token'])}", headers=authority.service
    )
    assert response.status_code == 204, response.text
    genuine = await js.get_msg(spec.name, await last_seq(client, spec))
    assert genuine.headers is not None
    assert genuine.data is not None
    signature = genuine.headers[SIGNATURE_HEADER]
    original = msgspec.json.decode(genuine.data)
    await publish("session", msgspec.json.encode({**original, "id": new_event_id()}), signature)
    await publish("session", msgspec.json.encode({**original, "sid": alice_sid}), signature)
    # Signed by a key the authority never published, under a new kid and under its kid.
    stranger = Keyset.generate("ES256").active
    forged = event(kind="all", not_before=int(now) + 1)
    await publish("all", forged, sign_detached(forged, stranger))
    impostor = SigningKey(
        kid=authority.runtime.keyset.active_kid,
        alg=stranger.alg,
        private=stranger.private,
        public=stranger.public,
        created_at=now,
    )
    await publish("all", forged, sign_detached(forged, impostor))

    # A genuine revocation right after is applied.
    carol_sid = await sid_of(verifier, carol["access_token"])
    response = await authority.http.delete(f"/v1/sessions/{carol_sid}", headers=authority.service)
    assert response.status_code == 204, response.text
    await all_applied(world, await last_seq(client, spec))

    expected = {"unsigned": 3, "bad_signature": 3, "unknown_key": 1}
    for follower in world.followers:
        assert follower.rejected == expected
    for reason, count in expected.items():
        assert rejected_metric(authority, reason) == count
    assert (await authority.whoami(alice["access_token"])).status_code == 200
    assert (await verifier.verify(alice["access_token"])).sub == "alice"
    assert (await authority.whoami(carol["access_token"])).status_code == 401
    with pytest.raises(RevokedToken):
        await verifier.verify(carol["access_token"])
    assert authority.runtime.denylist.global_not_before < now
    ready(verifier)  # a forged event fails no readiness


async def test_unsigned_events_apply_only_from_before_the_cutoff(
    make_authority: MakeAuthority, backend: dict[str, str], client: NATS, spec: StreamSpec
) -> None:
    js = client.jetstream()
    await ensure_stream(js, spec)

    async def unsigned(jti: str) -> None:
        event = TokenRevoked(
            id=new_event_id(), at=time.time(), jti=jti, expires_at=time.time() + 600
        )
        await js.publish(spec.subject_for(event), encode(event), headers={MSG_ID_HEADER: event.id})

    await unsigned("before-upgrade")
    time.sleep(0.05)  # noqa: ASYNC251 (the stream's clock must move past the cutoff)
    cutoff = time.time()
    time.sleep(0.05)  # noqa: ASYNC251
    await unsigned("after-upgrade")

    authority = await make_authority(unsigned_events_before=cutoff)
    runtime = authority.runtime
    with JsonServer(runtime.keyset.jwks(time.time(), runtime.key_retention)) as jwks:
        verifier = await following_verifier(backend, jwks, unsigned_events_before=cutoff)
        try:
            for denylist in (runtime.denylist, verifier.denylist):
                assert denylist.sizes()["token"] == 1
            assert isinstance(runtime.bus, JetStreamBus)
            assert runtime.bus.follower.rejected == {"unsigned": 1}
        finally:
            await verifier.aclose()


async def test_a_forged_snapshot_is_ignored_and_the_stream_replayed(
    make_authority: MakeAuthority, client: NATS, spec: StreamSpec, tmp_path: Path
) -> None:
    first = await make_authority()
    carol = await first.login("carol")
    carol_sid = (await first.runtime.verifier.verify(carol["access_token"])).sid
    response = await first.http.delete(f"/v1/sessions/{carol_sid}", headers=first.service)
    assert response.status_code == 204, response.text
    js = client.jetstream()
    info = await js.stream_info(spec.name)
    seq = info.state.last_seq
    # A snapshot claiming the whole stream, without carol's revocation, by someone else.
    stranger = EventSigner(lambda: Keyset.generate("ES256"))
    await write_snapshot(js, spec, Denylist(), seq, info.created, stranger)
    forged = await make_authority()
    assert isinstance(forged.runtime.bus, JetStreamBus)
    assert forged.runtime.bus.snapshot_seq == 0  # ignored: replayed
    assert (await forged.whoami(carol["access_token"])).status_code == 401
    # The same snapshot signed by the authority is used (so the check above can fail).
    genuine = EventSigner(lambda: Keyset.load(tmp_path / "keyset.json"))
    await write_snapshot(js, spec, Denylist(), seq, info.created, genuine)
    trusted = await make_authority()
    assert isinstance(trusted.runtime.bus, JetStreamBus)
    assert trusted.runtime.bus.snapshot_seq == seq


async def test_events_signed_by_a_new_key_are_applied_after_a_jwks_refetch(
    world: Followers, client: NATS, spec: StreamSpec, tmp_path: Path
) -> None:
    authority, verifier = world.authority, world.verifier
    carol = await authority.login("carol")
    carol_sid = await sid_of(verifier, carol["access_token"])
    runtime = authority.runtime
    rotated = runtime.keyset.rotate(time.time(), retain=runtime.key_retention)
    rotated.save(tmp_path / "keyset.json")
    assert runtime.keys.reload()
    world.publish_jwks()  # as the authority's /.well-known/jwks.json now answers
    fetches = verifier.keys.fetches  # type: ignore[attr-defined]
    response = await authority.http.delete(f"/v1/sessions/{carol_sid}", headers=authority.service)
    assert response.status_code == 204, response.text
    stored = await js_last(client, spec)
    assert stored.headers is not None
    assert rotated.active_kid in _protected(stored.headers[SIGNATURE_HEADER])
    await all_applied(world, stored.seq)
    assert verifier.keys.fetches > fetches  # type: ignore[attr-defined]
    for follower in world.followers:
        assert follower.rejected == {}
    with pytest.raises(RevokedToken):
        await verifier.verify(carol["access_token"])


async def js_last(client: NATS, spec: StreamSpec) -> Any:
    return await client.jetstream().get_msg(spec.name, await last_seq(client, spec))


def _protected(signature: str) -> str:
    segment = signature.split(".")[0]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()
