"""Session data updates over HTTP: JSON merge patch with ETag / If-Match, size-capped, audited
(memory and Redis)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from sessiond.sessions.data import merge_patch
from support.authority import Authority, MakeAuthority, assert_problem

MERGE_PATCH = "application/merge-patch+json"


async def patch(authority: Authority, sid: str, body: Any, if_match: str | None) -> httpx.Response:
    headers = {**authority.service, "Content-Type": MERGE_PATCH}
    if if_match is not None:
        headers["If-Match"] = if_match
    return await authority.http.patch(f"/v1/sessions/{sid}", json=body, headers=headers)


async def read(authority: Authority, sid: str) -> httpx.Response:
    return await authority.http.get(f"/v1/sessions/{sid}", headers=authority.service)


async def test_a_patch_merges_and_moves_the_etag(authority: Authority) -> None:
    sid = (await authority.login(data={"cart": {"items": 1, "coupon": "X"}, "step": 1}))[
        "session_id"
    ]
    first = await read(authority, sid)
    etag = first.headers["etag"]
    changed = await patch(authority, sid, {"cart": {"coupon": None, "items": 2}, "step": 2}, etag)
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"] == {"cart": {"items": 2}, "step": 2}
    assert changed.headers["etag"] != etag
    again = await read(authority, sid)
    assert again.json()["data"] == {"cart": {"items": 2}, "step": 2}
    assert again.headers["etag"] == changed.headers["etag"]


async def test_a_stale_etag_is_412_and_changes_nothing(authority: Authority) -> None:
    sid = (await authority.login(data={"step": 1}))["session_id"]
    etag = (await read(authority, sid)).headers["etag"]
    assert (await patch(authority, sid, {"step": 2}, etag)).status_code == 200
    stale = await patch(authority, sid, {"step": 3}, etag)
    assert_problem(stale, 412, "precondition-failed")
    assert (await read(authority, sid)).json()["data"] == {"step": 2}
    weak = await patch(
        authority, sid, {"step": 3}, "W/" + (await read(authority, sid)).headers["etag"]
    )
    assert_problem(weak, 412, "precondition-failed")  # If-Match compares strongly


async def test_without_if_match_it_is_428_and_star_matches_any(authority: Authority) -> None:
    sid = (await authority.login())["session_id"]
    assert_problem(await patch(authority, sid, {"a": 1}, None), 428, "precondition-required")
    assert (await patch(authority, sid, {"a": 1}, "*")).status_code == 200


async def test_of_two_concurrent_patches_one_wins(authority: Authority) -> None:
    sid = (await authority.login(data={"n": 0}))["session_id"]
    etag = (await read(authority, sid)).headers["etag"]
    answers = await asyncio.gather(
        *(patch(authority, sid, {"n": n, f"by{n}": True}, etag) for n in range(1, 9))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [412] * 7
    winner = next(a for a in answers if a.status_code == 200).json()["data"]
    assert (await read(authority, sid)).json()["data"] == winner


async def test_the_data_limit_holds_after_the_patch(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_data_bytes=256)
    sid = (await authority.login(data={"a": "x" * 100}))["session_id"]
    etag = (await read(authority, sid)).headers["etag"]
    too_big = await patch(authority, sid, {"b": "y" * 200}, etag)
    assert_problem(too_big, 413, "payload-too-large")
    assert (await read(authority, sid)).json()["data"] == {"a": "x" * 100}


async def test_patching_an_unknown_session_is_404(authority: Authority) -> None:
    assert_problem(await patch(authority, "0" * 32, {"a": 1}, "*"), 404, "session-not-found")


async def test_a_body_that_is_not_an_object_is_400(authority: Authority) -> None:
    sid = (await authority.login())["session_id"]
    assert_problem(await patch(authority, sid, [1, 2], "*"), 400)


async def test_a_data_update_is_audited(
    authority: Authority, caplog: pytest.LogCaptureFixture
) -> None:
    sid = (await authority.login())["session_id"]
    with caplog.at_level(logging.INFO, logger="sessiond.audit"):
        assert (await patch(authority, sid, {"a": 1}, "*")).status_code == 200
    assert any(
        '"action":"session.data_updated"' in r.getMessage() and sid in r.getMessage()
        for r in caplog.records
    )


# RFC 7396 Appendix A, every example: the standard's own vectors.
RFC7396_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch_", "result"), RFC7396_EXAMPLES)
def test_merge_patch_follows_rfc_7396(target: Any, patch_: Any, result: Any) -> None:
    assert merge_patch(target, patch_) == result
