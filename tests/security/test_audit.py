"""The audit trail (issue 6, point 5): one structured line per action, on the log and on NATS,
with who, which credential, why, when and from where, and never a secret."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, cast

import nats.aio.client
import pytest
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.audit import MAX_USER_AGENT, SYSTEM, AuditEvent, Auditor, audit_subject
from sessiond.broadcast.jetstream import JetStreamBus
from sessiond.broadcast.stream import StreamSpec
from sessiond.errors import DenylistStale
from sessiond.runtime import Runtime
from sessiond.settings import Settings
from support.authority import Authority, MakeAuthority, bearer, distributed_settings
from support.servers import ServerProcess

SECRET_KEYS = {"access_token", "refresh_token", "token", "hash", "secret", "credential"}


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    lines = []
    for record in caplog.records:
        if record.name == "sessiond.audit":
            message = record.getMessage()
            assert "\n" not in message
            line: dict[str, Any] = json.loads(message)
            assert record.audit == line  # type: ignore[attr-defined]
            assert not SECRET_KEYS & set(line), line
            lines.append(line)
    return lines


async def one_line(caplog: pytest.LogCaptureFixture, action: Any) -> dict[str, Any]:
    """Run ``action`` and return the single audit line it produced."""
    caplog.clear()
    await action
    lines = audit_lines(caplog)
    assert len(lines) == 1, lines
    return lines[0]


def service_actor(authority: Authority) -> dict[str, str]:
    credential = authority.runtime.credentials.authenticate(authority.credential)
    return {"type": "service", "id": credential.id, "name": credential.name}


def assert_clean(line: dict[str, Any], *secrets: str) -> None:
    text = json.dumps(line)
    for secret in secrets:
        assert secret not in text
        assert secret.rpartition(".")[2] not in text


async def test_each_action_is_one_audit_line(
    make_authority: MakeAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessiond.audit")
    authority = await make_authority(refresh_grace=0)
    http, service = authority.http, service_actor(authority)

    caplog.clear()
    tokens = await authority.login("alice")
    [created] = audit_lines(caplog)
    sid = tokens["session_id"]
    assert created["action"] == "session.created"
    assert created["actor"] == service
    assert created["subject"] == "alice"
    assert created["session_id"] == sid
    assert created["source"] == {"ip": "testclient", "user_agent": "testclient"}
    assert isinstance(created["at"], float)
    assert "reason" not in created
    assert_clean(created, tokens["access_token"], tokens["refresh_token"], authority.credential)

    refreshed = await one_line(caplog, authority.refresh(tokens["refresh_token"]))
    assert refreshed["action"] == "session.refreshed"
    assert refreshed["actor"] == {"type": "client", "session_id": sid}
    assert refreshed["subject"] == "alice"
    assert refreshed["session_id"] == sid
    assert refreshed["source"]["ip"] == "testclient"
    assert_clean(refreshed, tokens["refresh_token"])

    # the rotated-away token presented again (no grace window): the session is revoked
    reused = await one_line(caplog, authority.refresh(tokens["refresh_token"]))
    assert reused["action"] == "refresh.reused"
    assert reused["actor"] == {"type": "client", "session_id": sid}
    assert reused["session_id"] == sid
    assert reused["subject"] == "alice"
    assert reused["reason"] == "refresh token reuse"
    assert reused["event_id"]

    tokens = await authority.login("alice")
    sid = tokens["session_id"]
    logout = await one_line(caplog, http.post("/v1/logout", headers=bearer(tokens["access_token"])))
    assert logout["action"] == "session.revoked"
    assert logout["actor"] == {"type": "client", "session_id": sid}
    assert logout["session_id"] == sid
    assert logout["reason"] == "logout"
    assert_clean(logout, tokens["access_token"])

    tokens = await authority.login("alice")
    sid = tokens["session_id"]
    rfc7009 = await one_line(
        caplog, http.post("/v1/revoke", data={"token": tokens["refresh_token"]})
    )
    assert rfc7009["action"] == "session.revoked"
    assert rfc7009["reason"] == "revoked by client"
    assert rfc7009["actor"] == {"type": "client", "session_id": sid}

    tokens = await authority.login("alice")
    sid = tokens["session_id"]
    by_service = await one_line(
        caplog, http.delete(f"/v1/sessions/{sid}", headers=authority.service)
    )
    assert by_service["action"] == "session.revoked"
    assert by_service["actor"] == service
    assert by_service["session_id"] == sid
    assert by_service["reason"] == "revoked by service"

    everywhere = await one_line(
        caplog, http.delete("/v1/subjects/alice/sessions", headers=authority.service)
    )
    assert everywhere["action"] == "subject.revoked"
    assert everywhere["subject"] == "alice"
    assert everywhere["actor"] == service
    assert everywhere["reason"] == "forced sign-out"

    kinds = {
        "token": ({"jti": "j-123"}, "token.revoked"),
        "session": ({"session_id": sid}, "session.revoked"),
        "subject": ({"subject": "bob"}, "subject.revoked"),
        "all": ({}, "all.revoked"),
    }
    for kind, (fields, action) in kinds.items():
        body = {"kind": kind, "reason": f"incident {kind}", **fields}
        line = await one_line(
            caplog, http.post("/v1/revocations", json=body, headers=authority.service)
        )
        assert line["action"] == action
        assert line["actor"] == service
        assert line["reason"] == f"incident {kind}"
        for key, value in fields.items():
            assert line["subject" if key == "subject" else key] == value


async def test_source_is_the_peer_and_hostile_input_stays_one_line(
    authority: Authority, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessiond.audit")
    headers = {
        **authority.service,
        "X-Forwarded-For": "6.6.6.6",
        "User-Agent": "evil\tagent " + "x" * 1000,
        "X-Request-Id": "req-42",
    }
    body = {"kind": "all", "reason": 'line\nbreak {"action": "forged"}'}
    line = await one_line(
        caplog, authority.http.post("/v1/revocations", json=body, headers=headers)
    )
    assert line["source"]["ip"] == "testclient"  # the ASGI peer, never X-Forwarded-For
    assert "6.6.6.6" not in json.dumps(line)
    assert len(line["source"]["user_agent"]) == MAX_USER_AGENT
    assert line["source"]["request_id"] == "req-42"
    assert line["reason"] == body["reason"]
    assert line["action"] == "all.revoked"


async def test_the_service_alone_audits_as_system(caplog: pytest.LogCaptureFixture) -> None:
    runtime = Runtime(Settings.load({}, {}))  # no HTTP: the default context is the system
    caplog.set_level(logging.INFO, logger="sessiond.audit")
    line = await one_line(caplog, runtime.sessions.revoke_subject("carol", "cron"))
    assert line["actor"] == {"type": "system"}
    assert line["source"] == {}
    assert line["action"] == "subject.revoked"
    assert line["subject"] == "carol"


async def test_a_failing_publish_never_fails_the_action(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        is_connected = True

        async def publish(self, subject: str, payload: bytes) -> None:
            raise OSError("link down")

    caplog.set_level(logging.INFO, logger="sessiond.audit")
    auditor = Auditor("x-audit", lambda: cast(nats.aio.client.Client, Broken()))
    await auditor.record(AuditEvent(action="all.revoked", at=1.0, actor=SYSTEM))
    assert len(audit_lines(caplog)) == 1


async def test_audit_events_reach_nats_outside_the_revocation_stream(
    redis_url: str,
    nats_server: ServerProcess,
    spec: StreamSpec,
    client: nats.aio.client.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sessiond.audit")
    settings, secret = distributed_settings(
        redis_url,
        tmp_path,
        nats_url=nats_server.url,
        nats_stream=spec.name,
        nats_subject=spec.subject_prefix,
    )
    subject = audit_subject(spec.subject_prefix)
    assert subject == f"{spec.subject_prefix}-audit"
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_message(msg: Any) -> None:
        await received.put(msg.data)

    await client.subscribe(subject, cb=on_message)
    await client.flush()
    runtime = Runtime(settings)
    async with AsyncTestClient(create_app(runtime)) as http:
        authority = Authority(http, runtime, secret)
        assert isinstance(runtime.bus, JetStreamBus)
        for _ in range(100):  # connected and caught up with the stream
            try:
                runtime.verifier.check_ready()
                break
            except DenylistStale:
                await asyncio.sleep(0.05)
        tokens = await authority.login("dave")
        response = await http.delete(
            f"/v1/sessions/{tokens['session_id']}", headers=authority.service
        )
        assert response.status_code == 204, response.text  # propagated: the stream has it
        events = [json.loads(await asyncio.wait_for(received.get(), 5)) for _ in range(2)]

    assert [e["action"] for e in events] == ["session.created", "session.revoked"]
    assert events == audit_lines(caplog)  # the same events as the log lines
    assert all(e["actor"]["type"] == "service" for e in events)
    for event in events:
        assert_clean(event, tokens["access_token"], tokens["refresh_token"], secret)

    js = client.jetstream()
    info = await js.stream_info(spec.name)
    assert info.config.subjects == [spec.filter_subject]
    assert info.state.messages == 1  # the revocation only, no audit event
    stored = await js.get_msg(spec.name, 1)
    assert stored.subject == f"{spec.subject_prefix}.session"
