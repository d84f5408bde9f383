"""NATS over TLS with the test CA, as the local cluster runs it: the right CA connects and a
revocation flows; a wrong CA fails loud (one error line naming the setting) and never ready."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessiond.broadcast.access import VERIFY_FAILED_HINT, NatsAccess
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.stream import StreamSpec
from sessiond.cluster.nats_auth import Role, nats_spec, new_password, password_variable
from sessiond.cluster.tls import TestPki, make_test_pki
from sessiond.denylist.denylist import Denylist
from sessiond.events import SessionRevoked, new_event_id
from sessiond.settings import Settings
from support.polling import eventually
from support.secrets import register
from support.servers import ServerProcess
from support.signing import bus_signing

pytestmark = pytest.mark.nats

SPEC = StreamSpec(name="TLS", subject_prefix="tls.rev", max_age=600.0, duplicate_window=60.0)
USERS: tuple[tuple[str, Role], ...] = (("authority", "authority"), ("backend", "verifier"))
PASSWORDS = {user: new_password() for user, _ in USERS}
for _password in PASSWORDS.values():
    register("NATS password", _password)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {password_variable(user): password for user, password in PASSWORDS.items()}
    directory = tmp_path_factory.mktemp("tls-nats")
    with ServerProcess(nats_spec(SPEC, USERS, pki), directory=directory, env=env) as process:
        yield process


def access(user: str, ca: Path, pki: TestPki) -> NatsAccess:
    """What ``SESSIOND_NATS_*`` settings give a client: user, password, CA and certificate."""
    settings = Settings.load(
        {
            "SESSIOND_NATS_USER": user,
            "SESSIOND_NATS_PASSWORD": PASSWORDS[user],
            "SESSIOND_NATS_TLS_CA": str(ca),
            "SESSIOND_NATS_TLS_CERT": str(pki.cert_file),
            "SESSIOND_NATS_TLS_KEY": str(pki.key_file),
        }
    )
    return NatsAccess.from_settings(settings)


async def test_with_the_right_ca_a_revocation_flows(server: ServerProcess, pki: TestPki) -> None:
    assert server.url.startswith("tls://")
    authority = JetStreamBus(
        server.url, SPEC, Denylist(), access=access("authority", pki.ca_file, pki), **bus_signing()
    )
    reader = StreamSpec(SPEC.name, SPEC.subject_prefix, 0.0, 0.0, managed=False)
    backend = JetStreamBus(
        server.url,
        reader,
        Denylist(),
        confirm=False,
        access=access("backend", pki.ca_file, pki),
        verifier=bus_signing()["verifier"],
    )
    await authority.start()
    await backend.start()
    try:
        assert await authority.follower.wait_caught_up(10)
        assert await backend.follower.wait_caught_up(10)
        receipts = authority.receipts
        assert receipts is not None
        await eventually(lambda: any(f.startswith("backend/") for f in receipts.present()), 3)
        now = time.time()
        event = SessionRevoked(id=new_event_id(), at=now, sid="s-tls", expires_at=now + 300)
        await authority.publish(event)
        assert backend.follower.applied == 1  # before the publish returned: its receipt
    finally:
        await backend.aclose()
        await authority.aclose()


async def test_a_wrong_ca_is_one_clear_error_and_never_ready(
    server: ServerProcess, pki: TestPki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = make_test_pki(tmp_path / "other")
    bus = JetStreamBus(
        server.url,
        SPEC,
        Denylist(),
        access=access("authority", other.ca_file, pki),
        connect_wait=0.1,
        **bus_signing(),
    )
    with caplog.at_level(logging.DEBUG, logger="sessiond.broadcast"):
        await bus.start()
        try:
            await eventually(lambda: VERIFY_FAILED_HINT in caplog.text, 5, "the hint")
            await asyncio.sleep(1.0)  # several retries
            assert bus.staleness(time.time()) == float("inf")  # /readyz answers 503
        finally:
            await bus.aclose()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "SESSIOND_NATS_TLS_CA" in errors[0].getMessage()
