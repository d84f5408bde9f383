"""The console's parts that need no app: the user-agent reader, the revocation feed (and its
cost when nobody listens), the live page's event stream, the audit trail's bounds, and
administrators' sessions."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import pytest

from sessiond.audit import Actor, AuditContext, Auditor, event
from sessiond.console import devices
from sessiond.console import trail as trail_module
from sessiond.console.admins import AdminSessions, MemoryAdminSessions, RedisAdminSessions
from sessiond.console.feed import RevocationFeed, concerns
from sessiond.console.state import Console, UserCookies
from sessiond.console.trail import AuditTrail
from sessiond.console.useragent import readable
from sessiond.credentials.store import CredentialSet
from sessiond.denylist.denylist import Denylist
from sessiond.errors import InsufficientScope
from sessiond.events import (
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
)
from sessiond.redis_client import blocking_client
from sessiond.runtime import Runtime
from sessiond.sessions.models import new_session_id
from sessiond.settings import Settings

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("user_agent", "shown"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
            "Edge 131 on Windows",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox 133 on Linux",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari 17 on iPadOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
            "Samsung Internet 25 on Android",
        ),
        ("curl/8.5.0", "curl 8"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0)", "A browser on ChromeOS"),
        ("okhttp/4.12.0", "okhttp/4.12.0"),
        ("x" * 100, "x" * 60 + "…"),
        (None, "Unknown browser"),
    ],
)
def test_a_user_agent_reads_as_browser_and_system(user_agent: str | None, shown: str) -> None:
    assert readable(user_agent) == shown


def session_event(sub: str) -> SessionRevoked:
    return SessionRevoked(id="a" * 32, at=NOW, sid=new_session_id(sub), expires_at=NOW + 60)


async def test_the_feed_listens_to_the_denylist_only_while_someone_is_subscribed() -> None:
    denylist = Denylist()
    feed = RevocationFeed(denylist)
    with feed.subscribe(concerns("alice")) as queue:
        assert len(denylist.listeners) == 1
        with feed.subscribe(concerns("bob")):
            assert len(denylist.listeners) == 1
        revoked = session_event("alice")
        denylist.apply(revoked)
        assert queue.get_nowait() == revoked
    assert denylist.listeners == []


async def test_the_feed_hands_out_the_events_that_may_end_a_session_of_the_subject() -> None:
    denylist = Denylist()
    feed = RevocationFeed(denylist)
    events: list[Revocation] = [
        session_event("alice"),
        session_event("bob"),
        SubjectRevoked(id="b" * 32, at=NOW, sub="alice", not_before=int(NOW), expires_at=NOW),
        SubjectRevoked(id="c" * 32, at=NOW, sub="bob", not_before=int(NOW), expires_at=NOW),
        TokenRevoked(id="d" * 32, at=NOW, jti="j", expires_at=NOW + 60),
        AllRevoked(id="e" * 32, at=NOW, not_before=int(NOW)),
    ]
    with feed.subscribe(concerns("alice")) as queue:
        for revocation in events:
            denylist.apply(revocation)
        feed.close()
        received = [queue.get_nowait() for _ in range(queue.qsize())]
    assert received == [events[0], events[2], None]


async def test_a_slow_page_misses_events_but_never_the_end_of_the_feed() -> None:
    denylist = Denylist()
    feed = RevocationFeed(denylist)
    with feed.subscribe(lambda _: True) as queue:
        for _ in range(100):
            denylist.apply(session_event("alice"))
        feed.close()
        assert queue.full()
        received = [queue.get_nowait() for _ in range(queue.qsize())]
    assert received[-1] is None


async def test_the_trail_keeps_the_latest_events_of_the_subjects_acted_on_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trail_module, "SUBJECTS", 2)
    monkeypatch.setattr(trail_module, "PER_SUBJECT", 3)
    trail = AuditTrail()
    trail.attach()
    audit_log = logging.getLogger("sessiond.audit")
    level = audit_log.level
    audit_log.setLevel(logging.INFO)
    auditor, by = Auditor(), AuditContext(actor=Actor.service("c1", "ops"))
    try:
        await auditor.record(event("session.refreshed", NOW, by, subject="alice", session_id="s1"))
        for n in range(4):
            await auditor.record(event("session.revoked", NOW + n, by, session_id="s1"))
        await auditor.record(event("subject.revoked", NOW, by, subject="bob"))
        await auditor.record(event("session.revoked", NOW, by, session_id="unknown"))
        # the refresh itself is not kept: it only told which subject s1 is of
        assert [e["at"] for e in trail.of("alice")] == [NOW + 3, NOW + 2, NOW + 1]
        assert [e["action"] for e in trail.of("bob")] == ["subject.revoked"]
        await auditor.record(event("subject.revoked", NOW, by, subject="carol"))
        assert trail.of("alice") == []  # the subject acted on least recently is forgotten
    finally:
        trail.detach()
        audit_log.setLevel(level)


@pytest.fixture(params=["memory", "redis"])
async def admin_sessions(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[AdminSessions, list[float]]]:
    """Administrators' sessions (60 s) and the clock they read, which the test moves."""
    now = [NOW]
    if request.param == "memory":
        sessions: AdminSessions = MemoryAdminSessions(ttl=60, clock=lambda: now[0])
    else:
        redis = blocking_client(request.getfixturevalue("redis_url"), max_connections=2, timeout=1)
        sessions = RedisAdminSessions(redis, ttl=60, clock=lambda: now[0])
    yield sessions, now
    await sessions.aclose()


async def test_an_administrators_session_ends_with_its_ttl_or_its_credentials_scope(
    admin_sessions: tuple[AdminSessions, list[float]],
) -> None:
    sessions, now = admin_sessions
    _, credentials = CredentialSet().issue("ops", ["console:admin"])
    _, reader = credentials.issue("reader", ["sessions:read"])
    with pytest.raises(InsufficientScope):
        await sessions.open(reader.credentials[1])
    token = await sessions.open(credentials.credentials[0])
    admin = await sessions.get(token, credentials)
    assert admin is not None
    assert admin.name == "ops"
    assert await sessions.get(token, CredentialSet()) is None  # the credential was removed
    assert await sessions.get("x" + token, credentials) is None
    now[0] += 60
    assert await sessions.get(token, credentials) is None
    now[0] = NOW
    await sessions.close(token)
    assert await sessions.get(token, credentials) is None


async def test_an_event_stream_says_each_revocation_once_and_ends_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devices, "STREAM_LIFETIME", 0.3)
    runtime = Runtime(Settings.load({}))
    console = Console(runtime, UserCookies("__Host-sessiond-refresh", lambda *_: None))
    others = list(runtime.denylist.listeners)
    stream = devices._follow(console, "alice")
    ready = await anext(stream)
    assert (ready.event, ready.retry) == ("ready", devices.RECONNECT_MS)
    revoked = session_event("alice")
    runtime.denylist.apply(revoked)
    runtime.denylist.apply(revoked)  # applied here, then again from the stream
    runtime.denylist.apply(session_event("bob"))
    started = time.monotonic()
    said = [message async for message in stream]
    assert time.monotonic() - started < 1.0
    assert [(m.event, m.data) for m in said if m.event] == [("revoked", "session")]
    assert runtime.denylist.listeners == others
