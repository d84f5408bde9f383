"""The denylist: revoked token ids, session ids, subject and global not-before times.

The per-request check is three dictionary lookups and two integer comparisons. Entries are
filed by the second in which they stop mattering and dropped by :meth:`Denylist.prune` once
every token they could match has expired (I5), so memory follows recent revocations only.
Applying an event twice changes nothing, which makes replays and retries harmless; the order
in which events arrive does not matter either.

An entry costs about 120 B with 1M of them, its key string included (``python -m bench
denylist``): the string, a dictionary slot whose value is its **mark**, and a pointer in its
mark's list. A mark is the second from which the entry may be dropped with the event's
``reason_code`` and ``reason`` (one tuple shared by every entry of that second and reason), so
:meth:`~Denylist.denies` tells why without another lookup, and reasons cost no memory per
entry. Of two revocations of one key the later-expiring one's reason is kept, of two subject
or global not-befores the later one's; ties are broken by comparing the reasons, so that the
order in which events arrive still does not matter.

:meth:`~Denylist.snapshot` and :meth:`~Denylist.load_snapshot` copy the state as bytes, so that
a starting replica can load a recent snapshot and replay only the rest of the stream. The
reasons were added to version 1 of the format as trailing fields: a reader that predates them
ignores them, and a snapshot that predates them loads without reasons.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple, Protocol

import msgspec

from sessiond.events import (
    AllRevoked,
    Kind,
    ReasonCode,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
)

SNAPSHOT_VERSION = 1

_Code = ReasonCode | Literal[""]  # "": the event had none
#: Why: the reason code and reason of a revocation ("" for none).
_Why = tuple[_Code, str]
#: The second from which an entry may be dropped, and why it was revoked.
_Mark = tuple[int, _Code, str]
_NO_WHY: _Why = ("", "")


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


class Denial(NamedTuple):
    """Why :meth:`Denylist.denies` rejects a token: the kind of revocation that matched it,
    with that revocation's ``reason_code`` and ``reason`` (``None`` when it had none)."""

    kind: Kind
    reason_code: ReasonCode | None = None
    reason: str | None = None


class _Due(msgspec.Struct):
    """The keys whose mark is ``mark``: they may be dropped at its second (if no later
    revocation extended them)."""

    mark: _Mark
    tokens: list[str]
    sessions: list[str]
    subjects: list[str]


class _Snapshot(msgspec.Struct, array_like=True):
    v: int
    global_not_before: int
    due: list[tuple[int, list[str], list[str], list[tuple[str, int]]]]
    # Trailing, so that readers from before them ignore them: the why of each ``due`` entry
    # (empty in a snapshot from before them), and of the global not-before.
    whys: list[_Why] = []
    global_why: _Why = _NO_WHY


class Denylist:
    """Revocations still able to match a live token, checked in constant time."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Mark] = {}  # jti -> its mark
        self._sessions: dict[str, _Mark] = {}  # sid -> its mark
        # sub -> (not before, second from which it can be dropped, reason code, reason)
        self._subjects: dict[str, tuple[int, int, _Code, str]] = {}
        self._global_not_before = 0
        self._global_why = _NO_WHY
        self._due: dict[_Mark, _Due] = {}
        #: Called with each event once it is applied (live connections close on it).
        self.listeners: list[Callable[[Revocation], None]] = []

    def apply(self, event: Revocation) -> None:
        """Record one revocation, then tell the :attr:`listeners`."""
        self._record(event)
        for listener in self.listeners:
            listener(event)

    def _record(self, event: Revocation) -> None:
        why: _Why = (event.reason_code or "", event.reason or "")
        match event:
            case TokenRevoked(jti=jti, expires_at=until):
                due = self._due_at(until, why)
                _extend(self._tokens, jti, due.mark, due.tokens)
            case SessionRevoked(sid=sid, expires_at=until):
                due = self._due_at(until, why)
                _extend(self._sessions, sid, due.mark, due.sessions)
            case SubjectRevoked(sub=sub, not_before=nbf, expires_at=until):
                self._revoke_subject(sub, nbf, why, self._due_at(until, why))
            case AllRevoked(not_before=nbf):
                self._revoke_all(nbf, why)

    def denies(self, claims: Checkable) -> Denial | None:
        """The revocation that rejects these claims, or ``None`` if none does."""
        # Membership first: the claims of a valid request pay no more than before reasons.
        if claims.iat <= self._global_not_before:
            return _denial("all", self._global_why)
        if claims.jti in self._tokens:
            return _denial("token", self._tokens[claims.jti][1:])
        if claims.sid in self._sessions:
            return _denial("session", self._sessions[claims.sid][1:])
        subject = self._subjects.get(claims.sub)
        if subject is not None and claims.iat <= subject[0]:
            return _denial("subject", subject[2:])
        return None

    def prune(self, now: float) -> int:
        """Drop every entry that can no longer match an unexpired token; return how many."""
        dropped = 0
        for mark in sorted(m for m in self._due if m[0] <= now):
            due = self._due.pop(mark)
            for table, keys in ((self._tokens, due.tokens), (self._sessions, due.sessions)):
                for key in keys:
                    if table.get(key) == mark:  # not extended by a later revocation
                        del table[key]
                        dropped += 1
            for key in due.subjects:
                entry = self._subjects.get(key)
                if entry is not None and entry[1] == mark[0]:
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
        groups: dict[_Mark, tuple[list[str], list[str], list[tuple[str, int]]]] = {
            d.mark: (d.tokens, d.sessions, []) for d in self._due.values()
        }
        for sub, (nbf, second, code, reason) in self._subjects.items():
            groups.setdefault((second, code, reason), ([], [], []))[2].append((sub, nbf))
        return msgspec.msgpack.encode(
            _Snapshot(
                SNAPSHOT_VERSION,
                self._global_not_before,
                [(mark[0], *lists) for mark, lists in groups.items()],
                [mark[1:] for mark in groups],
                self._global_why,
            )
        )

    def load_snapshot(self, data: bytes) -> None:
        """Merge a :meth:`snapshot` into this denylist, as if its events were applied again.

        Raises ``msgspec.DecodeError``/``ValidationError`` on bytes that are not a snapshot.
        """
        snapshot = msgspec.msgpack.decode(data, type=_Snapshot)
        if snapshot.v != SNAPSHOT_VERSION:
            raise msgspec.ValidationError(f"snapshot version {snapshot.v} is not supported")
        whys = snapshot.whys or [_NO_WHY] * len(snapshot.due)
        if len(whys) != len(snapshot.due):
            raise msgspec.ValidationError("snapshot reasons do not match its entries")
        self._revoke_all(snapshot.global_not_before, snapshot.global_why)
        fresh = not self._tokens and not self._sessions  # at start-up: nothing to merge with
        # Marks ascending, so that where a key is filed twice its latest mark wins.
        for (second, tokens, sessions, subjects), why in sorted(
            zip(snapshot.due, whys, strict=True), key=lambda d: (d[0][0], d[1])
        ):
            due = self._due_at(second, why)
            for table, keys, filed in (
                (self._tokens, tokens, due.tokens),
                (self._sessions, sessions, due.sessions),
            ):
                if fresh:  # about 30% faster
                    table.update(dict.fromkeys(keys, due.mark))
                    filed.extend(keys)
                else:
                    for key in keys:
                        _extend(table, key, due.mark, filed)
            for sub, nbf in subjects:
                self._revoke_subject(sub, nbf, why, due)

    def _due_at(self, until: float, why: _Why) -> _Due:
        """The list of keys of the mark (the second ``until`` is in, ``why``); made if new."""
        mark: _Mark = (math.ceil(until), *why)
        due = self._due.get(mark)
        if due is None:
            due = self._due[mark] = _Due(mark, [], [], [])
        return due

    def _revoke_subject(self, sub: str, nbf: int, why: _Why, due: _Due) -> None:
        second = due.mark[0]
        old = self._subjects.get(sub)
        if old is None:
            self._subjects[sub] = (nbf, second, *why)
            due.subjects.append(sub)
            return
        latest = max((nbf, *why), (old[0], old[2], old[3]))
        self._subjects[sub] = (latest[0], max(second, old[1]), latest[1], latest[2])
        if old[1] < second:
            due.subjects.append(sub)

    def _revoke_all(self, nbf: int, why: _Why) -> None:
        latest = max((nbf, *why), (self._global_not_before, *self._global_why))
        self._global_not_before, self._global_why = latest[0], latest[1:]


def _denial(kind: Kind, why: _Why) -> Denial:
    code, reason = why
    return Denial(kind, code or None, reason or None)


def _extend(table: dict[str, _Mark], key: str, mark: _Mark, due: list[str]) -> None:
    """Keep ``key`` until ``mark``'s second at least, filed under ``mark`` if that is later."""
    old = table.get(key)
    if old is None or old < mark:
        table[key] = mark
        due.append(key)
