"""The console in the distributed mode: a page open on one replica hears of a revocation made
on another (through the stream), and the health panel lists every follower with its lag.

Each replica's app runs on an event loop of its own (its test client's portal): what touches
a replica's runtime runs there."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from litestar.response import ServerSentEventMessage

from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.stream import StreamSpec
from sessiond.console import devices
from sessiond.console.admin import ADMIN_COOKIE
from sessiond.console.health import health
from sessiond.console.security import CSRF_COOKIE
from sessiond.console.state import Console, UserCookies
from support.authority import Authority, MakeAuthority
from support.secrets import register
from support.servers import ServerProcess


@pytest.fixture
def backend(redis_url: str, nats_server: ServerProcess, spec: StreamSpec) -> dict[str, str]:
    """The distributed mode on this test's own stream."""
    return {
        "redis_url": redis_url,
        "nats_url": nats_server.url,
        "nats_stream": spec.name,
        "nats_subject": spec.subject_prefix,
    }


async def test_a_page_on_one_replica_hears_of_a_sign_out_made_on_another(
    make_authority: MakeAuthority,
) -> None:
    one, other = await make_authority(), await make_authority()
    sid = (await one.login("alice"))["session_id"]
    console = Console(other.runtime, UserCookies("__Host-sessiond-refresh", lambda *_: None))
    listening = threading.Event()

    async def page() -> ServerSentEventMessage:
        """The page's stream, on the other replica's event loop."""
        stream = devices._follow(console, "alice")
        assert (await anext(stream)).event == "ready"
        listening.set()
        try:
            return await asyncio.wait_for(anext(stream), 3.0)
        finally:
            await stream.aclose()

    heard = other.http.blocking_portal.start_task_soon(page)
    assert listening.wait(2.0)
    answer = await one.http.delete(f"/v1/sessions/{sid}", headers=one.service)
    assert answer.status_code == 204, answer.text
    said = await asyncio.wrap_future(heard)
    assert (said.event, said.data) == ("revoked", "session")


async def test_the_health_panel_lists_every_follower_and_its_lag(
    make_authority: MakeAuthority,
) -> None:
    one, other = await make_authority(), await make_authority()
    await one.login("alice")
    revoked = await one.http.delete("/v1/subjects/alice/sessions", headers=one.service)
    assert revoked.status_code == 204, revoked.text
    wanted = {follower(authority) for authority in (one, other)}
    deadline = time.monotonic() + 5.0
    while True:
        seen = one.http.blocking_portal.call(health, one.runtime.bus, one.runtime.store, 1.0)
        current = {f.id for f in seen.followers or [] if f.lag == 0 and f.applied >= 1}
        if wanted <= current or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert wanted <= current, seen.followers
    assert seen.outbox == 0
    assert not seen.stale
    other.runtime.credentials = one.runtime.credentials  # as if both read one credentials file
    page = await admin_page(signed_in_on=one, read_on=other)
    assert "Followers heard from" in page
    assert all(f"<code>{f}</code>" in page for f in wanted)


async def admin_page(signed_in_on: Authority, read_on: Authority) -> str:
    """The administrator console, signed in with the replicas' all-scopes credential on one
    replica and read on another (the console session is in Redis). The test client speaks
    http, where it keeps no ``Secure`` cookie: they go by hand."""
    http = signed_in_on.http
    csrf = (await http.get("/console/admin/sign-in")).cookies[CSRF_COOKIE]
    signed_in = await http.post(
        "/console/admin/sign-in",
        data={"csrf": csrf, "credential": signed_in_on.credential},
        headers={"cookie": f"{CSRF_COOKIE}={csrf}"},
        follow_redirects=False,
    )
    session = signed_in.cookies[ADMIN_COOKIE]
    register("console session", session)
    page = await read_on.http.get("/console/admin", headers={"cookie": f"{ADMIN_COOKIE}={session}"})
    assert page.status_code == 200, page.text
    return page.text


def follower(authority: Authority) -> str:
    bus = authority.runtime.bus
    assert isinstance(bus, JetStreamBus)
    return bus.follower.id
