"""Live connections (WebSockets, streamed responses) that end the moment their token is revoked.

A connection authenticated once at its start would otherwise outlive a forced sign-out. The
verifier registers each one here with its claims; every revocation applied to the denylist
(from the stream, or made on this very replica) looks up the connections it may hit, by
``jti``, ``sid`` or ``sub`` (all of them for ``kind: all``), asks the denylist, and fires the
ones it now rejects. Firing is a callback on the event loop with the denylist's
:class:`~sessiond.denylist.denylist.Denial` (the kind, the reason code); the ASGI middleware
turns it into a WebSocket close with :data:`CLOSE_REVOKED` and :func:`close_reason`, or the
end of a streamed body.

Expiry of the access token does not end a live connection: it was valid when it opened, and
revocation is what a forced sign-out uses (as with Keycloak's or Auth0's session-bound
sockets, the socket lives on its session, not on one access token's lifetime).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sessiond.denylist.denylist import Denial, Denylist
from sessiond.events import (
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
)
from sessiond.tokens.claims import AccessClaims

__all__ = ["CLOSE_REVOKED", "LiveConnections", "Watch", "close_reason", "with_reason_code"]

#: WebSocket close code for "the session of this connection was revoked" (the application range
#: 4000-4999 of RFC 6455 section 7.4.2; 4401 reads as HTTP 401). See :func:`close_reason`.
CLOSE_REVOKED: Final = 4401


def with_reason_code(text: str, reason_code: str | None) -> str:
    """``text``, then ``; reason_code=<code>`` if there is one: a WebSocket close reason an app
    can parse (at most 123 bytes, RFC 6455 section 5.5; a code is at most 15)."""
    return text if reason_code is None else f"{text}; reason_code={reason_code}"


def close_reason(denial: Denial) -> str:
    """The close reason of a live connection revoked by ``denial``, e.g.
    ``token revoked (subject); reason_code=forced``."""
    return with_reason_code(f"token revoked ({denial.kind})", denial.reason_code)


class Watch:
    """One live connection: its claims and what to do when they are revoked."""

    __slots__ = ("claims", "fired", "on_revoked")

    def __init__(self, claims: AccessClaims, on_revoked: Callable[[Denial], None]) -> None:
        self.claims = claims
        self.on_revoked = on_revoked
        self.fired = False

    def fire(self, denial: Denial) -> None:
        if not self.fired:
            self.fired = True
            self.on_revoked(denial)


class LiveConnections:
    """The live connections of one process, indexed by the claims a revocation names."""

    def __init__(self, denylist: Denylist) -> None:
        self._denylist = denylist
        self._by: dict[str, dict[str, set[Watch]]] = {"jti": {}, "sid": {}, "sub": {}}
        self._all: set[Watch] = set()
        denylist.listeners.append(self.revoked)

    def watch(self, claims: AccessClaims, on_revoked: Callable[[Denial], None]) -> Watch:
        """Call ``on_revoked(denial)`` once, when these claims are revoked (at once if they
        already are: a revocation may have landed since they were verified)."""
        watch = Watch(claims, on_revoked)
        self._all.add(watch)
        for name, index in self._by.items():
            index.setdefault(getattr(claims, name), set()).add(watch)
        denial = self._denylist.denies(claims)
        if denial is not None:
            watch.fire(denial)
        return watch

    def unwatch(self, watch: Watch) -> None:
        self._all.discard(watch)
        for name, index in self._by.items():
            key = getattr(watch.claims, name)
            watches = index.get(key)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del index[key]

    def revoked(self, event: Revocation) -> None:
        """Fire every watched connection ``event`` revokes (a denylist listener)."""
        for watch in list(self._candidates(event)):
            denial = self._denylist.denies(watch.claims)
            if denial is not None:
                watch.fire(denial)

    def _candidates(self, event: Revocation) -> set[Watch]:
        match event:
            case TokenRevoked(jti=jti):
                return self._by["jti"].get(jti, set())
            case SessionRevoked(sid=sid):
                return self._by["sid"].get(sid, set())
            case SubjectRevoked(sub=sub):
                return self._by["sub"].get(sub, set())
            case AllRevoked():
                return self._all
        return set()

    def __len__(self) -> int:
        return len(self._all)
