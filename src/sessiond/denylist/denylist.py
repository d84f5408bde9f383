"""The denylist: revoked token ids, session ids, subject and global not-before times.

The per-request check is three dictionary lookups and two integer comparisons. Entries are
filed by the second in which they stop mattering and dropped by :meth:`Denylist.prune` once
every token they could match has expired (I5), so memory follows recent revocations only.
Applying an event twice changes nothing, which makes replays and retries harmless; the order
in which events arrive does not matter either.

An entry costs about 120 B with 1M of them, its key string included (``python -m bench
denylist``): the string, a dictionary slot whose value is the second from which the entry may
be dropped (one ``int`` shared by every entry of that second), and a pointer in that second's
list. :meth:`~Denylist.snapshot` and :meth:`~Denylist.load_snapshot` copy the state as bytes,
so that a starting replica can load a recent snapshot and replay only the rest of the stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import msgspec

from sessiond.events import (
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
)

SNAPSHOT_VERSION = 1


class Checkable(Protocol):
    """The claims a denylist decision needs; an access token's claims provide them."""

    @property
    def sub(self) -> str: ...
    @property
    def sid(self) -> str: ...
    @property
    def jti(self) -> str: ...
    @property
    def iat(self) -> int: ...


class _Due(msgspec.Struct):
    """The keys that may be dropped at ``second`` (if no later revocation extended them)."""

    second: int
    tokens: list[str]
    sessions: list[str]
    subjects: list[str]


class _Snapshot(msgspec.Struct, array_like=True):
    v: int
    global_not_before: int
    due: list[tuple[int, list[str], list[str], list[tuple[str, int]]]]


class Denylist:
    """Revocations still able to match a live token, checked in constant time."""

    def __init__(self) -> None:
        self._tokens: dict[str, int] = {}  # jti -> second from which it can be dropped
        self._sessions: dict[str, int] = {}  # sid -> the same
        self._subjects: dict[str, tuple[int, int]] = {}  # sub -> (not before, the same)
        self._global_not_before = 0
        self._due: dict[int, _Due] = {}
        #: Called with each event once it is applied (live connections close on it).
        self.listeners: list[Callable[[Revocation], None]] = []

    def apply(self, event: Revocation) -> None:
        """Record one revocation, then tell the :attr:`listeners`."""
        self._record(event)
        for listener in self.listeners:
            listener(event)

    def _record(self, event: Revocation) -> None:
        match event:
            case TokenRevoked(jti=jti, expires_at=until):
                due = self._due_at(until)
                _extend(self._tokens, jti, due.second, due.tokens)
            case SessionRevoked(sid=sid, expires_at=until):
                due = self._due_at(until)
                _extend(self._sessions, sid, due.second, due.sessions)
            case SubjectRevoked(sub=sub, not_before=nbf, expires_at=until):
                self._revoke_subject(sub, nbf, self._due_at(until))
            case AllRevoked(not_before=nbf):
                self._global_not_before = max(nbf, self._global_not_before)

    def denies(self, claims: Checkable) -> str | None:
        """The kind of revocation that rejects these claims, or ``None`` if none does."""
        if claims.iat <= self._global_not_before:
            return "all"
        if claims.jti in self._tokens:
            return "token"
        if claims.sid in self._sessions:
            return "session"
        subject = self._subjects.get(claims.sub)
        if subject is not None and claims.iat <= subject[0]:
            return "subject"
        return None

    def prune(self, now: float) -> int:
        """Drop every entry that can no longer match an unexpired token; return how many."""
        dropped = 0
        for second in sorted(s for s in self._due if s <= now):
            due = self._due.pop(second)
            for table, keys in ((self._tokens, due.tokens), (self._sessions, due.sessions)):
                for key in keys:
                    if table.get(key) == second:  # not extended by a later revocation
                        del table[key]
                        dropped += 1
            for key in due.subjects:
                entry = self._subjects.get(key)
                if entry is not None and entry[1] == second:
                    del self._subjects[key]
                    dropped += 1
        return dropped

    def sizes(self) -> dict[str, int]:
        """Live entries per kind, for metrics."""
        return {
            "token": len(self._tokens),
            "session": len(self._sessions),
            "subject": len(self._subjects),
        }

    @property
    def global_not_before(self) -> int:
        return self._global_not_before

    def snapshot(self) -> bytes:
        """The whole state as bytes (msgpack, versioned) for :meth:`load_snapshot`."""
        subjects = self._subjects
        due = [
            (d.second, d.tokens, d.sessions, [(sub, subjects[sub][0]) for sub in d.subjects])
            for d in self._due.values()
        ]
        return msgspec.msgpack.encode(_Snapshot(SNAPSHOT_VERSION, self._global_not_before, due))

    def load_snapshot(self, data: bytes) -> None:
        """Merge a :meth:`snapshot` into this denylist, as if its events were applied again.

        Raises ``msgspec.DecodeError``/``ValidationError`` on bytes that are not a snapshot.
        """
        snapshot = msgspec.msgpack.decode(data, type=_Snapshot)
        if snapshot.v != SNAPSHOT_VERSION:
            raise msgspec.ValidationError(f"snapshot version {snapshot.v} is not supported")
        self._global_not_before = max(snapshot.global_not_before, self._global_not_before)
        fresh = not self._tokens and not self._sessions  # at start-up: nothing to merge with
        for second, tokens, sessions, subjects in sorted(snapshot.due, key=lambda d: d[0]):
            due = self._due_at(second)
            for table, keys, filed in (
                (self._tokens, tokens, due.tokens),
                (self._sessions, sessions, due.sessions),
            ):
                if fresh:  # about 30% faster; seconds ascend, so a key's latest one wins
                    table.update(dict.fromkeys(keys, due.second))
                    filed.extend(keys)
                else:
                    for key in keys:
                        _extend(table, key, due.second, filed)
            for sub, nbf in subjects:
                self._revoke_subject(sub, nbf, due)

    def _due_at(self, until: float) -> _Due:
        """The list of keys to look at in the second ``until`` is in; made if new."""
        second = math.ceil(until)
        due = self._due.get(second)
        if due is None:
            due = self._due[second] = _Due(second, [], [], [])
        return due

    def _revoke_subject(self, sub: str, nbf: int, due: _Due) -> None:
        old_nbf, old_second = self._subjects.get(sub, (nbf, due.second - 1))
        self._subjects[sub] = (max(nbf, old_nbf), max(due.second, old_second))
        if old_second < due.second:
            due.subjects.append(sub)


def _extend(table: dict[str, int], key: str, second: int, due: list[str]) -> None:
    """Keep ``key`` until ``second`` at least, filed under ``second`` if that is later."""
    if table.get(key, second - 1) < second:
        table[key] = second
        due.append(key)
