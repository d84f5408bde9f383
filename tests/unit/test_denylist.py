"""The denylist decides by jti, sid, subject not-before and global not-before, tells why,
and forgets."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from sessiond.denylist.denylist import Denial, Denylist
from sessiond.events import (
    AllRevoked,
    ReasonCode,
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
    assert denylist.denies(Claims()) == Denial("token")
    assert denylist.denies(Claims(jti="j2", sid="s2")) == Denial("session")
    assert denylist.denies(Claims(jti="j2", sub="bob")) == Denial("subject")
    assert denylist.denies(Claims(jti="j2", sub="bob", iat=1001)) is None
    assert denylist.denies(Claims(jti="j2")) is None


def test_global_not_before_includes_its_own_second() -> None:
    denylist = Denylist()
    denylist.apply(AllRevoked(id=ID1, at=1000.5, not_before=1000))
    assert denylist.denies(Claims(iat=1000)) == Denial("all")
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
    assert denylist.denies(Claims(jti="x")) == Denial("session")


def test_events_round_trip_as_tagged_json() -> None:
    event = SubjectRevoked(id=ID1, at=1.5, sub="a", not_before=1, expires_at=2.0, reason="r")
    payload = encode(event)
    assert b'"kind":"subject"' in payload
    assert decode(payload) == event


def test_a_denial_tells_the_reason_of_the_revocation_that_matched() -> None:
    denylist = Denylist()
    denylist.apply(TokenRevoked(id=ID1, at=1000, jti="j1", expires_at=2000, reason_code="logout"))
    denylist.apply(
        SessionRevoked(
            id=ID2, at=1000, sid="s2", expires_at=2000, reason_code="forced", reason="locked"
        )
    )
    denylist.apply(
        SubjectRevoked(
            id=ID3, at=1000, sub="bob", not_before=1000, expires_at=2000, reason_code="admin"
        )
    )
    assert denylist.denies(Claims()) == Denial("token", "logout", None)
    assert denylist.denies(Claims(jti="j2", sid="s2")) == Denial("session", "forced", "locked")
    assert denylist.denies(Claims(jti="j2", sub="bob")) == Denial("subject", "admin", None)
    denylist.apply(AllRevoked(id=ID1, at=1000, not_before=999, reason_code="key_compromise"))
    assert denylist.denies(Claims(iat=999)) == Denial("all", "key_compromise", None)


def test_the_latest_subject_revocation_gives_the_reason() -> None:
    denylist = Denylist()
    codes: tuple[tuple[int, ReasonCode], ...] = ((1000, "password_change"), (900, "logout"))
    for nbf, code in codes:
        denylist.apply(
            SubjectRevoked(
                id=ID1, at=nbf, sub="alice", not_before=nbf, expires_at=2000, reason_code=code
            )
        )
    assert denylist.denies(Claims(iat=800)) == Denial("subject", "password_change", None)


def _old_reader(data: bytes) -> list[object]:
    """What a replica from before reasons decodes a snapshot as: its version 1 format."""

    class Snapshot(msgspec.Struct, array_like=True):
        v: int
        global_not_before: int
        due: list[tuple[int, list[str], list[str], list[tuple[str, int]]]]

    snapshot = msgspec.msgpack.decode(data, type=Snapshot)
    return [snapshot.v, snapshot.global_not_before, snapshot.due]


def test_snapshots_carry_reasons_and_stay_readable_by_older_replicas() -> None:
    denylist = Denylist()
    denylist.apply(TokenRevoked(id=ID1, at=1000, jti="j1", expires_at=1300, reason_code="logout"))
    denylist.apply(TokenRevoked(id=ID2, at=1000, jti="j2", expires_at=1300, reason_code="admin"))
    denylist.apply(
        SubjectRevoked(
            id=ID3, at=1000, sub="bob", not_before=1000, expires_at=1300, reason_code="forced"
        )
    )
    denylist.apply(AllRevoked(id=ID1, at=1000, not_before=10, reason_code="key_compromise"))
    data = denylist.snapshot()
    restored = Denylist()
    restored.load_snapshot(data)
    assert restored.denies(Claims()) == Denial("token", "logout", None)
    assert restored.denies(Claims(jti="j2")) == Denial("token", "admin", None)
    assert restored.denies(Claims(jti="j3", sub="bob")) == Denial("subject", "forced", None)
    assert restored.denies(Claims(iat=10)) == Denial("all", "key_compromise", None)
    # An older replica reads the same bytes as its format (and merges both of second 1300).
    old = Denylist()
    old.load_snapshot(msgspec.msgpack.encode(_old_reader(data)))
    assert old.denies(Claims(jti="j2")) == Denial("token")
    assert old.sizes() == restored.sizes() == {"token": 2, "session": 0, "subject": 1}
    assert old.prune(1300) == restored.prune(1300) == 3


def test_a_snapshot_from_before_reasons_loads_without_them() -> None:
    old_format = [1, 5, [(1300, ["j1"], ["s1"], [("bob", 1000)])]]
    denylist = Denylist()
    denylist.load_snapshot(msgspec.msgpack.encode(old_format))
    assert denylist.denies(Claims()) == Denial("token")
    assert denylist.denies(Claims(jti="j2", sid="s1")) == Denial("session")
    assert denylist.denies(Claims(jti="j2", sid="s2", sub="bob")) == Denial("subject")
    assert denylist.denies(Claims(iat=5)) == Denial("all")
