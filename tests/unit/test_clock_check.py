"""The clock check: the skew estimated from the store's clock, and the verdict on it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sessiond.errors import ClockSkewed, StoreUnavailable
from sessiond.sessions.clock import FORGET_AFTER, MAX_ROUND_TRIP, ClockCheck, bound


class Clocks:
    """This replica's wall clock ``offset`` from a true one, a monotonic clock, and a
    server that answers with the true time after ``trip`` seconds (half each way)."""

    def __init__(self, offset: float = 0.0, trip: float = 0.002) -> None:
        self.true, self.mono, self.offset, self.trip = 1_800_000_000.0, 100.0, offset, trip
        self.down = False
        self.samples: list[float] = []

    def wall(self) -> float:
        return self.true + self.offset

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.true += seconds
        self.mono += seconds

    async def server_time(self) -> float:
        if self.down:
            raise StoreUnavailable()
        self.advance(self.trip / 2)
        answer = self.true
        self.advance(self.trip / 2)
        return answer

    def check(self, limit: float = 2.5) -> ClockCheck:
        return ClockCheck(
            self.server_time,
            limit,
            clock=self.wall,
            monotonic=self.monotonic,
            on_sample=self.samples.append,
        )


@pytest.mark.parametrize("offset", [0.0, 1.25, -2.0, 120.0, -120.0])
async def test_the_skew_is_the_offset_at_the_round_trips_midpoint(offset: float) -> None:
    clocks = Clocks(offset, trip=0.04)
    assert await clocks.check().measure() == pytest.approx(offset)
    assert clocks.samples == [pytest.approx(offset)]


async def test_a_sample_with_a_long_round_trip_is_dropped() -> None:
    clocks = Clocks(120.0, trip=MAX_ROUND_TRIP + 0.01)
    check = clocks.check()
    assert await check.measure() is None
    assert check.skew is None
    assert clocks.samples == []
    assert check.now() == clocks.wall()


@pytest.mark.parametrize("offset", [120.0, -120.0, 2.6])
async def test_a_clock_beyond_the_bound_is_refused_until_it_is_within(
    offset: float, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = Clocks(offset)
    check = clocks.check()
    with caplog.at_level(logging.INFO, logger="sessiond.clock"):
        await check.measure()
        with pytest.raises(ClockSkewed) as refused:
            check.now()
        assert (refused.value.status, refused.value.slug) == (503, "clock-skewed")
        await check.measure()  # still skewed: no second error line
        clocks.offset = 0.1
        await check.measure()
    assert check.now() == clocks.wall()
    assert [r.levelname for r in caplog.records] == ["ERROR", "INFO"]


async def test_a_clock_within_the_bound_is_served() -> None:
    clocks = Clocks(2.4)
    check = clocks.check()
    await check.measure()
    assert check.now() == clocks.wall()


async def test_without_samples_the_last_verdict_holds_then_is_forgotten() -> None:
    clocks = Clocks(120.0)
    check = clocks.check()
    await check.measure()
    clocks.down = True
    with pytest.raises(StoreUnavailable):
        await check.measure()
    clocks.advance(FORGET_AFTER - 1)
    with pytest.raises(ClockSkewed):
        check.now()
    clocks.advance(2)
    assert check.skew is None
    assert check.now() == clocks.wall(), "an unknown clock is not refused: Redis is down"


def test_the_bound_is_half_the_leeway_and_never_below_half_a_second() -> None:
    assert bound(5) == 2.5
    assert bound(60) == 30
    assert bound(0) == 0.5


async def test_a_refused_sample_is_logged_and_the_check_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clocks, calls, measured = Clocks(offset=120.0), 0, asyncio.Event()

    async def refused_once() -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise PermissionError("NOPERM this user has no permissions to run the 'time' command")
        measured.set()
        return await clocks.server_time()

    monkeypatch.setattr("sessiond.sessions.clock.INTERVAL", 0.001)
    check = ClockCheck(refused_once, 2.5, clock=clocks.wall, monotonic=clocks.monotonic)
    task = asyncio.create_task(check.run())
    await asyncio.wait_for(measured.wait(), 5)
    await asyncio.sleep(0.01)  # the sample is recorded after the answer
    task.cancel()
    with pytest.raises(ClockSkewed):
        check.now()
    assert "cannot measure the clock skew" in caplog.text
