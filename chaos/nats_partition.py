"""Cut one replica off from NATS (a TCP proxy closes and refuses), revoke, heal, per policy."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from chaos._api import REVOKED, STALE, Api, Session, problem_type
from chaos._frame import Figure, Options, Outcome
from chaos._proxy import TcpProxy
from sessiond.cluster import LocalCluster
from sessiond.settings import env_name

CUT = 4.0  # seconds the replica stays cut off
SETTLE = 2.0  # seconds after the cut before revoking: past the staleness budget (1 s) and
# the receipts' presence (1.5 s), so the revocations need not wait for the cut-off replica
HEALED_WITHIN = 30.0  # seconds after the heal within which it must have applied the cut's
#: Policies whose replica must never accept a token revoked during the cut.
REFUSING = ("fail_closed", "fallback")


def _kind(response: httpx.Response) -> str:
    return {REVOKED: "401 revoked", STALE: "503 stale"}.get(
        problem_type(response), str(response.status_code)
    )


async def _watch(api: Api, tokens: list[Session], until: float, seen: Counter[str]) -> None:
    """Whoami on the cut-off replica (2) for each token in turn until ``until``."""
    while time.monotonic() < until:
        for token in tokens:
            seen[_kind(await api.whoami(1, token.access))] += 1


async def _caught_up(api: Api, revoked: list[Session], within: float) -> float | None:
    """Seconds until replica 2 is ready (not stale) and refuses every token of ``revoked`` as
    revoked (under fallback it refused them all along, from Redis)."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        answers = await asyncio.gather(*(api.whoami(1, v.access) for v in revoked))
        if await api.readyz(1) == 200 and all(problem_type(a) == REVOKED for a in answers):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return None


async def _partition(
    cluster: LocalCluster, proxy: TcpProxy, count: int
) -> tuple[Counter[str], Counter[str], float | None]:
    """Cut, revoke ``count`` sessions through replica 1 while watching replica 2, heal; what
    replica 2 answered for the revoked tokens and for a live one, and the catch-up time."""
    api = Api.of(cluster)
    try:
        live, *victims = await api.logins(count + 1)
        proxy.cut()
        cut_at = time.monotonic()
        await asyncio.sleep(SETTLE)
        for victim in victims:
            response = await api.revoke_session(0, victim.sid)
            if response.status_code != 204:
                raise RuntimeError(f"a revocation during the cut answered {response.status_code}")
        revoked: Counter[str] = Counter()
        alive: Counter[str] = Counter()
        until = cut_at + CUT
        await asyncio.gather(
            _watch(api, victims, until, revoked), _watch(api, [live], until, alive)
        )
        proxy.heal()
        return revoked, alive, await _caught_up(api, victims, HEALED_WITHIN)
    finally:
        await api.aclose()


def _one_policy(policy: str, count: int) -> list[Figure]:
    with (
        LocalCluster(2, relay=False, env={env_name("stale_policy"): policy}) as cluster,
        TcpProxy(cluster.nats.port) as proxy,
    ):
        cut_off = cluster.replicas[1]
        cut_off.stop()
        cut_off.env[env_name("nats_url")] = f"nats://127.0.0.1:{proxy.port}"
        cut_off.start()
        revoked, alive, caught_up = asyncio.run(_partition(cluster, proxy, count))
    bound = 0 if policy in REFUSING else None
    return [
        Figure(
            f"{policy}: checks of tokens revoked in the cut answered 200", revoked["200"], bound
        ),
        Figure(f"{policy}: ... answered 401 revoked", revoked["401 revoked"], None),
        Figure(f"{policy}: ... answered 503 denylist-stale", revoked["503 stale"], None),
        Figure(f"{policy}: checks of a live token answered 200", alive["200"], None),
        Figure(f"{policy}: ... answered 503 denylist-stale", alive["503 stale"], None),
        Figure(
            f"{policy}: revocations of the cut not applied 30 s after the heal",
            0 if caught_up is not None else count,
            0,
        ),
        Figure(f"{policy}: heal to caught up", round(caught_up or HEALED_WITHIN, 2), None, "s"),
    ]


def run(options: Options) -> Outcome:
    """The cut in a fresh cluster of two replicas on one NATS node, once per stale policy
    (fail_closed only with ``quick``)."""
    count = 10 if options.quick else 30
    policies = ("fail_closed",) if options.quick else ("fail_closed", "fallback", "fail_open")
    return Outcome(
        "nats_partition",
        f"replica 2 reaches NATS through a proxy that closes and refuses every connection for "
        f"{CUT:.0f} s; {count} sessions revoked through replica 1 from {SETTLE:.0f} s into the "
        "cut while replica 2 is asked for them; then the proxy forwards again",
        tuple(figure for policy in policies for figure in _one_policy(policy, count)),
        note="fail_open accepts revoked tokens while stale by design (its reason to exist); "
        f"the revocations start {SETTLE:.0f} s into the cut, past the staleness budget (1 s) "
        "within which I2 lets a replica that lost NATS still accept",
    )
