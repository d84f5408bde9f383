"""SIGSTOP a replica for 5 s while the other revokes, then query it right after SIGCONT."""

from __future__ import annotations

import asyncio
import time

import httpx

from chaos._api import REVOKED, STALE, Api, Session, problem_type
from chaos._frame import Figure, Options, Outcome
from sessiond.cluster import LocalCluster

PAUSE = 5.0  # seconds
CATCH_UP = 10.0  # seconds after SIGCONT within which every revoked token must answer 401


async def _check_until_revoked(api: Api, victim: Session, answers: dict[str, int]) -> float:
    """Whoami on the paused replica in a tight loop until it answers 401 ``token-revoked``;
    count every answer; the seconds it took (:data:`CATCH_UP` if never)."""
    started = time.monotonic()
    while time.monotonic() - started < CATCH_UP:
        try:
            response = await api.whoami(1, victim.access)
        except httpx.HTTPError:
            answers["no answer"] = answers.get("no answer", 0) + 1
            continue
        kind = problem_type(response)
        key = {REVOKED: "401 revoked", STALE: "503 stale"}.get(kind, str(response.status_code))
        answers[key] = answers.get(key, 0) + 1
        if kind == REVOKED:
            return time.monotonic() - started
    return CATCH_UP


async def _scenario(cluster: LocalCluster, count: int) -> Outcome:
    api = Api.of(cluster, connections=count + 4)
    try:
        victims = await api.logins(count)
        paused = cluster.replicas[1]
        paused.pause()
        revoked_at = time.monotonic()
        for n, victim in enumerate(victims):  # spread over the pause, through replica 1
            await asyncio.sleep(max(0.0, revoked_at + n * PAUSE / count - time.monotonic()))
            response = await api.revoke_session(0, victim.sid)
            if response.status_code != 204:
                raise RuntimeError(f"a revocation answered {response.status_code}")
        await asyncio.sleep(max(0.0, revoked_at + PAUSE - time.monotonic()))
        answers: dict[str, int] = {}
        # The first checks are sent before SIGCONT: they wait in the socket and are the first
        # things the replica reads when it runs again.
        checks = [asyncio.create_task(_check_until_revoked(api, v, answers)) for v in victims]
        await asyncio.sleep(0.2)
        paused.resume()
        caught_up = await asyncio.gather(*checks)
    finally:
        await api.aclose()
    accepted = answers.get("200", 0)
    return Outcome(
        "replica_pause",
        f"SIGSTOP replica 2 for {PAUSE:.0f} s while {count} sessions are revoked through "
        "replica 1, then SIGCONT (stale policy fail_closed)",
        (
            Figure("revoked tokens it accepted after SIGCONT", accepted, 0),
            Figure(
                "revoked tokens still not refused 10 s after SIGCONT",
                sum(1 for t in caught_up if t >= CATCH_UP),
                0,
            ),
            Figure(
                "checks answered 503 denylist-stale after SIGCONT",
                answers.get("503 stale", 0),
                None,
            ),
            Figure(
                "checks answered otherwise (not 401, 503 stale or 200)",
                sum(v for k, v in answers.items() if k not in ("200", "503 stale", "401 revoked")),
                0,
            ),
            Figure("SIGCONT to every revoked token refused", round(max(caught_up), 2), None, "s"),
        ),
    )


def run(options: Options) -> Outcome:
    """The pause in a fresh cluster of two replicas on one NATS node."""
    count = 20 if options.quick else 60
    with LocalCluster(2, relay=False) as cluster:
        return asyncio.run(_scenario(cluster, count))
