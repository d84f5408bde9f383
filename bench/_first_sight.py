"""The first-sight cost of a token: the time to verify a token never seen before (a fresh
token each time, so no cache can hit) through the sessiond verification path, against the
bare signature check of the same algorithm (``jwt.get_algorithm_by_name(alg).verify``).

The sessiond path is the verifier SDK's ``Verifier.verify`` given a local keyset (its token
cache misses every fresh token). Both are timed in alternating rounds and each figure is its
best round: the one least disturbed by other work on a shared machine.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt

from bench._processes import BenchError
from bench._report import table
from sessiond.denylist.denylist import Denylist
from sessiond.settings import Algorithm, Settings
from sessiond.tokens.access import AccessTokenDecoder, sign_access_token
from sessiond.tokens.keys import Keyset
from sessiond.verifier.engine import Verifier
from sessiond.verifier.keys import LocalKeys

__all__ = ("ALGORITHMS", "FirstSight", "first_sight", "first_sight_lines")

ALGORITHMS: Final[tuple[Algorithm, ...]] = ("ES256", "EdDSA", "RS256")
TARGET: Final = 1.2
ROUNDS: Final = 5
ACCESS_TTL = 3600


@dataclass(frozen=True)
class FirstSight:
    """Microseconds per fresh token: the whole verification, and the bare signature check."""

    alg: str
    verify: float
    bare: float

    @property
    def ratio(self) -> float:
        """How many times the bare signature check the whole verification costs."""
        return self.verify / self.bare if self.bare > 0 else float("inf")


def first_sight(alg: Algorithm, tokens: int) -> FirstSight:
    """Time the sessiond verification of ``tokens`` never-seen tokens against the bare
    signature check of the same tokens, in ``ROUNDS`` alternating rounds (tokens
    minted beforehand, outside the timings); each figure is its best round, the one least
    disturbed by other work on the machine."""
    settings = Settings()
    keyset = Keyset.generate(alg)
    key = keyset.active
    verify = first_sight_verifier(keyset, settings)
    algorithm = jwt.get_algorithm_by_name(alg)
    per_round = max(1, tokens // ROUNDS)
    verify_us, bare_us = [], []
    for round_ in range(ROUNDS):
        minted = [
            sign_access_token(
                key,
                issuer=settings.issuer,
                audience=settings.audience,
                sub=f"user-{round_}-{n}",
                sid=f"sid-{round_}-{n}",
                scope="balance:read",
                ttl=ACCESS_TTL,
                now=time.time(),
            )[0]
            for n in range(per_round)
        ]
        verify_us.append(_per_token_us(minted, verify))
        split = [_signing_input_and_signature(token) for token in minted]
        started = time.perf_counter()
        for signing_input, signature in split:
            if not algorithm.verify(signing_input, key.public, signature):
                raise BenchError(f"{alg}: the bare check rejected a valid token")
        bare_us.append((time.perf_counter() - started) / len(split) * 1e6)
    return FirstSight(alg=alg, verify=min(verify_us), bare=min(bare_us))


def first_sight_verifier(keyset: Keyset, settings: Settings) -> Callable[[str], Awaitable[Any]]:
    """The verifier SDK's ``Verifier.verify`` on a local keyset, with an empty denylist; every
    fresh token misses its cache."""
    keys = LocalKeys(keyset)
    decoder = AccessTokenDecoder.from_settings(settings, keys.current)
    return Verifier(decoder, keys, Denylist()).verify


def _per_token_us(tokens: Sequence[str], verify: Callable[[str], Awaitable[Any]]) -> float:
    """Mean microseconds of ``await verify(token)`` over ``tokens``."""

    async def run() -> float:
        started = time.perf_counter()
        for token in tokens:
            await verify(token)
        return time.perf_counter() - started

    return asyncio.run(run()) / len(tokens) * 1e6


def _signing_input_and_signature(token: str) -> tuple[bytes, bytes]:
    signing_input, _, signature = token.rpartition(".")
    return signing_input.encode(), base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))


def first_sight_lines(results: Sequence[FirstSight]) -> list[str]:
    """The first-sight table."""
    header = (
        "algorithm",
        "sessiond us",
        "bare verify us",
        "ratio",
        f"target <={TARGET}x",
    )
    rows = [
        (
            f"{r.alg} (Verifier.verify)",
            f"{r.verify:.1f}",
            f"{r.bare:.1f}",
            f"{r.ratio:.2f}x",
            "ok" if r.ratio <= TARGET else "MISSED",
        )
        for r in results
    ]
    return [
        "First sight of a token (never seen before, so no cache hit), per token:",
        *table(header, rows),
    ]
