"""Issue 15 through a backend's own verifier (keys from the JWKS, revocations from a real
JetStream stream, with Redis): a stepped-up token meets the backend's step-up guard, and a
not-before in the past reaches the backend as the event every verifier already knows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sessiond.errors import InsufficientUserAuthentication, RevokedToken
from sessiond.verifier.engine import Verifier
from support.authority import Authority, MakeAuthority
from support.polling import eventually
from support.servers import JsonServer
from support.verifiers import following_verifier

LEVELS = "aal1,aal2,aal3"


@pytest.fixture
def backend(stream_backend: dict[str, str]) -> dict[str, str]:
    """The distributed mode on this test's own stream."""
    return stream_backend


@pytest.fixture
async def world(
    make_authority: MakeAuthority, backend: dict[str, str]
) -> AsyncIterator[tuple[Authority, Verifier]]:
    authority = await make_authority(acr_levels=LEVELS)
    runtime = authority.runtime
    with JsonServer(runtime.keyset.jwks(time.time(), runtime.key_retention)) as jwks:
        verifier = await following_verifier(backend, jwks, acr_levels=LEVELS)
        try:
            yield authority, verifier
        finally:
            await verifier.aclose()


async def test_the_backend_asks_for_a_step_up_and_accepts_the_stepped_up_token(
    world: tuple[Authority, Verifier],
) -> None:
    authority, verifier = world
    transfer = verifier.assurance(acr="aal2", max_age=300)
    tokens = await authority.login("alice", acr="aal1", amr=["pwd"])
    with pytest.raises(InsufficientUserAuthentication) as refused:
        transfer.check(await verifier.verify(tokens["access_token"]))
    assert 'acr_values="aal2 aal3"' in refused.value.headers()["WWW-Authenticate"]
    stepped = await authority.http.post(
        f"/v1/sessions/{tokens['session_id']}/authentication",
        json={"acr": "aal2", "amr": ["pwd", "otp"]},
        headers=authority.service,
    )
    claims = await verifier.verify(stepped.json()["access_token"])
    transfer.check(claims)
    assert claims.sid == tokens["session_id"]


async def test_a_past_not_before_reaches_the_backend(world: tuple[Authority, Verifier]) -> None:
    authority, verifier = world
    before: dict[str, Any] = await authority.login("alice")
    await asyncio.sleep(1.1)
    changed_at = int(time.time())
    await asyncio.sleep(1.1)
    after: dict[str, Any] = await authority.login("alice")
    seen = await verifier.verify(before["access_token"])
    await verifier.verify(after["access_token"])
    response = await authority.http.post(
        "/v1/revocations",
        json={
            "kind": "subject",
            "subject": "alice",
            "not_before": datetime.fromtimestamp(changed_at, UTC).isoformat(),
        },
        headers=authority.service,
    )
    assert response.status_code == 200, response.text
    await eventually(lambda: verifier.denylist.denies(seen), 5, "the backend applied it")
    with pytest.raises(RevokedToken):
        await verifier.verify(before["access_token"])
    assert (await verifier.verify(after["access_token"])).sub == "alice"
