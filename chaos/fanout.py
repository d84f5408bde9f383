"""The revoke call's latency with 1, 10 and 50 followers (verifiers) waited for by receipts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from chaos._api import Api, percentile
from chaos._followers import READY
from chaos._frame import Figure, Options, Outcome
from sessiond.cluster import LocalCluster
from sessiond.settings import PREFIX, env_name

FOLLOWERS = (1, 10, 50)
ROOT = Path(__file__).resolve().parents[1]
SETTLE = 2.0  # seconds for every follower's first receipts to reach the replica
WARM_UP = 5  # revocations first, unmeasured


def _followers(cluster: LocalCluster, count: int) -> subprocess.Popen[str]:
    """A process of ``count`` verifiers of ``cluster``, once every one is ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update(cluster.nats_login("verifier"))
    env[env_name("jwks_url")] = f"{cluster.urls[0]}/.well-known/jwks.json"
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos._followers", str(count)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != READY:
        process.kill()
        raise RuntimeError(f"{count} followers did not get ready (exit {process.wait()})")
    return process


def _stop(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def _latencies(cluster: LocalCluster, revocations: int) -> list[float]:
    """The revoke call's duration, one revocation at a time through replica 1."""
    api = Api.of(cluster)
    try:
        victims = await api.logins(WARM_UP + revocations)
        took = []
        for victim in victims:
            sent = time.monotonic()
            response = await api.revoke_session(0, victim.sid)
            took.append(time.monotonic() - sent)
            if response.status_code != 204:
                raise RuntimeError(f"a revocation answered {response.status_code}")
        return took[WARM_UP:]
    finally:
        await api.aclose()


def run(options: Options) -> Outcome:
    """One cluster replica; per follower count, a fresh process of that many verifiers."""
    revocations = 30 if options.quick else 200
    figures: list[Figure] = []
    with LocalCluster(1, relay=False) as cluster:
        for count in FOLLOWERS:
            followers = _followers(cluster, count)
            try:
                time.sleep(SETTLE)
                took = asyncio.run(_latencies(cluster, revocations))
            finally:
                _stop(followers)
            for p in (50, 99):
                ms = round(percentile(took, p) * 1000, 1)
                figures.append(Figure(f"{count} followers: revoke p{p}", ms, None, "ms"))
    return Outcome(
        "fanout",
        f"{revocations} revocations one at a time through one replica, with 1, 10 and 50 "
        "verifiers (own NATS connection and receipts each, in one process) following",
        tuple(figures),
    )
