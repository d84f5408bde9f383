"""Per-session lifetimes over HTTP: a session asks for its own idle and absolute lifetimes within
the settings' bounds, or a NIST SP 800-63B-4 preset (memory and Redis)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import jwt
import pytest

from sessiond.sessions.lifetimes import PRESETS
from support.authority import Authority, MakeAuthority, assert_problem


def seconds_left(view: dict[str, Any], field: str) -> float:
    return datetime.fromisoformat(view[field]).timestamp() - time.time()


async def view_of(authority: Authority, sid: str) -> dict[str, Any]:
    response = await authority.http.get(f"/v1/sessions/{sid}", headers=authority.service)
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("preset", ["aal2", "aal3"])
async def test_a_preset_sets_both_lifetimes(authority: Authority, preset: str) -> None:
    tokens = await authority.login(lifetime={"preset": preset})
    view = await view_of(authority, tokens["session_id"])
    expected = PRESETS[preset]  # type: ignore[index]
    assert seconds_left(view, "idle_expires_at") == pytest.approx(expected.idle, abs=2)
    assert seconds_left(view, "expires_at") == pytest.approx(expected.absolute, abs=2)
    assert tokens["refresh_expires_in"] == pytest.approx(expected.idle, abs=2)


async def test_remember_me_within_the_bounds_and_refresh_keeps_its_idle_lifetime(
    make_authority: MakeAuthority,
) -> None:
    month = 30 * 86400
    authority = await make_authority(session_max_idle_ttl=7 * 86400, session_max_absolute_ttl=month)
    tokens = await authority.login(lifetime={"idle_ttl": 7 * 86400, "absolute_ttl": month})
    view = await view_of(authority, tokens["session_id"])
    assert seconds_left(view, "expires_at") == pytest.approx(month, abs=2)
    refreshed = await authority.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_expires_in"] == pytest.approx(7 * 86400, abs=2)
    view = await view_of(authority, tokens["session_id"])
    assert seconds_left(view, "idle_expires_at") == pytest.approx(7 * 86400, abs=2)
    # A plain sign-in still gets the default lifetimes.
    plain = await view_of(authority, (await authority.login())["session_id"])
    assert seconds_left(plain, "idle_expires_at") == pytest.approx(3600, abs=2)


@pytest.mark.parametrize(
    ("lifetime", "idle", "absolute"),
    [
        ({"idle_ttl": 7200}, 3600, 86400),  # cut to SESSIOND_SESSION_MAX_IDLE_TTL
        ({"absolute_ttl": 2 * 86400}, 3600, 86400),  # to SESSIOND_SESSION_MAX_ABSOLUTE_TTL
        ({"idle_ttl": 10}, 60, 86400),  # raised to the shortest idle lifetime
        ({"idle_ttl": 1800, "absolute_ttl": 900}, 900, 900),  # idle no longer than absolute
    ],
)
async def test_a_lifetime_is_granted_within_the_bounds(
    authority: Authority, lifetime: dict[str, Any], idle: int, absolute: int
) -> None:
    tokens = await authority.login(lifetime=lifetime)
    view = await view_of(authority, tokens["session_id"])
    assert seconds_left(view, "idle_expires_at") == pytest.approx(idle, abs=2)
    assert seconds_left(view, "expires_at") == pytest.approx(absolute, abs=2)
    assert tokens["refresh_expires_in"] == pytest.approx(idle, abs=2)


async def test_an_unknown_preset_is_400(authority: Authority) -> None:
    response = await authority.http.post(
        "/v1/sessions",
        json={"subject": "alice", "lifetime": {"preset": "aal4"}},
        headers=authority.service,
    )
    assert_problem(response, 400)


async def test_access_tokens_never_outlive_a_short_session(make_authority: MakeAuthority) -> None:
    authority = await make_authority(access_ttl=600)
    tokens = await authority.login(lifetime={"idle_ttl": 120, "absolute_ttl": 180})
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 180
