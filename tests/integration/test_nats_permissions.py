"""Least privilege on the real nats-server, with the configuration ``cluster/nats_auth.py``
writes: every forbidden action is refused, and every role can still do its whole job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS

from sessiond.audit import audit_subject
from sessiond.broadcast.access import NatsAccess
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.receipts import Receipt
from sessiond.broadcast.snapshots import SnapshotWriter
from sessiond.broadcast.stream import JetStreamPublisher, StreamSpec, connect
from sessiond.cluster.nats_auth import Role, nats_spec, new_password, password_variable
from sessiond.denylist.denylist import Denylist
from sessiond.events import AllRevoked, SessionRevoked, encode, new_event_id
from sessiond.receivers.config import Catalog
from sessiond.receivers.memory import MemoryReceiverRegistry
from sessiond.receivers.models import Receiver, new_secret
from sessiond.receivers.stream import DeliveryStream
from sessiond.workers.delivery import (
    Context,
    DeliveryMetrics,
    DeliveryWorker,
    RetryPolicy,
    Sender,
)
from support.polling import eventually
from support.receivers import ReceiverServer
from support.secrets import register
from support.servers import ServerProcess
from support.signing import KEYSET, bus_signing, signed_headers, signer

pytestmark = pytest.mark.nats

SPEC = StreamSpec(name="PERMS", subject_prefix="perms.rev", max_age=600.0, duplicate_window=60.0)
READER = StreamSpec(
    name="PERMS", subject_prefix="perms.rev", max_age=0, duplicate_window=0, managed=False
)
USERS: tuple[tuple[str, Role], ...] = (
    ("authority", "authority"),
    ("relay", "relay"),
    ("backend-a", "verifier"),
    ("backend-b", "verifier"),
    ("audit", "audit"),
    ("delivery", "delivery"),
)
PASSWORDS = {user: new_password() for user, _ in USERS}
for _password in PASSWORDS.values():
    register("NATS password", _password)


def access(user: str) -> NatsAccess:
    return NatsAccess(identity=user, options={"user": user, "password": PASSWORDS[user]})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {password_variable(user): password for user, password in PASSWORDS.items()}
    directory = tmp_path_factory.mktemp("secured-nats")
    with ServerProcess(nats_spec(SPEC, USERS), directory=directory, env=env) as process:
        yield process


@pytest.fixture
async def authority(server: ServerProcess) -> AsyncIterator[JetStreamBus]:
    bus = JetStreamBus(
        server.url, SPEC, Denylist(), name="authority", access=access("authority"), **bus_signing()
    )
    await bus.start()
    assert await bus.follower.wait_caught_up(10)
    yield bus
    await bus.aclose()


class Refusals:
    """A client's connection errors: the server's permission violations arrive here."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def error(self, exc: Exception) -> None:
        self.seen.append(str(exc))

    async def wait_for(self, text: str) -> None:
        await eventually(lambda: any(text in s.lower() for s in self.seen), 3, text)


async def client(server: ServerProcess, user: str, refusals: Refusals) -> NATS:
    return await nats.connect(
        server.url,
        user=user,
        password=PASSWORDS[user],
        error_cb=refusals.error,
        allow_reconnect=False,
    )


async def stream_messages(bus: JetStreamBus) -> int:
    assert bus.nc is not None
    info = await bus.nc.jetstream().stream_info(SPEC.name)
    return int(info.state.messages)


async def test_an_unauthenticated_client_is_refused(server: ServerProcess) -> None:
    with pytest.raises(nats.errors.Error, match=r"[Aa]uthorization"):
        await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0)
    with pytest.raises(nats.errors.Error, match=r"[Aa]uthorization"):
        await nats.connect(server.url, user="authority", password="wrong", allow_reconnect=False)


async def test_a_verifier_cannot_publish_an_event(
    server: ServerProcess, authority: JetStreamBus
) -> None:
    before = await stream_messages(authority)
    refusals = Refusals()
    nc = await client(server, "backend-a", refusals)
    forged = AllRevoked(id=new_event_id(), at=time.time(), not_before=int(time.time()) + 1)
    try:
        await nc.publish(
            f"{SPEC.subject_prefix}.all", encode(forged), headers=signed_headers(forged)
        )
        await nc.publish(f"$JS.API.STREAM.DELETE.{SPEC.name}", b"")
        await refusals.wait_for(f'publish to "{SPEC.subject_prefix}.all"')
        await refusals.wait_for(f'publish to "$js.api.stream.delete.{SPEC.name.lower()}"')
    finally:
        await nc.close()
    await asyncio.sleep(0.2)
    assert await stream_messages(authority) == before
    assert authority.follower.last_applied == before


async def test_the_delivery_worker_delivers_and_can_neither_publish_nor_manage_the_stream(
    server: ServerProcess, authority: JetStreamBus
) -> None:
    refusals = Refusals()
    nc = await client(server, "delivery", refusals)
    context = Context(
        stream=DeliveryStream(SPEC, max_age=3600.0),
        verifier=bus_signing()["verifier"],
        keyset=lambda: KEYSET,
        issuer="https://auth.test",
        catalog=Catalog(MemoryReceiverRegistry()),
        sender=Sender(),
        policy=RetryPolicy(budget=1.0, base=0.05, cap=0.1),
        metrics=DeliveryMetrics(),
        ack_wait=2.0,
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(DeliveryWorker(context, refresh=0.05).run(nc, stop))
    try:
        with ReceiverServer() as receiver:
            secret = new_secret()
            register("webhook secret", secret)
            hook = Receiver(
                id="hook",
                kind="webhook",
                endpoint=receiver.url,
                secret=secret,
                created_at=time.time(),
            )
            await context.catalog.add(hook)
            await asyncio.sleep(0.3)
            event = SessionRevoked(
                id=new_event_id(), at=time.time(), sid="s-deliver", expires_at=time.time() + 300
            )
            await authority.publish(event)
            await eventually(lambda: len(receiver.received) == 1, 5, "delivered as 'delivery'")
        copied = await nc.jetstream().get_msg(context.stream.name, 1)  # what a replay reads
        assert copied.data == encode(event)
        forged = AllRevoked(id=new_event_id(), at=time.time(), not_before=int(time.time()) + 1)
        await nc.publish(
            f"{SPEC.subject_prefix}.all", encode(forged), headers=signed_headers(forged)
        )
        await nc.publish(f"$JS.API.STREAM.DELETE.{SPEC.name}", b"")
        await nc.publish(f"$JS.API.STREAM.DELETE.{context.stream.name}", b"")
        await refusals.wait_for(f'publish to "{SPEC.subject_prefix}.all"')
        await refusals.wait_for(f'publish to "$js.api.stream.delete.{SPEC.name.lower()}"')
        await refusals.wait_for(f'"$js.api.stream.delete.{context.stream.name.lower()}"')
    finally:
        stop.set()
        await worker
        await context.sender.aclose()
        await nc.close()
    assert [r for r in refusals.seen if "msg.next" in r or "$js.ack" in r or ".info." in r] == []


async def test_a_verifier_cannot_send_receipts_for_another_identity(
    server: ServerProcess, authority: JetStreamBus
) -> None:
    receipts = authority.receipts
    assert receipts is not None
    refusals = Refusals()
    nc = await client(server, "backend-a", refusals)
    forged = Receipt(follower="backend-b/host/1/abcd", seq=0)
    try:
        await nc.publish(SPEC.receipts_subject("backend-b"), msgspec.json.encode(forged))
        await refusals.wait_for(f'publish to "{SPEC.receipts_subject("backend-b")}"')
        # Under its own identity but claiming another follower: the authority ignores it.
        await nc.publish(SPEC.receipts_subject("backend-a"), msgspec.json.encode(forged))
        await nc.flush()
        await eventually(lambda: receipts.forged >= 1, 3, "the claim ignored")
    finally:
        await nc.close()
    assert not any(f.startswith("backend-b/") for f in receipts.present())


@pytest.mark.parametrize("user", ["backend-a", "relay"])
async def test_only_the_audit_reader_and_authority_see_the_audit_subject(
    server: ServerProcess, user: str
) -> None:
    refusals = Refusals()
    nc = await client(server, user, refusals)
    try:
        await nc.subscribe(audit_subject(SPEC.subject_prefix))
        await refusals.wait_for(f'subscription to "{audit_subject(SPEC.subject_prefix)}"')
    finally:
        await nc.close()


async def test_every_role_does_its_whole_job(
    server: ServerProcess, authority: JetStreamBus
) -> None:
    # The audit reader hears what the authority publishes on the audit subject.
    audit_refusals = Refusals()
    reader = await client(server, "audit", audit_refusals)
    heard: list[bytes] = []

    async def on_audit(msg: Any) -> None:
        heard.append(msg.data)

    await reader.subscribe(audit_subject(SPEC.subject_prefix), cb=on_audit)
    await reader.flush()
    assert authority.nc is not None
    await authority.nc.publish(audit_subject(SPEC.subject_prefix), b'{"action": "test"}')
    # The relay publishes an event and writes the snapshot.
    relay_nc = await connect(server.url, "relay", access("relay"))
    snapshots = SnapshotWriter(SPEC, signer(), bus_signing()["verifier"])
    try:
        event = SessionRevoked(
            id=new_event_id(), at=time.time(), sid="s-relay", expires_at=time.time() + 300
        )
        ack = await JetStreamPublisher(relay_nc, SPEC, signer()).publish(event)
        await snapshots.start(relay_nc)
        follower = snapshots.follower
        await eventually(
            lambda: follower.last_applied >= ack.seq and follower.stream_created is not None,
            5,
            "the relay's snapshot writer follows",
        )
        assert await snapshots.write_once()
    finally:
        await snapshots.aclose()
        await relay_nc.close()
    # A verifier with its own user starts from the snapshot, follows, and is waited for.
    verifier = JetStreamBus(
        server.url,
        READER,
        Denylist(),
        name="backend-a",
        confirm=False,
        access=access("backend-a"),
        verifier=bus_signing()["verifier"],
    )
    await verifier.start()
    try:
        assert await verifier.follower.wait_caught_up(10)
        assert verifier.snapshot_seq >= ack.seq
        receipts = authority.receipts
        assert receipts is not None
        await eventually(
            lambda: any(f.startswith("backend-a/") for f in receipts.present()), 3, "receipt"
        )
        revoked = SessionRevoked(
            id=new_event_id(), at=time.time(), sid="s-auth", expires_at=time.time() + 300
        )
        await authority.publish(revoked)
        seq = verifier.follower.last_applied
        assert seq > ack.seq  # applied before the authority's publish returned (receipts)
        assert receipts.behind(seq) == []
    finally:
        await verifier.aclose()
    await eventually(lambda: len(heard) == 1, 3, "the audit reader hears the trail")
    await reader.close()
    assert not audit_refusals.seen
