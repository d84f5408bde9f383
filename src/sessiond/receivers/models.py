"""A receiver: an endpoint outside sessiond that is told about revocations, in one wire format.

- ``backchannel_logout``: an OpenID Connect relying party's back-channel logout URI; it gets a
  logout token (``backchannel.py``) for its ``audience`` (its ``client_id``);
- ``ssf``: a Shared Signals receiver's push endpoint; it gets a CAEP ``session-revoked``
  Security Event Token (``ssf.py``) for its ``audience``;
- ``webhook``: any HTTP endpoint; it gets the event as JSON, signed with its ``secret`` in the
  Standard Webhooks style (``webhook.py``).

The webhook secret is shown once, when the receiver is created, and never logged: it is
left out of ``repr`` and of every view the API returns.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Annotated, Final, Literal, get_args

import msgspec

from sessiond.errors import BadRequest
from sessiond.events import Kind

ReceiverKind = Literal["backchannel_logout", "ssf", "webhook"]
Source = Literal["api", "file"]
ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
ReceiverId = Annotated[
    str, msgspec.Meta(pattern=ID_PATTERN, description="Letters, digits, '_' and '-'.")
]
_PORT = (
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
)
#: An https:// URL, or an http:// one on a loopback address; no user or password, no fragment,
#: printable ASCII only (percent-encode the rest).
ENDPOINT_PATTERN: Final = (
    r"^(https://[A-Za-z0-9.-]+|http://(127\.0\.0\.1|localhost|\[::1\]))" + _PORT + r"(/[!\"$-~]*)?$"
)
Endpoint = Annotated[
    str,
    msgspec.Meta(
        max_length=2048,
        pattern=ENDPOINT_PATTERN,
        description="https:// URL (http:// only on a loopback address).",
    ),
]
Audience = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
EVENT_KINDS: Final[tuple[Kind, ...]] = get_args(Kind)
#: The Standard Webhooks secret prefix; the rest is the base64 of the HMAC key.
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES: Final = 32
_MIN_SECRET_BYTES = 24
_ENDPOINT = re.compile(ENDPOINT_PATTERN)
_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]+={0,2}", re.ASCII)


class Receiver(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One receiver; see the module for the kinds."""

    id: ReceiverId
    kind: ReceiverKind
    endpoint: Endpoint
    #: The ``aud`` of what it gets: an OIDC relying party's ``client_id``, an SSF receiver's
    #: audience. Required for ``backchannel_logout`` and ``ssf``.
    audience: Audience | None = None
    #: ``whsec_...``: the HMAC key of a ``webhook``. Never logged.
    secret: str | None = None
    #: The revocation kinds it wants (a kind its format cannot express is never sent).
    events: tuple[Kind, ...] = EVENT_KINDS
    #: When it was registered (Unix seconds): it gets the events from then on. ``None`` for
    #: the file's receivers: every event the stream still holds when first seen.
    created_at: float | None = None
    source: Source = "api"

    def __repr__(self) -> str:
        return f"Receiver(id={self.id!r}, kind={self.kind!r}, endpoint={self.endpoint!r})"

    def wants(self, kind: Kind) -> bool:
        return kind in self.events

    def hmac_key(self) -> bytes:
        """The webhook's HMAC-SHA256 key, decoded from :attr:`secret`."""
        if self.secret is None:
            raise ValueError(f"receiver {self.id} has no secret")
        return base64.b64decode(self.secret.removeprefix(SECRET_PREFIX))


def new_secret() -> str:
    """A new webhook secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def new_receiver_id() -> str:
    return "rcv_" + secrets.token_hex(8)


def checked(receiver: Receiver) -> Receiver:
    """``receiver`` if its fields fit its kind; else :class:`BadRequest` saying why."""
    _check_endpoint(receiver.endpoint)
    needs_audience = receiver.kind in ("backchannel_logout", "ssf")
    if needs_audience and receiver.audience is None:
        raise BadRequest(f"a {receiver.kind} receiver needs an audience (its client_id)")
    if receiver.kind == "webhook":
        _check_secret(receiver.secret)
    elif receiver.secret is not None:
        raise BadRequest("only a webhook receiver has a secret")
    if not receiver.events or len(set(receiver.events)) != len(receiver.events):
        raise BadRequest("events: one or more distinct revocation kinds")
    return receiver


def _check_endpoint(endpoint: str) -> None:
    if _ENDPOINT.fullmatch(endpoint) is None:
        raise BadRequest("endpoint: an https:// URL (http:// only on a loopback address)")


def _check_secret(secret: str | None) -> None:
    if secret is None or _SECRET.fullmatch(secret) is None:
        raise BadRequest("a webhook secret is 'whsec_' and base64")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise BadRequest("a webhook secret is 'whsec_' and base64") from None
    if len(key) < _MIN_SECRET_BYTES:
        raise BadRequest(f"a webhook secret holds at least {_MIN_SECRET_BYTES} bytes")


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """An event a receiver never accepted: given up after the worker's attempts, or refused
    for good (a 4xx other than 408 and 429)."""

    receiver: ReceiverId
    event_id: str
    kind: Kind
    seq: int
    attempts: int
    error: str
    at: float
