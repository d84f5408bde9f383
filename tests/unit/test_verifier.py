"""The verifier engine: denylist decisions and the stale-denylist policies (I2)."""

from __future__ import annotations

import math
import time

import pytest

from sessiond.broadcast.events import SessionRevoked
from sessiond.denylist.denylist import Denylist
from sessiond.errors import ConfigError, DenylistStale, TokenRevoked
from sessiond.settings import StalePolicy
from sessiond.tokens.access import AccessClaims, AccessTokenDecoder, sign_access_token
from sessiond.tokens.keys import Keyset
from sessiond.verifier.engine import Verifier

KEYSET = Keyset.generate("ES256")
LIVE, GONE = "a" * 32, "b" * 32


def token(sid: str) -> str:
    signed, _ = sign_access_token(
        KEYSET.active, issuer="i", audience="a", sub="s", sid=sid, ttl=60, now=time.time()
    )
    return signed


def verifier(
    policy: StalePolicy, staleness: float, decisions: list[tuple[str, bool]] | None = None
) -> tuple[Verifier, Denylist]:
    denylist, seen = Denylist(), decisions if decisions is not None else []
    decoder = AccessTokenDecoder(
        lambda: KEYSET, issuer="i", audience="a", leeway=0, max_bytes=4096, retain=60
    )

    async def session_exists(claims: AccessClaims) -> bool:
        return claims.sid == LIVE

    engine = Verifier(
        decoder,
        denylist,
        staleness=lambda now: staleness,
        budget=1.0,
        policy=policy,
        session_exists=session_exists,
        on_stale=lambda policy, accepted: seen.append((policy, accepted)),
    )
    return engine, denylist


async def test_a_current_denylist_decides_alone() -> None:
    engine, denylist = verifier("fail_closed", staleness=0.5)
    assert (await engine.verify(token(GONE))).sid == GONE
    denylist.apply(SessionRevoked(id="1" * 32, at=time.time(), sid=GONE, expires_at=2e9))
    with pytest.raises(TokenRevoked):
        await engine.verify(token(GONE))


@pytest.mark.parametrize("staleness", [1.5, math.inf])
async def test_fail_closed_rejects_every_token_while_stale(staleness: float) -> None:
    decisions: list[tuple[str, bool]] = []
    engine, _ = verifier("fail_closed", staleness, decisions)
    with pytest.raises(DenylistStale):
        await engine.verify(token(LIVE))
    assert decisions == [("fail_closed", False)]


async def test_fallback_asks_the_session_store() -> None:
    engine, _ = verifier("fallback", staleness=5.0)
    assert (await engine.verify(token(LIVE))).sid == LIVE
    with pytest.raises(TokenRevoked):
        await engine.verify(token(GONE))


async def test_fail_open_accepts_and_counts() -> None:
    decisions: list[tuple[str, bool]] = []
    engine, denylist = verifier("fail_open", staleness=5.0, decisions=decisions)
    assert (await engine.verify(token(GONE))).sid == GONE
    assert decisions == [("fail_open", True)]
    denylist.apply(SessionRevoked(id="1" * 32, at=time.time(), sid=GONE, expires_at=2e9))
    with pytest.raises(TokenRevoked):
        await engine.verify(token(GONE))


def test_fallback_without_a_store_is_a_configuration_error() -> None:
    decoder = AccessTokenDecoder(
        lambda: KEYSET, issuer="i", audience="a", leeway=0, max_bytes=4096, retain=60
    )
    with pytest.raises(ConfigError):
        Verifier(decoder, Denylist(), policy="fallback")
