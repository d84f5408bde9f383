"""Signing in to the real nats-server with an nkey seed (``SESSIOND_NATS_NKEY_FILE``) or a
``.creds`` file (``SESSIOND_NATS_CREDS_FILE``: operator mode, JWTs made here as ``nsc`` would):
each role's user has that role's permissions; a revocation travels from the authority to a
verifier both signed in so; a credential the server does not accept is one error line and never
ready; no seed is ever logged."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nkeys
import pytest

from sessiond.broadcast.access import NatsAccess
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.stream import StreamSpec
from sessiond.cluster.nats_auth import Role, authorization, password_variable, permissions
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


def new_seed(prefix: int = nkeys.PREFIX_BYTE_USER) -> str:
    """A new nkey seed (a user's: ``SU...``), registered as a secret."""
    seed: str = nkeys.encode_seed(os.urandom(32), prefix).decode()
    register("NATS nkey seed", seed)
    return seed


def public_key(seed: str) -> str:
    key: str = nkeys.from_seed(seed.encode()).public_key.decode()
    return key


SEEDS = {user: new_seed() for user, _ in USERS}
OPERATOR = new_seed(nkeys.PREFIX_BYTE_OPERATOR)
ACCOUNT, SYSTEM = new_seed(nkeys.PREFIX_BYTE_ACCOUNT), new_seed(nkeys.PREFIX_BYTE_ACCOUNT)
UNLIMITED = dict.fromkeys(("subs", "data", "payload", "conn", "mem_storage", "disk_storage"), -1)


def nkey_authorization(spec: StreamSpec, users: tuple[tuple[str, Role], ...]) -> str:
    """``cluster/nats_auth``'s authorization block, each user signing in by its nkey."""
    block = authorization(spec, users)
    for user, _ in users:
        by_password = f"user: {user}\n      password: ${password_variable(user)}"
        assert by_password in block
        block = block.replace(by_password, f"nkey: {public_key(SEEDS[user])}")
    return block


def nats_jwt(issuer: str, subject: str, claims: dict[str, Any]) -> str:
    """A NATS JWT (``ed25519-nkey``) about ``subject``'s public key, signed by ``issuer``'s
    seed."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    payload = {
        "jti": b64(os.urandom(16)),
        "iat": int(time.time()),
        "iss": public_key(issuer),
        "sub": public_key(subject),
        "name": public_key(subject)[:8],
        "nats": {**claims, "version": 2},
    }
    header = {"typ": "JWT", "alg": "ed25519-nkey"}
    signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = nkeys.from_seed(issuer.encode()).sign(signed.encode())
    return f"{signed}.{b64(signature)}"


def operator_config() -> str:
    """Operator mode: one account with JetStream, a system account, JWTs in memory."""
    account = nats_jwt(OPERATOR, ACCOUNT, {"type": "account", "limits": UNLIMITED})
    system = nats_jwt(OPERATOR, SYSTEM, {"type": "account"})
    return (
        f'operator: "{nats_jwt(OPERATOR, OPERATOR, {"type": "operator"})}"\n'
        f"system_account: {public_key(SYSTEM)}\n"
        "resolver: MEMORY\n"
        f'resolver_preload: {{ {public_key(ACCOUNT)}: "{account}", '
        f'{public_key(SYSTEM)}: "{system}" }}\n'
    )


def creds(user: str, role: Role, seed: str) -> str:
    """``user``'s ``.creds`` text: its JWT (its role's permissions) and ``seed``."""
    allowed = permissions(role, SPEC, user)
    claims = {
        "type": "user",
        "pub": {"allow": list(allowed.publish)},
        "sub": {"allow": list(allowed.subscribe)},
        **UNLIMITED,
    }
    return (
        f"-----BEGIN NATS USER JWT-----\n{nats_jwt(ACCOUNT, SEEDS[user], claims)}\n"
        "------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )


@pytest.fixture(scope="module")
def nkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    spec = replace(NATS, config=(NATS.config or "") + nkey_authorization(SPEC, USERS))
    with ServerProcess(spec, directory=tmp_path_factory.mktemp("nkeys-nats")) as process:
        yield process


@pytest.fixture(scope="module")
def creds_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    spec = replace(NATS, config=(NATS.config or "") + operator_config())
    with ServerProcess(spec, directory=tmp_path_factory.mktemp("creds-nats")) as process:
        yield process


def credential(tmp_path: Path, kind: str, user: str, seed: str) -> dict[str, str]:
    """The settings that sign ``user`` in with ``seed`` by an nkey or a ``.creds`` file."""
    path = tmp_path / f"{user}.{kind}"
    role = dict(USERS).get(user, "verifier")
    path.write_text(creds(user, role, seed) if kind == "creds" else seed + "\n")
    path.chmod(0o600)
    setting = "SESSIOND_NATS_CREDS_FILE" if kind == "creds" else "SESSIOND_NATS_NKEY_FILE"
    return {setting: str(path), "SESSIOND_NATS_IDENTITY": user}


@pytest.fixture(params=["nk", "creds"])
def signed_in(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The server of one way of signing in, and that way (``nk`` or ``creds``)."""
    server = request.getfixturevalue("creds_server" if request.param == "creds" else "nkey_server")
    return server.url, request.param


async def test_a_revocation_travels_between_users_signed_in_by_key(
    signed_in: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, kind = signed_in
    authority_access = NatsAccess.from_settings(
        Settings.load(credential(tmp_path, kind, "authority", SEEDS["authority"]))
    )
    backend_access = NatsAccess.from_settings(
        VerifierSettings.load(
            {
                "SESSIOND_NATS_URL": url,
                "SESSIOND_JWKS_URL": "http://127.0.0.1:1/jwks",
                **credential(tmp_path, kind, "backend-nk", SEEDS["backend-nk"]),
            }
        )
    )
    authority = JetStreamBus(
        url, SPEC, Denylist(), name="authority", access=authority_access, **bus_signing()
    )
    denylist = Denylist()
    backend = JetStreamBus(
        url,
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
            # user may publish on) reached the authority.
            assert denylist.sizes()["session"] == 1
            receipts = authority.receipts
            assert receipts is not None
            assert [f for f in receipts.present() if f.startswith("backend-nk/")]
        finally:
            await backend.aclose()
            await authority.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_key_the_server_does_not_know_is_one_error_line_and_never_ready(
    signed_in: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, kind = signed_in
    # By nkey: a user the server has never heard of. By .creds: a genuine JWT with a seed that
    # is not its user's, so the nonce's signature does not match.
    settings = Settings.load(credential(tmp_path, kind, "backend-nk", new_seed()))
    bus = JetStreamBus(
        url,
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
