"""Receivers end to end with real processes: ``sessiond serve`` and ``sessiond-delivery`` on a
real NATS and Redis, receivers as real HTTP servers. A revocation reaches an OIDC relying
party as a logout token and a Shared Signals receiver as a CAEP SET that joserfc verifies
against the JWKS sessiond serves, and a webhook whose signature the ``standardwebhooks``
library verifies; a receiver down for a while gets every event once back; a worker SIGKILLed
mid-batch loses nothing, nor one stopped for longer than the revocation stream keeps events;
dead letters are replayed from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qs

import httpx
import nats
import pytest
import standardwebhooks
from joserfc import jwt
from joserfc.jwk import KeySet

from sessiond.cluster.processes import output_probe
from sessiond.events import ReasonCode
from sessiond.receivers.backchannel import BACKCHANNEL_LOGOUT
from sessiond.receivers.ssf import SESSION_REVOKED
from support.authority import distributed_settings
from support.receivers import Received, ReceiverServer
from support.secrets import register
from support.servers import SESSIOND, ProcessSpec, ServerProcess

ISSUER = "https://auth.example.test"
#: The server hands a message out again 2 s after a silent worker took it (10 s by default);
#: the worker serves its metrics on the process's port.
DELIVERY = ProcessSpec(
    name="sessiond-delivery",
    binary="sessiond-delivery",
    args=(
        *("--ack-wait", "2", "--backoff", "0.1", "--max-backoff", "0.5"),
        *("--metrics-port", "{port}"),
    ),
    scheme="http",
    probe=output_probe("delivery started"),
)


@dataclass
class Deployment:
    api: httpx.Client
    worker: ServerProcess
    service: ServerProcess
    env: dict[str, str]

    def register(self, **body: Any) -> dict[str, Any]:
        response = self.api.post("/v1/receivers", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        register("webhook secret", created.get("secret"))
        return created

    def session(self, subject: str) -> str:
        response = self.api.post("/v1/sessions", json={"subject": subject})
        assert response.status_code == 201, response.text
        sid: str = response.json()["session_id"]
        return sid

    def revoke(self, **body: Any) -> None:
        response = self.api.post("/v1/revocations", json=body)
        assert response.status_code in (200, 204), response.text


@contextlib.contextmanager
def deployed(
    redis_url: str, nats_server: ServerProcess, tmp_path: Path, **extra: str
) -> Iterator[Deployment]:
    """``sessiond serve`` and ``sessiond-delivery`` on a stream of their own; ``extra``
    settings for both."""
    name = f"delivery{uuid.uuid4().hex[:8]}"
    settings, secret = distributed_settings(
        redis_url, tmp_path, nats_url=nats_server.url, nats_stream=name, nats_subject=name
    )
    register("service credential", secret)
    env = {
        "SESSIOND_REDIS_URL": redis_url,
        "SESSIOND_KEYSET_FILE": str(settings.keyset_file),
        "SESSIOND_CREDENTIALS_FILE": str(settings.credentials_file),
        "SESSIOND_NATS_URL": nats_server.url,
        "SESSIOND_NATS_STREAM": name,
        "SESSIOND_NATS_SUBJECT": name,
        "SESSIOND_ISSUER": ISSUER,
        **extra,
    }
    with ServerProcess(SESSIOND, env=env) as service, ServerProcess(DELIVERY, env=env) as worker:
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=service.url, headers=headers) as api:
            yield Deployment(api, worker, service, env)


@pytest.fixture
def deployment(redis_url: str, nats_server: ServerProcess, tmp_path: Path) -> Iterator[Deployment]:
    with deployed(redis_url, nats_server, tmp_path) as deployment:
        yield deployment


def stream_holds(deployment: Deployment) -> int:
    """How many events the revocation stream holds now."""

    async def count() -> int:
        nc = await nats.connect(deployment.env["SESSIOND_NATS_URL"])
        try:
            info = await nc.jetstream().stream_info(deployment.env["SESSIOND_NATS_STREAM"])
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def wait_for(check: Callable[[], bool], within: float, what: str, worker: ServerProcess) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}\n{worker.output()}")
        time.sleep(0.02)


def verified(token: str, typ: str, jwks: KeySet) -> jwt.Token:
    decoded = jwt.decode(token, jwks, algorithms=["ES256"])
    assert decoded.header["typ"] == typ
    return decoded


def test_receivers_get_verifiable_logout_tokens_sets_and_webhooks(deployment: Deployment) -> None:
    with (
        ReceiverServer() as rp,
        ReceiverServer(status=202) as ssf,
        ReceiverServer() as hook,
    ):
        deployment.register(
            id="rp", kind="backchannel_logout", endpoint=rp.url, audience="rp-client"
        )
        deployment.register(id="ssf", kind="ssf", endpoint=ssf.url, audience="https://gw.test")
        secret = deployment.register(id="hook", kind="webhook", endpoint=hook.url)["secret"]
        time.sleep(1.5)  # the worker sees the new receivers within a second
        sid = deployment.session("alice")
        deployment.session("bob")
        deployment.revoke(kind="session", session_id=sid, reason="lost phone", reason_code="forced")
        deployment.revoke(kind="subject", subject="bob", reason_code="password_change")

        def everywhere() -> bool:
            return all(len(r.received) >= 2 for r in (rp, ssf, hook))

        wait_for(everywhere, 15, "two deliveries to each receiver", deployment.worker)

        jwks = KeySet.import_key_set(deployment.api.get("/.well-known/jwks.json").json())
        logout = [
            verified(parse_qs(r.body.decode())["logout_token"][0], "logout+jwt", jwks)
            for r in rp.received
        ]
        assert all(
            r.headers["content-type"] == "application/x-www-form-urlencoded" for r in rp.received
        )
        for token in logout:
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": ISSUER},
                aud={"essential": True, "value": "rp-client"},
                iat={"essential": True},
                exp={"essential": True},
                jti={"essential": True},
            ).validate(token.claims)
            assert token.claims["events"] == {BACKCHANNEL_LOGOUT: {}}
            assert "nonce" not in token.claims
        assert [(t.claims.get("sid"), t.claims.get("sub")) for t in logout] == [
            (sid, None),
            (None, "bob"),
        ]
        assert [t.claims["reason_code"] for t in logout] == ["forced", "password_change"]

        sets = [verified(r.body.decode(), "secevent+jwt", jwks) for r in ssf.received]
        assert all(r.headers["content-type"] == "application/secevent+jwt" for r in ssf.received)
        assert [t.claims["aud"] for t in sets] == ["https://gw.test"] * 2
        assert [t.claims["sub_id"] for t in sets] == [
            {"format": "opaque", "id": sid},
            {"format": "iss_sub", "iss": ISSUER, "sub": "bob"},
        ]
        revoked = [t.claims["events"][SESSION_REVOKED] for t in sets]
        assert revoked[0]["reason_admin"] == {"en": "lost phone"}
        assert [r["initiating_entity"] for r in revoked] == ["admin", "user"]

        bodies = [standardwebhooks.Webhook(secret).verify(r.body, r.headers) for r in hook.received]
        assert [(b["type"], b["data"]["reason_code"]) for b in bodies] == [
            ("revocation.session", "forced"),
            ("revocation.subject", "password_change"),
        ]
        codes = get_args(get_args(ReasonCode)[0])  # Annotated[Literal[...], Meta]
        assert all(b["data"]["reason_code"] in codes for b in bodies)
        metrics = httpx.get(deployment.worker.url).text
        for receiver_id in ("rp", "ssf", "hook"):
            assert f'sessiond_delivery_delivered_total{{receiver="{receiver_id}"}} 2.0' in metrics


def deduplicated(received: list[Received]) -> list[str]:
    """The session ids a webhook receiver got, each once (by ``webhook-id``), in order."""
    seen: dict[str, str] = {}
    for r in list(received):
        seen.setdefault(r.headers["webhook-id"], json.loads(r.body)["data"]["sid"])
    return list(seen.values())


def test_a_receiver_down_for_a_while_gets_every_event_once_back(deployment: Deployment) -> None:
    with ReceiverServer() as hook, ReceiverServer() as other:
        deployment.register(id="hook", kind="webhook", endpoint=hook.url)
        deployment.register(id="other", kind="webhook", endpoint=other.url)
        time.sleep(1.5)
        hook.stop()
        sids = [deployment.session(f"user{n}") for n in range(10)]
        for sid in sids:
            deployment.revoke(kind="session", session_id=sid)
        wait_for(lambda: len(other.received) == 10, 15, "the other receiver", deployment.worker)
        time.sleep(3)  # down for a while
        hook.start()
        wait_for(lambda: len(deduplicated(hook.received)) == 10, 20, "catch-up", deployment.worker)
        assert deduplicated(hook.received) == sids
        assert deduplicated(other.received) == sids


def test_killing_the_worker_mid_batch_loses_nothing(deployment: Deployment) -> None:
    with ReceiverServer() as hook:
        deployment.register(id="hook", kind="webhook", endpoint=hook.url)
        time.sleep(1.5)
        hook.delay = 0.1  # 30 events take 3 s: the kill comes in the middle
        sids = [deployment.session(f"user{n}") for n in range(30)]
        for sid in sids:
            deployment.revoke(kind="session", session_id=sid)
        wait_for(lambda: len(hook.received) >= 5, 15, "the first deliveries", deployment.worker)
        deployment.worker.kill()  # SIGKILL
        got = len(deduplicated(hook.received))
        assert got < 30
        hook.delay = 0.0
        deployment.worker.start()
        wait_for(
            lambda: len(deduplicated(hook.received)) == 30, 30, "every event", deployment.worker
        )
        assert deduplicated(hook.received) == sids


def test_dead_letters_are_replayed_from_the_command_line(deployment: Deployment) -> None:
    with ReceiverServer(status=403) as hook:
        deployment.register(id="hook", kind="webhook", endpoint=hook.url)
        time.sleep(1.5)
        sid = deployment.session("alice")
        deployment.revoke(kind="session", session_id=sid, reason_code="forced")

        def dead_letters() -> list[dict[str, Any]]:
            letters: list[dict[str, Any]] = deployment.api.get(
                "/v1/receivers/hook/dead-letters"
            ).json()["dead_letters"]
            return letters

        wait_for(lambda: len(dead_letters()) == 1, 15, "a dead letter", deployment.worker)
        hook.status = 200
        replay = subprocess.run(
            ["sessiond-delivery", "--replay", "hook"],
            env={**os.environ, **deployment.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert replay.returncode == 0, replay.stderr
        assert replay.stdout.splitlines()[-1] == "1 of 1 delivered"
        assert deduplicated(hook.received) == [sid]
        assert hook.answered == [403, 200]
        assert dead_letters() == []


def test_a_worker_stopped_for_longer_than_the_stream_keeps_events_loses_none(
    redis_url: str, nats_server: ServerProcess, tmp_path: Path
) -> None:
    """The shortest stream the settings allow (1 s tokens, no leeway: 61 s); the worker is
    stopped until the stream has dropped the events, then delivers every one from its copy."""
    shortest = {"SESSIOND_ACCESS_TTL": "1", "SESSIOND_LEEWAY": "0"}
    with (
        deployed(redis_url, nats_server, tmp_path, **shortest) as deployment,
        ReceiverServer() as hook,
    ):
        deployment.register(id="hook", kind="webhook", endpoint=hook.url)
        time.sleep(1.5)
        deployment.worker.stop()
        sids = [deployment.session(f"user{n}") for n in range(10)]
        for sid in sids:
            deployment.revoke(kind="session", session_id=sid)
        assert stream_holds(deployment) == 10
        dropped_by = time.monotonic() + 90
        while stream_holds(deployment):
            assert time.monotonic() < dropped_by, "the stream still holds the events"
            time.sleep(1)
        assert hook.received == []
        deployment.worker.start()
        wait_for(
            lambda: len(deduplicated(hook.received)) == 10, 20, "every event", deployment.worker
        )
        assert deduplicated(hook.received) == sids
