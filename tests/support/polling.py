"""Waiting for something that happens in the background, without a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest


async def eventually(
    check: Callable[[], object],
    within: float = 5.0,
    what: str = "the condition",
    every: float = 0.002,
) -> float:
    """Poll ``check`` every ``every`` seconds until it holds; return how long that took, or fail
    the test after ``within`` seconds, naming ``what``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(every)
    return time.monotonic() - start
