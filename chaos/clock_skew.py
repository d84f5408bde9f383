"""One replica's clock 2 minutes ahead and one's 2 minutes behind (libfaketime), one right."""

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
    answers = await asyncio.gather(*(api.create(url, subject) for subject in subjects))
    if any(answer.status != 201 for answer in answers):
        raise RuntimeError(f"session create on {url}: {[a.status for a in answers]}")
    return [answer.body for answer in answers]


async def _sign_out(api: Api, url: str, subjects: list[str]) -> None:
    """Forced sign-out of each subject on ``url``, every one propagated (204)."""
    for subject in subjects:
        answer = await api.revoke_subject(url, subject)
        if answer.status != 204:
            raise RuntimeError(f"forced sign-out on {url}: {answer.status} {answer.body}")


def _offset(body: dict[str, str]) -> float:
    """How far ahead of this clock the signer's was, from the ``iat`` of its token."""
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    return round(float(claims["iat"]) - time.time())


async def _measure(cluster: LocalCluster, count: int) -> list[Figure]:
    api = Api(cluster.credential)
    true, ahead, behind = cluster.urls
    subjects = {name: [f"{name}-{n}" for n in range(count)] for name in ("ahead", "behind", "true")}
    signed = {
        name: await _sign_in(api, url, subjects[name])
        for name, url in (("ahead", ahead), ("behind", behind))
    }
    figures = [
        Figure(
            "the +2 min replica's offset (iat of its tokens)",
            _offset(signed["ahead"][0]),
            None,
            "s",
        ),
        Figure(
            "the -2 min replica's offset (iat of its tokens)",
            _offset(signed["behind"][0]),
            None,
            "s",
        ),
    ]
    for name, label in (("ahead", "+2 min"), ("behind", "-2 min")):
        tokens = [body["access_token"] for body in signed[name]]
        refused = count - await _accepted(api, true, tokens)
        figures.append(
            Figure(f"tokens the {label} replica signed, refused by a true one", refused, None)
        )
    if await _accepted(api, true, _crafted(cluster, outside=False)) != 2:
        raise RuntimeError("a token inside the leeway was refused: the check is broken")
    outside = _crafted(cluster, outside=True)
    accepted = await _accepted(api, true, outside)
    figures.append(
        Figure(
            f"tokens outside the leeway (of {len(outside)}) accepted by a true replica", accepted, 0
        )
    )
    for label, url in (("+2 min", ahead), ("-2 min", behind)):
        accepted = await _accepted(api, url, outside)
        figures.append(Figure(f"... accepted by the {label} replica", accepted, None))
    # A forced sign-out denies the subject's tokens issued (iat) at or before its not_before.
    await _sign_out(api, true, subjects["ahead"])
    await asyncio.sleep(0.5)
    survivors = await _accepted(api, ahead, [body["access_token"] for body in signed["ahead"]])
    figures.append(
        Figure(
            "+2 min replica's tokens it accepts after a forced sign-out on a true one",
            survivors,
            None,
        )
    )
    fresh = await _sign_in(api, true, subjects["true"])
    await _sign_out(api, behind, subjects["true"])
    await asyncio.sleep(0.5)
    survivors = await _accepted(api, true, [body["access_token"] for body in fresh])
    figures.append(
        Figure(
            "true replica's tokens it accepts after a forced sign-out on the -2 min one",
            survivors,
            None,
        )
    )
    await api.aclose()
    return figures


def run(options: Options) -> Outcome:
    cluster = LocalCluster(replicas=3, env=NO_RATE_LIMITS)
    cluster.replicas[1].env.update(_faketime(+SKEW))
    cluster.replicas[2].env.update(_faketime(-SKEW))
    with cluster:
        figures = asyncio.run(_measure(cluster, 5 if options.quick else 50))
    return Outcome(
        "clock_skew",
        f"of 3 replicas, one's wall clock +{SKEW} s, one's -{SKEW} s (libfaketime), one true",
        tuple(figures),
        note=NOTE,
    )


NOTE = (
    "a replica judges iat and exp by its own clock and signs with it: sessiond requires "
    "clocks within SESSIOND_LEEWAY (NTP). A replica with a true clock accepts nothing "
    "outside the leeway, whoever signed it (bound 0); a skewed one accepts what its clock "
    "allows (reported), its tokens from the future are refused by true replicas, and a "
    "forced sign-out (not_before from the revoking replica's clock) misses tokens with a "
    "later iat: those a +2 min replica signed, or those signed in the 2 min before a "
    "sign-out made on a -2 min replica (reported, not 0: see README)"
)
