"""Session records for the tests of the session stores."""

from __future__ import annotations

import time

import msgspec

from sessiond.sessions.models import Device, RefreshState, Session, new_session_id


def make_session(
    sub: str = "alice",
    *,
    created_at: float | None = None,
    idle: float = 600.0,
    lifetime: float = 3600.0,
) -> Session:
    """A new session of ``sub`` with every optional field filled in, so a store that drops
    one fails an equality check."""
    now = time.time()
    created = now if created_at is None else created_at
    return Session(
        sid=new_session_id(sub),
        sub=sub,
        created_at=created,
        last_seen_at=created,
        idle_expires_at=now + idle,
        expires_at=now + lifetime,
        refresh=RefreshState(hash="h0"),
        device=Device(label="laptop", user_agent="test/1.0", ip="192.0.2.1"),
        data={"theme": "dark", "n": [1, 2]},
        claims={"role": "admin"},
        scope="read write",
    )


def bump(session: Session) -> tuple[Session, int]:
    """A change for ``SessionStore.update``: the next refresh generation, which it returns."""
    generation = session.refresh.generation + 1
    refresh = msgspec.structs.replace(session.refresh, generation=generation)
    return msgspec.structs.replace(session, refresh=refresh), generation
