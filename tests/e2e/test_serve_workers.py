"""``sessiond serve --workers N``: every worker is a full replica following the revocation
stream, so a revocation acknowledged by one is enforced by all; the embedded mode refuses."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import nats

from sessiond.broadcast.receipts import Receipt
from sessiond.broadcast.stream import StreamSpec
from support.authority import distributed_settings
from support.servers import SESSIOND, ServerProcess

SESSIOND_BIN = str(Path(sys.executable).with_name("sessiond"))
WORKERS = 2
#: Fresh connections per check: each is accepted by whichever worker is free.
ATTEMPTS = 30


async def _followers(nats_url: str, subject: str, seconds: float) -> set[str]:
    """The process part of every follower id heard on ``subject`` within ``seconds``."""
    heard: set[str] = set()
    nc = await nats.connect(nats_url)
    try:
        subscription = await nc.subscribe(subject)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(heard) < WORKERS:
            try:
                msg = await subscription.next_msg(timeout=deadline - time.monotonic())
            except nats.errors.TimeoutError:
                break
            receipt = msgspec.json.decode(msg.data, type=Receipt)
            heard.add(receipt.follower.rsplit("/", 1)[0])
    finally:
        await nc.close()
    return heard


def _whoami(url: str, token: str) -> list[int]:
    """``GET /v1/whoami`` on a new connection each time: the status codes."""
    return [
        httpx.get(f"{url}/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code
        for _ in range(ATTEMPTS)
    ]


def test_every_worker_follows_the_stream_and_enforces_a_revocation(
    redis_url: str, nats_server: ServerProcess, tmp_path: Path
) -> None:
    name = f"workers{uuid.uuid4().hex[:8]}"
    settings, secret = distributed_settings(
        redis_url, tmp_path, nats_url=nats_server.url, nats_stream=name, nats_subject=name
    )
    env = {
        "SESSIOND_REDIS_URL": redis_url,
        "SESSIOND_KEYSET_FILE": str(settings.keyset_file),
        "SESSIOND_CREDENTIALS_FILE": str(settings.credentials_file),
        "SESSIOND_NATS_URL": nats_server.url,
        "SESSIOND_NATS_STREAM": name,
        "SESSIOND_NATS_SUBJECT": name,
    }
    spec = dataclasses.replace(SESSIOND, args=(*SESSIOND.args, "--workers", str(WORKERS)))
    with ServerProcess(spec, env=env) as server:
        receipts = StreamSpec.from_settings(settings).receipts_filter
        followers = asyncio.run(_followers(nats_server.url, receipts, 10.0))
        assert len(followers) == WORKERS, server.output()  # two processes, two followers
        created = httpx.post(
            f"{server.url}/v1/sessions",
            json={"subject": "alice"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert created.status_code == 201, created.text
        access = created.json()["access_token"]
        assert set(_whoami(server.url, access)) == {200}
        revoked = httpx.delete(
            f"{server.url}/v1/sessions/{created.json()['session_id']}",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert revoked.status_code == 204, revoked.text
        assert set(_whoami(server.url, access)) == {401}


def test_the_embedded_mode_refuses_more_than_one_worker() -> None:
    run = subprocess.run(
        [SESSIOND_BIN, "serve", "--workers", "2"],
        env={},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("sessiond: error: --workers 2 needs SESSIOND_REDIS_URL"), (
        run.stderr
    )
    assert run.stderr.count("\n") == 1
