"""Property tests: the denylist agrees with a brute-force model over every applied event.

The model keeps the list of applied events. A token is rejected by every event that matches
it: the same ``jti``, the same ``sid``, the same ``sub`` with ``iat <= not_before``, or any
``iat <= not_before`` of a global revocation; the kind reported is the first of ``all``,
``token``, ``session``, ``subject`` among them, with the reason code and reason of the one of
that kind that expires last (token, session) or has the latest not-before (subject, all),
ties broken by the greater code and reason.

What the denylist may forget: an event promises that every token it matches has
``exp <= expires_at`` (the authority writes it so). A token that breaks the promise of an
event that matches it cannot exist, and a token with ``exp <= now`` is expired, so nobody asks
about it. Hence the expectation at time ``now``, where ``now`` is never before a time the
denylist was pruned at:

* for every token with ``now < exp <= expires_at`` of each matching event, the denylist
  answers exactly as the model does;
* for every token whatsoever, it never rejects with a kind that no applied event of that
  kind matches (pruning only forgets, it never invents).

A grid of tokens over small alphabets covers every combination at every check.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessiond.denylist.denylist import Denial, Denylist
from sessiond.events import (
    AllRevoked,
    Kind,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
    kind_of,
)
from support.denylists import replayed

ID = "0" * 32
JTIS, SIDS, SUBS = ("j1", "j2", "j3"), ("s1", "s2", "s3"), ("alice", "bob", "carol")
IATS = (1, 3, 6, 9, 12, 15, 18)  # no token is issued at Unix time 0: "never" is 0
PRIORITY: tuple[Kind, ...] = ("all", "token", "session", "subject")


@dataclass(frozen=True)
class Token:
    sub: str
    sid: str
    jti: str
    iat: int


# Every combination, plus a jti, a sid and a subject that are never revoked.
GRID = [Token(*c) for c in itertools.product((*SUBS, "dave"), (*SIDS, "s0"), (*JTIS, "j0"), IATS)]

seconds = st.integers(min_value=0, max_value=20)
until = st.integers(min_value=0, max_value=60).map(lambda half: half / 2)  # x.0 and x.5
why = {
    "reason_code": st.sampled_from((None, "logout", "forced")),
    "reason": st.sampled_from((None, "a", "b")),
}
events: st.SearchStrategy[Revocation] = st.one_of(
    st.builds(
        TokenRevoked,
        id=st.just(ID),
        at=st.just(0.0),
        jti=st.sampled_from(JTIS),
        expires_at=until,
        **why,
    ),
    st.builds(
        SessionRevoked,
        id=st.just(ID),
        at=st.just(0.0),
        sid=st.sampled_from(SIDS),
        expires_at=until,
        **why,
    ),
    st.builds(
        SubjectRevoked,
        id=st.just(ID),
        at=st.just(0.0),
        sub=st.sampled_from(SUBS),
        not_before=seconds,
        expires_at=until,
        **why,
    ),
    st.builds(AllRevoked, id=st.just(ID), at=st.just(0.0), not_before=seconds, **why),
)
# An event to apply, or a step of the clock (half seconds) followed by a prune.
steps = st.lists(st.one_of(events, st.integers(min_value=0, max_value=8)), max_size=30)


def matches(event: Revocation, token: Token) -> bool:
    match event:
        case TokenRevoked(jti=jti):
            return token.jti == jti
        case SessionRevoked(sid=sid):
            return token.sid == sid
        case SubjectRevoked(sub=sub, not_before=nbf):
            return token.sub == sub and token.iat <= nbf
        case AllRevoked(not_before=nbf):
            return token.iat <= nbf
    raise AssertionError(event)


def expected(matching: list[Revocation]) -> Denial | None:
    """The model's answer for a token that ``matching`` match."""
    kinds = {kind_of(event) for event in matching}
    kind = next((kind for kind in PRIORITY if kind in kinds), None)
    if kind is None:
        return None

    def rank(event: Revocation) -> tuple[int, str, str]:
        if isinstance(event, SubjectRevoked | AllRevoked):
            order = event.not_before
        else:
            order = math.ceil(event.expires_at)
        return (order, event.reason_code or "", event.reason or "")

    best = max((event for event in matching if kind_of(event) == kind), key=rank)
    return Denial(kind, best.reason_code, best.reason)


def check(denylist: Denylist, applied: list[Revocation], now: float) -> None:
    for token in GRID:
        matching = [event for event in applied if matches(event, token)]
        kinds = {kind_of(event) for event in matching}
        got = denylist.denies(token)
        # the latest exp this token can have without breaking a matching event's promise
        latest_exp = min(
            (e.expires_at for e in matching if not isinstance(e, AllRevoked)), default=math.inf
        )
        if latest_exp > now:  # a live token with this exp exists: exactly the model's answer
            assert got == expected(matching), (token, now)
        else:  # every such token has expired: the entry may be gone, never invented
            assert got is None or got.kind in kinds, (token, now)


def decisions(denylist: Denylist) -> list[Denial | None]:
    return [denylist.denies(token) for token in GRID]


@settings(max_examples=300, deadline=None)  # about 0.1 s an example: the model is brute force
@given(steps)
def test_agrees_with_the_model_through_applies_and_prunes(script: list[Revocation | int]) -> None:
    denylist, applied, now = Denylist(), [], 0.0
    for step in script:
        if isinstance(step, int):
            now += step / 2
            denylist.prune(now)
        else:
            denylist.apply(step)
            applied.append(step)
        check(denylist, applied, now)
    restored = Denylist()
    restored.load_snapshot(denylist.snapshot())
    assert (decisions(restored), restored.sizes()) == (decisions(denylist), denylist.sizes())


@given(st.lists(events, max_size=20), seconds)
def test_prune_keeps_exactly_the_entries_a_live_token_could_match(
    batch: list[Revocation], now: int
) -> None:
    denylist = replayed(batch)
    denylist.prune(now)
    # I5, exactly: at a whole second, an entry is kept iff one of its events still has a live
    # token to match (between whole seconds, it may be kept up to a second longer)
    keys = {
        "token": {e.jti for e in batch if isinstance(e, TokenRevoked) and e.expires_at > now},
        "session": {e.sid for e in batch if isinstance(e, SessionRevoked) and e.expires_at > now},
        "subject": {e.sub for e in batch if isinstance(e, SubjectRevoked) and e.expires_at > now},
    }
    assert denylist.sizes() == {kind: len(found) for kind, found in keys.items()}


@given(st.lists(events, max_size=20), seconds)
def test_applying_twice_is_applying_once(batch: list[Revocation], now: int) -> None:
    once, twice = replayed(batch), replayed(batch, batch)
    assert decisions(twice) == decisions(once)
    assert twice.sizes() == once.sizes()
    assert twice.prune(now) == once.prune(now)
    assert (decisions(twice), twice.sizes()) == (decisions(once), once.sizes())


@given(
    st.lists(events, max_size=20).flatmap(lambda b: st.tuples(st.just(b), st.permutations(b))),
    seconds,
)
def test_order_does_not_matter(
    batches: tuple[list[Revocation], list[Revocation]], now: int
) -> None:
    one, other = (replayed(batch) for batch in batches)
    assert (decisions(one), one.sizes()) == (decisions(other), other.sizes())
    assert one.prune(now) == other.prune(now)
    assert (decisions(one), one.sizes()) == (decisions(other), other.sizes())


@given(st.lists(events, max_size=20), st.lists(events, max_size=20), seconds)
def test_a_snapshot_loads_as_its_events_apply(
    mine: list[Revocation], theirs: list[Revocation], now: int
) -> None:
    restored = Denylist()
    restored.load_snapshot(replayed(theirs).snapshot())
    assert (decisions(restored), restored.sizes()) == (
        decisions(replayed(theirs)),
        replayed(theirs).sizes(),
    )
    merged, expected = replayed(mine), replayed(mine, theirs)
    merged.load_snapshot(replayed(theirs).snapshot())
    assert (decisions(merged), merged.sizes()) == (decisions(expected), expected.sizes())
    assert merged.prune(now) == expected.prune(now)
    assert (decisions(merged), merged.sizes()) == (decisions(expected), expected.sizes())


def test_a_pruned_denylist_snapshots_what_is_left() -> None:
    denylist = Denylist()
    denylist.apply(TokenRevoked(id=ID, at=0, jti="j1", expires_at=10))
    denylist.apply(TokenRevoked(id=ID, at=0, jti="j2", expires_at=20))
    denylist.apply(TokenRevoked(id=ID, at=0, jti="j1", expires_at=30))  # extends j1
    denylist.prune(20)
    restored = Denylist()
    restored.load_snapshot(denylist.snapshot())
    assert restored.sizes() == {"token": 1, "session": 0, "subject": 0}
    assert restored.prune(29) == 0
    assert restored.prune(30) == 1


def test_a_snapshot_keeps_the_latest_expiry_of_a_key_filed_twice() -> None:
    denylist = Denylist()
    denylist.apply(TokenRevoked(id=ID, at=0, jti="j2", expires_at=30))  # second 30 filed first
    denylist.apply(TokenRevoked(id=ID, at=0, jti="j1", expires_at=10))
    denylist.apply(TokenRevoked(id=ID, at=0, jti="j1", expires_at=30))  # j1 filed at 10 and 30
    restored = Denylist()
    restored.load_snapshot(denylist.snapshot())
    assert restored.prune(10) == 0
    assert restored.denies(Token("alice", "s1", "j1", 1)) == Denial("token")


@pytest.mark.parametrize("data", [b"", b"\x00", msgspec.msgpack.encode([2, 0, []])])
def test_a_bad_snapshot_is_refused(data: bytes) -> None:
    with pytest.raises(msgspec.MsgspecError):
        Denylist().load_snapshot(data)
