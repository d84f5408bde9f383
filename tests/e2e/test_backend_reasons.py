"""Issue 14's acceptance with real processes: the reason of a forced sign-out arrives in a
backend's 401 and in its WebSocket close.

A local cluster (one sessiond replica, NATS, Redis, no relay) and one replica of
``examples/bank`` under granian, verifying tokens with the Litestar plugin and following the
revocation stream: the reason travels in the event, through the stream, into the backend's
denylist, and out in its answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from examples.bank.client import Closed, Feed
from sessiond.cluster import LocalCluster
from sessiond.verifier import CLOSE_REVOKED
from support.authority import bearer
from support.cluster import REVOKED, ROOT, Api, unique

SCOPES = "accounts:read transfers:write"


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        1, relay=False, app="examples.bank.app:app", app_replicas=1, app_dir=ROOT
    ) as cluster:
        yield cluster


def test_a_forced_sign_out_tells_the_backend_why(cluster: LocalCluster, api: Api) -> None:
    sub = unique("reasons")
    signed_in = api.http[0].post(
        "/v1/sessions", json={"subject": sub, "scope": SCOPES}, headers=api.service
    )
    assert signed_in.status_code == 201, signed_in.text
    access = signed_in.json()["access_token"]
    [app_url] = cluster.app_urls
    with httpx.Client(base_url=app_url, timeout=10.0) as app:
        assert app.get("/accounts/balance", headers=bearer(access)).status_code == 200
        feed = Feed.open(app_url, access)
        try:
            assert isinstance(feed.receive(timeout=3.0), str)  # the feed's first event
            revoked = api.http[0].delete(
                f"/v1/subjects/{sub}/sessions?reason_code=password_change", headers=api.service
            )
            assert revoked.status_code == 204, revoked.text
            closed = _closed(feed)
        finally:
            feed.close()
        refused = app.get("/accounts/balance", headers=bearer(access))

    assert refused.status_code == 401, refused.text
    problem = refused.json()
    assert problem["type"] == REVOKED
    assert problem["reason_code"] == "password_change"
    assert problem["reason"] == "forced sign-out"
    challenge = refused.headers["www-authenticate"]
    assert 'error_description="token revoked: password_change"' in challenge
    assert closed == Closed(CLOSE_REVOKED, "token revoked (subject); reason_code=password_change")


def _closed(feed: Feed) -> Closed:
    """The server's close frame (skipping events sent before it), within a second."""
    deadline = time.monotonic() + 1.0
    while True:
        message = feed.receive(timeout=max(deadline - time.monotonic(), 0.001))
        if isinstance(message, Closed):
            return message
