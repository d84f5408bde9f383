"""The rules of a session's life, as pure functions over :class:`Session` values.

Both stores apply these through :meth:`SessionStore.update`, so the rules exist once.

Refresh rotation (what Auth0 and Okta call refresh-token rotation with reuse detection):

- the current token rotates: a new token becomes current, the old one becomes ``previous``;
- ``previous`` presented within ``grace`` seconds of its rotation gets the *same* successor
  (two tabs refreshing at once must not sign the user out);
- ``previous`` presented later, or any older retired token, is theft: the caller revokes the
  session (through the durable revocation path, so the change leaves the record alone);
- a secret matching nothing is a guess or garbage: refused, the session left alone, so that
  knowing a session id is not enough to revoke it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from sessiond.sessions.base import Change
from sessiond.sessions.models import RefreshState, Session
from sessiond.tokens.refresh import RefreshToken

#: How many superseded generations are remembered for reuse detection.
RETIRED_GENERATIONS = 16


class Outcome(enum.Enum):
    ROTATED = "rotated"
    REPLAYED = "replayed"
    REUSED = "reused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Rotation:
    """What a refresh did: the outcome and the token the client now holds, if any."""

    outcome: Outcome
    session: Session
    successor: RefreshToken | None = None


def rotate(
    presented: RefreshToken, successor: RefreshToken, *, now: float, grace: float, idle_ttl: int
) -> Change[Rotation]:
    """The change a refresh makes to the session ``presented`` belongs to; ``idle_ttl`` is
    the idle lifetime of a session that did not ask for its own."""

    def change(session: Session) -> tuple[Session | None, Rotation]:
        state = session.refresh
        if presented.matches(state.hash):
            rotated = _advance(session, presented, successor, now=now, idle_ttl=idle_ttl)
            return rotated, Rotation(Outcome.ROTATED, rotated, successor)
        if presented.matches(state.previous_hash) and state.successor_box is not None:
            if now - (state.rotated_at or 0.0) <= grace:
                replayed = presented.unmask(state.successor_box)
                return session, Rotation(Outcome.REPLAYED, session, replayed)
            return session, Rotation(Outcome.REUSED, session)
        if any(presented.matches(old) for old in state.retired):
            return session, Rotation(Outcome.REUSED, session)
        return session, Rotation(Outcome.UNKNOWN, session)

    return change


def _advance(
    session: Session, presented: RefreshToken, successor: RefreshToken, *, now: float, idle_ttl: int
) -> Session:
    state = session.refresh
    retired = (state.previous_hash, *state.retired) if state.previous_hash else state.retired
    return msgspec.structs.replace(
        session,
        last_seen_at=now,
        idle_expires_at=min(now + (session.idle_ttl or idle_ttl), session.expires_at),
        refresh=RefreshState(
            hash=successor.hash,
            generation=state.generation + 1,
            previous_hash=state.hash,
            successor_box=presented.mask(successor),
            rotated_at=now,
            retired=retired[:RETIRED_GENERATIONS],
        ),
    )
