"""Clients refreshing one refresh token at once through different replicas, round after round."""

from __future__ import annotations

import asyncio
from collections import Counter

from chaos._frame import Figure, Options, Outcome
from chaos._sessions import NO_RATE_LIMITS, Api
from sessiond.cluster import LocalCluster

CLIENTS = 8


async def _storm(cluster: LocalCluster, rounds: int) -> Counter[str]:
    """Per round, every client presents the round's token at once (client n on replica n mod
    the replica count); counts of what happened."""
    counts: Counter[str] = Counter()
    api, urls = Api(cluster.credential, connections=CLIENTS * 2), cluster.urls
    token = ""
    for n in range(rounds):
        if not token:
            created = await api.create(urls[0], f"storm-{n}")
            if created.status != 201:
                raise RuntimeError(f"session create: {created.status} {created.body}")
            token = created.body["refresh_token"]
            counts["sessions"] += 1
        answers = await asyncio.gather(
            *(api.refresh(urls[c % len(urls)], token) for c in range(CLIENTS))
        )
        counts["refreshes"] += len(answers)
        counts["unexpected answers"] += sum(a.status not in (200, 400) for a in answers)
        if any(a.status == 400 for a in answers):  # refused inside the grace window
            counts["false theft"] += 1
            token = ""  # the session is revoked: start another
            continue
        successors = {a.body["refresh_token"] for a in answers}
        token = successors.pop()
        if successors:  # two successors for one token: is the other one live too?
            counts["branched rounds"] += 1
            for other in successors:
                counts["live second branches"] += (await api.refresh(urls[0], other)).status == 200
            token = ""
    await api.aclose()
    return counts


def run(options: Options) -> Outcome:
    rounds = 100 if options.quick else 2000
    with LocalCluster(replicas=3, env=NO_RATE_LIMITS) as cluster:
        counts = asyncio.run(_storm(cluster, rounds))
    return Outcome(
        "refresh_storm",
        f"{CLIENTS} clients refresh the same token at once through 3 replicas, {rounds} rounds",
        (
            Figure("refreshes", counts["refreshes"], None),
            Figure(
                "false theft inside the grace window (session revoked)", counts["false theft"], 0
            ),
            Figure("rounds with two successors", counts["branched rounds"], None),
            Figure("two live successor branches", counts["live second branches"], 0),
            Figure("answers other than 200 or 400", counts["unexpected answers"], 0),
        ),
    )
