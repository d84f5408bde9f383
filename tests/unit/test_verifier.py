"""The verifier engine: denylist decisions and the stale-denylist policies (I2)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from pathlib import Path

import pytest

from sessiond.denylist.denylist import Denylist
from sessiond.errors import ConfigError, DenylistStale, InvalidToken, RevokedToken
from sessiond.events import Revocation, SessionRevoked
from sessiond.settings import StalePolicy
from sessiond.tokens.access import AccessTokenDecoder, sign_access_token
from sessiond.tokens.claims import AccessClaims
from sessiond.tokens.keys import Keyset
from sessiond.verifier.engine import Verifier
from sessiond.verifier.keys import LocalKeys

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
        LocalKeys(KEYSET),
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
    with pytest.raises(RevokedToken):
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
    with pytest.raises(RevokedToken):
        await engine.verify(token(GONE))


async def test_fail_open_accepts_and_counts() -> None:
    decisions: list[tuple[str, bool]] = []
    engine, denylist = verifier("fail_open", staleness=5.0, decisions=decisions)
    assert (await engine.verify(token(GONE))).sid == GONE
    assert decisions == [("fail_open", True)]
    denylist.apply(SessionRevoked(id="1" * 32, at=time.time(), sid=GONE, expires_at=2e9))
    with pytest.raises(RevokedToken):
        await engine.verify(token(GONE))


class RecordingBus:
    """A revocation bus that only records being started and closed."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def publish(self, event: Revocation) -> None:
        raise AssertionError("a verifier never publishes")

    def staleness(self, now: float) -> float:
        return 0.0

    async def aclose(self) -> None:
        self.calls.append("aclose")


@pytest.mark.parametrize("fails", [False, True])
async def test_async_with_starts_the_verifier_and_closes_it(fails: bool) -> None:
    bus = RecordingBus()
    decoder = AccessTokenDecoder(
        lambda: KEYSET, issuer="i", audience="a", leeway=0, max_bytes=4096, retain=60
    )
    engine = Verifier(decoder, LocalKeys(KEYSET), Denylist(), bus=bus)
    with contextlib.suppress(RuntimeError):
        async with engine as entered:
            assert entered is engine
            assert bus.calls == ["start"]
            assert (await entered.verify(token(LIVE))).sid == LIVE
            if fails:
                raise RuntimeError("the backend stops")
    assert bus.calls == ["start", "aclose"]


def test_fallback_without_a_store_is_a_configuration_error() -> None:
    decoder = AccessTokenDecoder(
        lambda: KEYSET, issuer="i", audience="a", leeway=0, max_bytes=4096, retain=60
    )
    with pytest.raises(ConfigError):
        Verifier(decoder, LocalKeys(KEYSET), Denylist(), policy="fallback")


def plain(keys: LocalKeys, *, cache_size: int = 100) -> Verifier:
    decoder = AccessTokenDecoder(
        keys.current, issuer="i", audience="a", leeway=0, max_bytes=4096, retain=60
    )
    return Verifier(decoder, keys, Denylist(), cache_size=cache_size)


async def test_a_cached_token_is_still_checked_against_the_denylist() -> None:
    engine = plain(LocalKeys(KEYSET))
    signed = token(GONE)
    await engine.verify(signed)
    assert len(engine.cache) == 1
    engine.denylist.apply(SessionRevoked(id="1" * 32, at=time.time(), sid=GONE, expires_at=2e9))
    with pytest.raises(RevokedToken):
        await engine.verify(signed)


async def test_a_cached_token_expires() -> None:
    engine = plain(LocalKeys(KEYSET))
    signed, _ = sign_access_token(
        KEYSET.active, issuer="i", audience="a", sub="s", sid=LIVE, ttl=1, now=time.time()
    )
    await engine.verify(signed)
    await asyncio.sleep(1.1 - time.time() % 1 + 0.05)  # past the second the token expires in
    with pytest.raises(InvalidToken, match="expired"):
        await engine.verify(signed)
    assert len(engine.cache) == 0


async def test_cached_tokens_are_verified_again_once_the_keys_change() -> None:
    keys = LocalKeys(KEYSET)
    engine = plain(keys)
    signed = token(LIVE)
    await engine.verify(signed)
    keys.keyset = Keyset.generate("ES256")  # the key that signed it is withdrawn
    with pytest.raises(InvalidToken, match="unknown signing key"):
        await engine.verify(signed)


async def test_the_cache_is_bounded_and_keyed_on_the_whole_token() -> None:
    engine = plain(LocalKeys(KEYSET), cache_size=2)
    tokens = [token(LIVE) for _ in range(3)]
    for signed in tokens:
        await engine.verify(signed)
    assert len(engine.cache) == 2
    assert engine.cache.get(tokens[0], KEYSET) is None  # the oldest went first
    head, _, signature = tokens[2].rpartition(".")
    assert engine.cache.get(head + "." + signature[::-1], KEYSET) is None


async def test_a_rotated_keyset_file_is_read_on_an_unknown_kid(tmp_path: Path) -> None:
    path = tmp_path / "keyset.json"
    KEYSET.save(path)
    keys = LocalKeys.load(str(path))
    engine = plain(keys)
    rotated = KEYSET.rotate(time.time(), retain=60)
    rotated.save(path)
    os.utime(path, (time.time() + 5, time.time() + 5))  # a new mtime even on coarse clocks
    signed, _ = sign_access_token(
        rotated.active, issuer="i", audience="a", sub="s", sid=LIVE, ttl=60, now=time.time()
    )
    assert (await engine.verify(signed)).sid == LIVE
