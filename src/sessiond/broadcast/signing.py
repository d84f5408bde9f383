"""Signed revocation events: who may put a revocation on the stream.

Anyone who can publish on the stream's subjects could otherwise revoke any token (one made-up
``all`` event signs out every user). So the authority signs every event it publishes, and every
follower checks the signature before the event can reach a denylist.

**Wire format.** The message payload stays the event JSON exactly as before (``proto/``'s
schema is unchanged). The header ``Sessiond-Signature`` carries a detached compact JWS
(RFC 7515 appendix F) over the payload bytes::

    BASE64URL(protected) ".." BASE64URL(signature)
    signing input: BASE64URL(protected) "." BASE64URL(payload bytes)
    protected:     {"alg": <the key's alg>, "kid": <kid>, "typ": "sessiond-event+jws"}

The ``typ`` keeps an event signature and an access token (``at+jwt``) from ever being taken
for each other. The event ``id`` is inside the signed payload, so a replay under a new id, or
any altered field, fails the check.

**Keys.** The authority's signing key of the moment signs (:meth:`Keyset.signing_key
<sessiond.tokens.keys.Keyset.signing_key>`, the same key as its access tokens); followers look
the ``kid`` up where their access-token keys come from (the keyset file, or a backend's copy of
the JWKS, fetched again once on an unknown ``kid``), with the key's own algorithm pinned:
the header's ``alg`` must equal it (``tokens/jws.py`` checks the signature). The key must
verify at the time the stream stored the event, so events signed before a rotation still
check. With an HS256 keyset every holder of the secret can sign: HS256 is for single-party
setups.

**Verdicts.** An event is rejected as ``unsigned`` (no header), ``bad_signature`` (a header
that is not a valid signature of these bytes), ``unknown_key`` (a ``kid`` not published, after
one refresh) or ``malformed`` (signed, but not an event). The follower drops it, counts and
logs it, and moves past it; it is not a revocation. Readiness does not fail for it: anyone who
can publish could otherwise take every replica out of service.

**Migration.** Events stored before ``unsigned_before`` (Unix seconds of the stream's clock,
which a publisher cannot choose; ``SESSIOND_UNSIGNED_EVENTS_BEFORE``) may be unsigned: set it
to the upgrade time so that the events already in the stream then still apply.

**Snapshots** are signed the same way (``typ`` ``sessiond-snapshot+jws``) over a manifest of
their digest and the stream position they claim (``snapshots.py``); no migration window
applies to them (an unsigned snapshot is ignored and the stream replayed).
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Final, Literal, Protocol

import jwt
import msgspec

from sessiond.errors import InvalidToken
from sessiond.events import Revocation, decode
from sessiond.tokens import jws
from sessiond.tokens.access import KeyLookup, TokenSettings, key_retention
from sessiond.tokens.jws import VerifyingKey
from sessiond.tokens.keys import Keyset, SigningKey

__all__ = [
    "EVENT_TYPE",
    "REASONS",
    "SIGNATURE_HEADER",
    "SNAPSHOT_TYPE",
    "EventSigner",
    "EventVerifier",
    "RejectReason",
    "Rejected",
    "SignatureKeys",
    "SigningSettings",
    "sign_detached",
]

#: The NATS header of an event's (or an object's) detached JWS.
SIGNATURE_HEADER: Final = "Sessiond-Signature"
#: The ``typ`` of an event signature.
EVENT_TYPE: Final = "sessiond-event+jws"
#: The ``typ`` of a denylist snapshot's signature.
SNAPSHOT_TYPE: Final = "sessiond-snapshot+jws"

RejectReason = Literal["unsigned", "bad_signature", "unknown_key", "malformed"]
REASONS: Final[tuple[RejectReason, ...]] = ("unsigned", "bad_signature", "unknown_key", "malformed")

_DETACHED = re.compile(r"([A-Za-z0-9_-]+)\.\.([A-Za-z0-9_-]+)", re.ASCII)
#: Seconds between attempts to fetch keys for an event signed by an unknown ``kid``.
KEY_RETRY: Final = 1.0
_MAX_SIGNATURE_CHARS = 4096  # RS256 with a 4096-bit key takes about 800


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@lru_cache(maxsize=64)
def _protected(alg: str, kid: str, typ: str) -> bytes:
    header = {"alg": alg, "kid": kid, "typ": typ}
    return _b64(msgspec.json.encode(header))


@cache
def _types(typ: str) -> frozenset[str]:
    return frozenset({typ})


def sign_detached(payload: bytes, key: SigningKey, typ: str = EVENT_TYPE) -> str:
    """The detached compact JWS of ``payload`` by ``key``: the ``Sessiond-Signature`` value."""
    protected = _protected(key.alg, key.kid, typ)
    algorithm = jwt.get_algorithm_by_name(key.alg)
    signature = algorithm.sign(protected + b"." + _b64(payload), algorithm.prepare_key(key.private))
    return (protected + b".." + _b64(signature)).decode("ascii")


class EventSigner:
    """Signs with the signing key of ``keyset()`` at the time of signing (called each time,
    so a reloaded keyset signs at once)."""

    def __init__(self, keyset: Callable[[], Keyset]) -> None:
        self._keyset = keyset

    def sign(self, payload: bytes, now: float, typ: str = EVENT_TYPE) -> str:
        """The ``Sessiond-Signature`` value of ``payload``."""
        return sign_detached(payload, self._keyset().signing_key(now), typ)


class SignatureKeys(Protocol):
    """Where a follower finds verification keys: a verifier's
    :class:`~sessiond.verifier.keys.KeySource` (the keyset file or the JWKS)."""

    def current(self) -> KeyLookup:
        """The keys now."""
        ...

    async def refresh(self) -> bool:
        """Look for new keys (a ``kid`` was unknown); ``True`` if :meth:`current` changed."""
        ...

    @property
    def fetched_at(self) -> float:
        """``time.monotonic()`` when :meth:`current` was last confirmed against its source."""
        ...


class SigningSettings(TokenSettings, Protocol):
    """What the service's and a backend's settings say about checking event signatures."""

    @property
    def unsigned_events_before(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a signed message is not applied: a metric label and a line for the log."""

    reason: RejectReason
    detail: str


class EventVerifier:
    """Checks signatures with ``keys``; ``retain`` is how long a retired key still verifies
    (:func:`~sessiond.tokens.access.key_retention`), ``unsigned_before`` the migration cutoff."""

    def __init__(self, keys: SignatureKeys, *, retain: float, unsigned_before: float = 0.0) -> None:
        self._keys = keys
        self._retain = retain
        self.unsigned_before = unsigned_before

    @classmethod
    def from_settings(cls, settings: SigningSettings, keys: SignatureKeys) -> EventVerifier:
        """The verifier of the service or of a backend: keys kept as long as their tokens."""
        return cls(
            keys, retain=key_retention(settings), unsigned_before=settings.unsigned_events_before
        )

    async def event(
        self, payload: bytes, signature: str | None, stored_at: float
    ) -> Revocation | Rejected:
        """The event of a stream message whose payload is ``payload`` and whose
        ``Sessiond-Signature`` header is ``signature``, stored at ``stored_at`` (the stream's
        clock); or why it must not be applied."""
        if signature is None and stored_at < self.unsigned_before:
            rejected = None
        else:
            rejected = await self.check(payload, signature, EVENT_TYPE, stored_at)
        if rejected is not None:
            return rejected
        try:
            return decode(payload)
        except msgspec.MsgspecError as exc:
            return Rejected("malformed", str(exc))

    async def check(
        self, payload: bytes, signature: str | None, typ: str, at: float
    ) -> Rejected | None:
        """``None`` if ``signature`` is a valid detached JWS of ``payload`` with ``typ``, by a
        key that verifies at ``at``; else why not. No migration window applies here."""
        if signature is None:
            return Rejected("unsigned", f"no {SIGNATURE_HEADER} header")
        match = _DETACHED.fullmatch(signature) if len(signature) < _MAX_SIGNATURE_CHARS else None
        if match is None:
            return Rejected("bad_signature", "not a detached compact JWS")
        header, signed = match.group(1).encode(), match.group(2).encode()
        try:
            kid, alg = jws.header_kid_alg(header, _types(typ))
        except InvalidToken:
            return Rejected("bad_signature", f"protected header is not that of a {typ}")
        key = await self._key(kid, at)
        if key is None:
            return Rejected("unknown_key", f"key {kid[:40]!r} is not published")
        if key.alg != alg:
            return Rejected("bad_signature", "algorithm not allowed for this key")
        try:
            jws.verified_payload(header, _b64(payload), signed, key)
        except InvalidToken as exc:
            return Rejected("bad_signature", exc.detail or "invalid signature")
        return None

    async def _key(self, kid: str, at: float) -> VerifyingKey | None:
        """The key ``kid``; ``None`` only once keys fetched after this call lack it.

        A refresh refused by the cooldown or a failed fetch is retried instead of judging: the
        event may be genuine, signed by a key published since our last fetch, and dropping it
        would lose a revocation. The follower waits meanwhile, so its staleness grows and the
        stale policy covers the wait.
        """
        asked = time.monotonic()
        while True:
            key = self._keys.current().verification_key(kid, at, self._retain)
            if key is not None or self._keys.fetched_at >= asked:
                return key
            await self._keys.refresh()
            if self._keys.fetched_at < asked:
                await asyncio.sleep(KEY_RETRY)
