"""Signing in to the real nats-server with an nkey seed (``SESSIOND_NATS_NKEY_FILE``): each
role's user is an nkey with that role's permissions; a revocation travels from the authority to
a verifier both signed in so; a seed the server does not know is one error line; no seed is
ever logged."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import nkeys
import pytest

from sessiond.broadcast.access import NatsAccess
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.stream import StreamSpec
from sessiond.cluster.nats_auth import Role, authorization, password_variable
from sessiond.cluster.specs import NATS
from sessiond.denylist.denylist import Denylist
from sessiond.events import SessionRevoked, new_event_id
from sessiond.settings import Settings
from sessiond.verifier.settings import VerifierSettings
from support.secrets import register
from support.servers import ServerProcess
from support.signing import bus_signing

pytestmark = pytest.mark.nats

SPEC = StreamSpec(name="NKEYS", subject_prefix="nkeys.rev", max_age=600.0, duplicate_window=60.0)
READER = replace(SPEC, max_age=0, duplicate_window=0, managed=False)
USERS: tuple[tuple[str, Role], ...] = (("authority", "authority"), ("backend-nk", "verifier"))


def new_seed() -> str:
    """A new user's nkey seed (``SU...``), registered as a secret."""
    seed: str = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    register("NATS nkey seed", seed)
    return seed


def public_key(seed: str) -> str:
    key: str = nkeys.from_seed(seed.encode()).public_key.decode()
    return key


SEEDS = {user: new_seed() for user, _ in USERS}


def nkey_authorization(spec: StreamSpec, users: tuple[tuple[str, Role], ...]) -> str:
    """``cluster/nats_auth``'s authorization block, each user signing in by its nkey."""
    block = authorization(spec, users)
    for user, _ in users:
        by_password = f"user: {user}\n      password: ${password_variable(user)}"
        assert by_password in block
        block = block.replace(by_password, f"nkey: {public_key(SEEDS[user])}")
    return block


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    spec = replace(NATS, config=(NATS.config or "") + nkey_authorization(SPEC, USERS))
    with ServerProcess(spec, directory=tmp_path_factory.mktemp("nkeys-nats")) as process:
        yield process


def seed_file(tmp_path: Path, seed: str) -> str:
    path = tmp_path / f"{public_key(seed)[:8]}.nk"
    path.write_text(seed + "\n")
    path.chmod(0o600)
    return str(path)


async def test_a_revocation_travels_between_nkey_users(
    server: ServerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    authority_access = NatsAccess.from_settings(
        Settings.load(
            {
                "SESSIOND_NATS_NKEY_FILE": seed_file(tmp_path, SEEDS["authority"]),
                "SESSIOND_NATS_IDENTITY": "authority",
            }
        )
    )
    backend_access = NatsAccess.from_settings(
        VerifierSettings.load(
            {
                "SESSIOND_NATS_URL": server.url,
                "SESSIOND_JWKS_URL": "http://127.0.0.1:1/jwks",
                "SESSIOND_NATS_NKEY_FILE": seed_file(tmp_path, SEEDS["backend-nk"]),
                "SESSIOND_NATS_IDENTITY": "backend-nk",
            }
        )
    )
    authority = JetStreamBus(
        server.url, SPEC, Denylist(), name="authority", access=authority_access, **bus_signing()
    )
    denylist = Denylist()
    backend = JetStreamBus(
        server.url,
        READER,
        denylist,
        name="backend-nk",
        confirm=False,
        access=backend_access,
        verifier=bus_signing()["verifier"],
    )
    with caplog.at_level(logging.DEBUG):
        await authority.start()
        await backend.start()
        try:
            assert await authority.follower.wait_caught_up(10)
            assert await backend.follower.wait_caught_up(10)
            event = SessionRevoked(
                id=new_event_id(), at=time.time(), sid="s-nkey", expires_at=time.time() + 300
            )
            await authority.publish(event)
            # Applied before publish returned: the backend's receipt (on the subject only its
            # nkey user may publish on) reached the authority.
            assert denylist.sizes()["session"] == 1
            receipts = authority.receipts
            assert receipts is not None
            assert [f for f in receipts.present() if f.startswith("backend-nk/")]
        finally:
            await backend.aclose()
            await authority.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_seed_the_server_does_not_know_is_one_error_line_and_never_ready(
    server: ServerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.load({"SESSIOND_NATS_NKEY_FILE": seed_file(tmp_path, new_seed())})
    bus = JetStreamBus(
        server.url,
        READER,
        Denylist(),
        name="stranger",
        confirm=False,
        access=NatsAccess.from_settings(settings),
        verifier=bus_signing()["verifier"],
    )
    with caplog.at_level(logging.DEBUG):
        await bus.start()
        try:
            assert not await bus.follower.wait_caught_up(3)  # several refused attempts
        finally:
            await bus.aclose()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "authorization violation" in errors[0].lower()
