"""The denylist: revoked token ids, session ids, subject and global not-before times.

The per-request check is three dictionary lookups and two integer comparisons. Entries are
filed by the second in which they stop mattering and dropped by :meth:`Denylist.prune` once
every token they could match has expired (I5), so memory follows recent revocations only.
Applying an event twice changes nothing, which makes replays and retries harmless.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

from sessiond.broadcast.events import (
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
)

Table = Literal["token", "session", "subject"]


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


class Denylist:
    """Revocations still able to match a live token, checked in constant time."""

    def __init__(self) -> None:
        self._tokens: dict[str, float] = {}
        self._sessions: dict[str, float] = {}
        self._subjects: dict[str, tuple[int, float]] = {}
        self._global_not_before = 0
        self._due: dict[int, list[tuple[Table, str]]] = {}

    def apply(self, event: Revocation) -> None:
        """Record one revocation."""
        match event:
            case TokenRevoked(jti=jti, expires_at=until):
                self._tokens[jti] = max(until, self._tokens.get(jti, 0.0))
                self._file("token", jti, until)
            case SessionRevoked(sid=sid, expires_at=until):
                self._sessions[sid] = max(until, self._sessions.get(sid, 0.0))
                self._file("session", sid, until)
            case SubjectRevoked(sub=sub, not_before=nbf, expires_at=until):
                old_nbf, old_until = self._subjects.get(sub, (0, 0.0))
                self._subjects[sub] = (max(nbf, old_nbf), max(until, old_until))
                self._file("subject", sub, until)
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
            for table, key in self._due.pop(second):
                dropped += self._drop_if_due(table, key, now)
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

    def _file(self, table: Table, key: str, until: float) -> None:
        self._due.setdefault(math.ceil(until), []).append((table, key))

    def _drop_if_due(self, table: Table, key: str, now: float) -> int:
        if table == "subject":
            entry = self._subjects.get(key)
            if entry is not None and entry[1] <= now:
                del self._subjects[key]
                return 1
            return 0
        entries = self._tokens if table == "token" else self._sessions
        until = entries.get(key)
        if until is not None and until <= now:
            del entries[key]
            return 1
        return 0
