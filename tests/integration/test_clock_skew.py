"""A replica whose clock is off from Redis's by more than half the leeway stops serving what
depends on its clock (503 clock-skewed, /readyz 503), and serves again once it is back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.runtime import Runtime
from sessiond.sessions import clock
from sessiond.sessions.clock import ClockCheck
from support.authority import Authority, assert_problem, distributed_settings
from support.polling import eventually


async def test_a_skewed_replica_refuses_its_clock_until_it_is_true_again(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clock, "INTERVAL", 0.05)
    settings, secret = distributed_settings(redis_url, tmp_path)
    offset = 0.0
    runtime = Runtime(settings, clock=lambda: time.time() + offset)
    check = runtime.clock_check
    assert check is not None
    http: AsyncTestClient[Any]
    async with AsyncTestClient(create_app(runtime)) as http:
        authority = Authority(http, runtime, secret)
        tokens = await authority.login()
        await _measured(check, offset)

        for offset in (120.0, -120.0, 3.0):
            await _measured(check, offset)
            assert_problem(await http.get("/readyz"), 503, "clock-skewed")
            assert (await http.get("/healthz")).status_code == 200
            down = await http.post("/v1/sessions", json={"subject": "b"}, headers=authority.service)
            assert_problem(down, 503, "clock-skewed")
            assert_problem(await authority.refresh(tokens["refresh_token"]), 503, "clock-skewed")
            assert_problem(await authority.whoami(tokens["access_token"]), 503, "clock-skewed")
            introspect = await http.post(
                "/v1/introspect", data={"token": tokens["access_token"]}, headers=authority.service
            )
            assert_problem(introspect, 503, "clock-skewed")
            sign_out = await http.delete("/v1/subjects/alice/sessions", headers=authority.service)
            assert_problem(sign_out, 503, "clock-skewed")
            assert abs(_exported_skew((await http.get("/metrics")).text) - offset) < 0.5

        offset = 0.0
        await _measured(check, offset)
        assert (await http.get("/readyz")).status_code == 200
        assert (await authority.whoami(tokens["access_token"])).status_code == 200
        assert (await authority.refresh(tokens["refresh_token"])).status_code == 200
        await authority.login("b")


def _exported_skew(metrics: str) -> float:
    (line,) = (ln for ln in metrics.splitlines() if ln.startswith("sessiond_clock_skew_seconds "))
    return float(line.split()[1])


async def _measured(check: ClockCheck, offset: float) -> None:
    def near() -> bool:
        return check.skew is not None and abs(check.skew - offset) < 0.5

    await eventually(near, what=f"a skew of {offset} s measured")
