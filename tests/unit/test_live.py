"""Live connections fire on exactly the revocations that reject their claims."""

from __future__ import annotations

import time

import pytest

from sessiond.denylist.denylist import Denial, Denylist
from sessiond.events import (
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
)
from sessiond.tokens.claims import AccessClaims
from sessiond.verifier.live import LiveConnections

NOW = int(time.time())
FAR = 2e9


def claims(sub: str = "alice", sid: str = "s1", jti: str = "j1") -> AccessClaims:
    return AccessClaims(iss="i", aud="a", sub=sub, sid=sid, jti=jti, iat=NOW - 10, exp=NOW + 60)


def event(kind: str, value: str = "", not_before: int = NOW) -> Revocation:
    ident, at = f"{kind}-{value}".ljust(32, "0"), float(NOW)
    match kind:
        case "token":
            return TokenRevoked(id=ident, at=at, jti=value, expires_at=FAR)
        case "session":
            return SessionRevoked(id=ident, at=at, sid=value, expires_at=FAR)
        case "subject":
            return SubjectRevoked(id=ident, at=at, sub=value, not_before=not_before, expires_at=FAR)
    return AllRevoked(id=ident, at=at, not_before=not_before)


@pytest.mark.parametrize(
    ("revocation", "kind"),
    [
        (event("token", "j1"), "token"),
        (event("session", "s1"), "session"),
        (event("subject", "alice"), "subject"),
        (event("all"), "all"),
    ],
)
def test_a_revocation_fires_the_connections_it_rejects(revocation: Revocation, kind: str) -> None:
    denylist = Denylist()
    live = LiveConnections(denylist)
    fired: list[tuple[str, str]] = []
    live.watch(claims(), lambda d: fired.append(("mine", d.kind)))
    live.watch(claims("bob", "s2", "j2"), lambda d: fired.append(("other", d.kind)))
    denylist.apply(revocation)
    expected = [("mine", kind)] + ([("other", kind)] if kind == "all" else [])
    assert sorted(fired) == sorted(expected)


def test_a_subject_revocation_spares_tokens_issued_after_it() -> None:
    denylist = Denylist()
    live = LiveConnections(denylist)
    fired: list[Denial] = []
    live.watch(claims(), fired.append)
    denylist.apply(event("subject", "alice", not_before=NOW - 60))
    assert fired == []


def test_already_revoked_claims_fire_at_once_and_only_once() -> None:
    denylist = Denylist()
    denylist.apply(event("session", "s1"))
    live = LiveConnections(denylist)
    fired: list[Denial] = []
    live.watch(claims(), fired.append)
    denylist.apply(event("token", "j1"))
    assert fired == [Denial("session")]


def test_an_unwatched_connection_is_forgotten() -> None:
    denylist = Denylist()
    live = LiveConnections(denylist)
    fired: list[Denial] = []
    watch = live.watch(claims(), fired.append)
    live.unwatch(watch)
    denylist.apply(event("all"))
    assert fired == []
    assert len(live) == 0
