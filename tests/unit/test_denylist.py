"""The denylist decides by jti, sid, subject not-before and global not-before, and forgets."""

from __future__ import annotations

from dataclasses import dataclass

from sessiond.denylist.denylist import Denylist
from sessiond.events import (
    AllRevoked,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
    decode,
    encode,
)

ID1, ID2, ID3 = ("1" * 32, "2" * 32, "3" * 32)


@dataclass(frozen=True)
class Claims:
    sub: str = "alice"
    sid: str = "s1"
    jti: str = "j1"
    iat: int = 1000


def test_each_kind_denies_only_what_it_matches() -> None:
    denylist = Denylist()
    denylist.apply(TokenRevoked(id=ID1, at=1000, jti="j1", expires_at=2000))
    denylist.apply(SessionRevoked(id=ID2, at=1000, sid="s2", expires_at=2000))
    denylist.apply(SubjectRevoked(id=ID3, at=1000, sub="bob", not_before=1000, expires_at=2000))
    assert denylist.denies(Claims()) == "token"
    assert denylist.denies(Claims(jti="j2", sid="s2")) == "session"
    assert denylist.denies(Claims(jti="j2", sub="bob")) == "subject"
    assert denylist.denies(Claims(jti="j2", sub="bob", iat=1001)) is None
    assert denylist.denies(Claims(jti="j2")) is None


def test_global_not_before_includes_its_own_second() -> None:
    denylist = Denylist()
    denylist.apply(AllRevoked(id=ID1, at=1000.5, not_before=1000))
    assert denylist.denies(Claims(iat=1000)) == "all"
    assert denylist.denies(Claims(iat=1001)) is None


def test_entries_are_dropped_once_no_token_can_match() -> None:
    denylist = Denylist()
    denylist.apply(TokenRevoked(id=ID1, at=1000, jti="j1", expires_at=1300))
    denylist.apply(SessionRevoked(id=ID2, at=1000, sid="s1", expires_at=1600))
    denylist.apply(SubjectRevoked(id=ID3, at=1000, sub="alice", not_before=1000, expires_at=1300))
    assert denylist.prune(1299) == 0
    assert denylist.prune(1300) == 2
    assert denylist.sizes() == {"token": 0, "session": 1, "subject": 0}
    assert denylist.prune(1600) == 1
    assert denylist.sizes() == {"token": 0, "session": 0, "subject": 0}


def test_a_later_revocation_of_the_same_key_extends_it() -> None:
    denylist = Denylist()
    denylist.apply(SessionRevoked(id=ID1, at=1000, sid="s1", expires_at=1300))
    denylist.apply(SessionRevoked(id=ID2, at=1200, sid="s1", expires_at=1500))
    denylist.prune(1400)
    assert denylist.denies(Claims(jti="x")) == "session"


def test_events_round_trip_as_tagged_json() -> None:
    event = SubjectRevoked(id=ID1, at=1.5, sub="a", not_before=1, expires_at=2.0, reason="r")
    payload = encode(event)
    assert b'"kind":"subject"' in payload
    assert decode(payload) == event
