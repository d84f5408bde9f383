"""A small bank API guarded by sessiond: every route but ``/healthz`` needs an access token.

Run it (two replicas, next to a local sessiond cluster) with::

    .venv/bin/sessiond cluster --replicas 1 --app examples.bank.app:app --app-replicas 2

It reads its settings from ``SESSIOND_*`` (:class:`~sessiond.verifier.VerifierSettings`): at
least ``SESSIOND_JWKS_URL`` (the authority's public keys) and ``SESSIOND_NATS_URL`` (the
revocation stream); ``sessiond cluster --app`` sets both. What the plugin gives it:

- ``request.user`` is the verified token's claims (:class:`~sessiond.verifier.AccessClaims`),
  checked locally: signature, expiry, and the denylist that the revocation stream keeps
  current (no call to the authority per request);
- a revoked token is refused with 401 problem details (``token-revoked``) right after the
  revocation is acknowledged, and a WebSocket opened with it is closed with code 4401;
- ``GET /readyz`` answers 200 once the keys are fetched and the denylist is current (503 while
  NATS is unreachable; whether requests are then refused depends on
  ``SESSIOND_STALE_POLICY``: ``fail_closed`` by default, or ``fail_open``).

The ledger is a dictionary in each process: this example is about access, not about money.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator

import msgspec
from litestar import Litestar, WebSocket, get, post
from litestar.datastructures import State
from litestar.handlers import websocket_stream

from sessiond.verifier import AccessClaims
from sessiond.verifier.litestar import AuthRequest, SessiondPlugin, requires_scope

OPENING_BALANCE = 100_000  # cents
#: How often the live feed sends an event.
FEED_INTERVAL = 1.0

#: Each subject's balance in cents, per process (a toy ledger).
balances: defaultdict[str, int] = defaultdict(lambda: OPENING_BALANCE)


class Balance(msgspec.Struct):
    account: str
    balance_cents: int
    currency: str = "EUR"


class TransferIn(msgspec.Struct, forbid_unknown_fields=True):
    to: str
    amount_cents: int


class Transfer(msgspec.Struct):
    id: str
    source: str
    to: str
    amount_cents: int
    balance_cents: int


class Event(msgspec.Struct):
    seq: int
    account: str
    kind: str
    amount_cents: int
    at: float


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Liveness: no token needed (excluded from the plugin)."""
    return {"status": "ok"}


@get("/accounts/balance", guards=[requires_scope("accounts:read")], sync_to_thread=False)
def balance(request: AuthRequest) -> Balance:
    """The caller's balance: ``request.user`` is the token's verified claims."""
    account = request.user.sub
    return Balance(account=account, balance_cents=balances[account])


@post("/transfers", guards=[requires_scope("transfers:write")], sync_to_thread=False)
def transfer(request: AuthRequest, data: TransferIn) -> Transfer:
    """Move money from the caller's account (201)."""
    source = request.user.sub
    balances[source] -= data.amount_cents
    balances[data.to] += data.amount_cents
    return Transfer(
        id=uuid.uuid4().hex,
        source=source,
        to=data.to,
        amount_cents=data.amount_cents,
        balance_cents=balances[source],
    )


@websocket_stream("/ws/transactions", guards=[requires_scope("accounts:read")])
async def transactions(socket: WebSocket[AccessClaims, str, State]) -> AsyncGenerator[Event, None]:
    """A live feed, one JSON event a second, until the client leaves or its session is revoked
    (the plugin then closes the socket with code 4401: nothing to do here for that)."""
    seq = 0
    while True:
        seq += 1
        amount = -(seq * 137 % 5000)  # made-up card payments
        yield Event(
            seq=seq, account=socket.user.sub, kind="card", amount_cents=amount, at=time.time()
        )
        await asyncio.sleep(FEED_INTERVAL)


app = Litestar(
    [healthz, balance, transfer, transactions],
    plugins=[SessiondPlugin(readiness_path="/readyz", exclude=["^/healthz$"])],
)
