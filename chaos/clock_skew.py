"""One replica's clock 2 minutes ahead and one's 2 minutes behind (libfaketime), one right:
the skewed ones notice it (Redis ``TIME``) and refuse to sign, verify and revoke."""

from __future__ import annotations

import asyncio
import glob
import time

import jwt

from chaos._frame import Figure, Options, Outcome
from chaos._sessions import NO_RATE_LIMITS, Api
from sessiond.cluster import LocalCluster
from sessiond.sessions.models import new_session_id
from sessiond.settings import Settings
from sessiond.tokens.access import sign_access_token
from sessiond.tokens.keys import Keyset

SKEW = 120  # seconds
LIBFAKETIME = "/usr/lib/*/faketime/libfaketime.so.1"
#: Seconds beyond the leeway of the crafted tokens: just outside it, up to nearly the skew.
OUTSIDE = (1, 10, 60, SKEW - 10)


def _faketime(offset: int) -> dict[str, str]:
    """The environment that shifts a process's wall clock (``time.time()``) by ``offset``
    seconds; its monotonic clock stays true, so timeouts and staleness are unaffected."""
    found = sorted(glob.glob(LIBFAKETIME))
    if not found:
        raise RuntimeError(f"libfaketime not found ({LIBFAKETIME}): ./dev chaos installs it")
    return {
        "LD_PRELOAD": found[0],
        "FAKETIME": f"{offset:+d}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def _crafted(cluster: LocalCluster, *, outside: bool) -> list[str]:
    """Tokens signed with the cluster's key on the true clock: each ``OUTSIDE`` step beyond
    the leeway (or, without ``outside``, as far inside it) either expired or not yet valid."""
    settings, keyset = Settings.load(cluster.env), Keyset.load(cluster.keyset_file)
    now, leeway, ttl = time.time(), settings.leeway, settings.access_ttl
    tokens = []
    for step in OUTSIDE if outside else (-leeway + 1,):
        for issued in (now - ttl - leeway - step, now + leeway + step):  # expired; from later
            token, _ = sign_access_token(
                keyset.signing_key(now),
                issuer=settings.issuer,
                audience=settings.audience,
                sub="crafted",
                sid=new_session_id("crafted"),
                ttl=ttl,
                now=issued,
            )
            tokens.append(token)
    return tokens


async def _accepted(api: Api, url: str, tokens: list[str]) -> int:
    answers = await asyncio.gather(*(api.whoami(url, token) for token in tokens))
    return sum(answer.status == 200 for answer in answers)


async def _sign_in(api: Api, url: str, subjects: list[str]) -> list[dict[str, str]]:
    """The bodies of the sign-ins ``url`` answered 201 (a skewed replica refuses them)."""
    answers = await asyncio.gather(*(api.create(url, subject) for subject in subjects))
    return [answer.body for answer in answers if answer.status == 201]


def _outside_leeway(body: dict[str, str], leeway: int) -> bool:
    """Whether the token's ``iat`` is further from the true clock than the leeway."""
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    return abs(float(claims["iat"]) - time.time()) > leeway


async def _noticed(api: Api, url: str) -> tuple[float, int]:
    """Seconds from now (the replica's start) until its ``/readyz`` answers a clock-skewed
    problem, and that answer's status (its last one if it never did, within 30 s)."""
    started, answer = time.monotonic(), None
    while time.monotonic() - started < 30:
        answer = await api.call("GET", f"{url}/readyz")
        if answer.body.get("type") == "urn:sessiond:problem:clock-skewed":
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - started, answer.status if answer else 0


async def _misses(api: Api, cluster: LocalCluster, url: str, subjects: list[str]) -> int:
    """Tokens a true replica signed for ``subjects`` that it still accepts after a forced
    sign-out made through ``url`` was acknowledged (a refused sign-out misses nothing: the
    caller retries it on another replica)."""
    true = cluster.urls[0]
    signed = await _sign_in(api, true, subjects)
    missed = 0
    for subject, body in zip(subjects, signed, strict=True):
        if (await api.revoke_subject(url, subject)).status == 204:
            await asyncio.sleep(0.05)
            missed += await _accepted(api, true, [body["access_token"]])
    return missed


async def _skewed(
    api: Api, cluster: LocalCluster, index: int, label: str, count: int
) -> list[Figure]:
    """Start replica ``index`` with its clock ``label`` off, and what it then signs, accepts
    and revokes."""
    replica, url = cluster.replicas[index], cluster.urls[index]
    replica.start(wait=False)
    noticed, ready = await _noticed(api, url)
    skew = await api.gauge(url, "sessiond_clock_skew_seconds")
    leeway = Settings.load(cluster.env).leeway
    subjects = [f"{label}-{n}" for n in range(count)]
    signed = await _sign_in(api, url, subjects)
    outside = _crafted(cluster, outside=True)
    return [
        Figure(f"{label} replica: /readyz status", ready, None),
        Figure(f"{label} replica: start to /readyz clock-skewed", round(noticed, 2), None, "s"),
        Figure(f"{label} replica: skew it measured (Redis TIME)", round(skew, 1), None, "s"),
        Figure(f"{label} replica: sign-ins (of {count}) it answered 201", len(signed), None),
        Figure(
            f"{label} replica: tokens it signed outside the leeway by the true clock",
            sum(_outside_leeway(body, leeway) for body in signed),
            0,
        ),
        Figure(
            f"{label} replica: tokens outside the leeway (of {len(outside)}) it accepted",
            await _accepted(api, url, outside),
            0,
        ),
        Figure(
            f"{label} replica: tokens a forced sign-out through it missed",
            await _misses(api, cluster, url, [f"{label}-out-{n}" for n in range(count)]),
            0,
        ),
    ]


async def _measure(cluster: LocalCluster, count: int) -> list[Figure]:
    api = Api(cluster.credential)
    true = cluster.urls[0]
    if await _accepted(api, true, _crafted(cluster, outside=False)) != 2:
        raise RuntimeError("a token inside the leeway was refused: the check is broken")
    outside = _crafted(cluster, outside=True)
    figures = [
        Figure(
            f"tokens outside the leeway (of {len(outside)}) accepted by a true replica",
            await _accepted(api, true, outside),
            0,
        )
    ]
    for index, label in ((1, "+2 min"), (2, "-2 min")):
        figures += await _skewed(api, cluster, index, label, count)
    await api.aclose()
    return figures


def run(options: Options) -> Outcome:
    cluster = LocalCluster(replicas=3, env=NO_RATE_LIMITS)
    with cluster:
        for replica, offset in ((cluster.replicas[1], +SKEW), (cluster.replicas[2], -SKEW)):
            replica.stop()  # started again, skewed, by _skewed: never ready, so not by the cluster
            replica.env.update(_faketime(offset))
        figures = asyncio.run(_measure(cluster, 5 if options.quick else 50))
    return Outcome(
        "clock_skew",
        f"of 3 replicas, one started with its wall clock +{SKEW} s, one -{SKEW} s "
        "(libfaketime), one true",
        tuple(figures),
        note=NOTE,
    )


NOTE = (
    "a replica signs, judges iat/exp and stamps a forced sign-out's not_before with its own "
    "clock; it measures its skew from Redis TIME and, beyond half SESSIOND_LEEWAY, answers "
    "503 clock-skewed to all of that and to /readyz. Bounds 0: tokens a skewed replica signs "
    "or accepts outside the leeway of the true clock, tokens a forced sign-out made through it "
    "misses; a true replica accepts nothing outside the leeway"
)
