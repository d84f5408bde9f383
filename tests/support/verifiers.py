"""Verifiers for tests: one over a local keyset and the tokens it accepts, for tests of the
verifier and its framework adapters (no JWKS, no stream: the denylist is fed by hand), and a
backend's, following a real stream with the keys of a JWKS."""

from __future__ import annotations

import time
from typing import Any

from sessiond.denylist.denylist import Denylist
from sessiond.tokens.access import AccessTokenDecoder, sign_access_token
from sessiond.tokens.keys import Keyset
from sessiond.verifier.engine import Verifier
from sessiond.verifier.keys import LocalKeys
from sessiond.verifier.settings import VerifierSettings
from support.polling import eventually
from support.servers import JsonServer

KEYSET = Keyset.generate("ES256")
ISSUER, AUDIENCE = "i", "a"


def local_verifier(**options: Any) -> Verifier:
    """A verifier of :data:`KEYSET`'s tokens whose denylist is always current; ``options`` go
    to :class:`Verifier`."""
    keys = LocalKeys(KEYSET)
    decoder = AccessTokenDecoder(
        keys.current, issuer=ISSUER, audience=AUDIENCE, leeway=0, max_bytes=4096, retain=60
    )
    return Verifier(decoder, keys, Denylist(), staleness=lambda now: 0.0, **options)


def signed_token(**claims: Any) -> str:
    """An access token of ``alice``'s session ``s1`` for 60 s, with ``claims`` (the keyword
    arguments of :func:`sign_access_token`) on top."""
    fields: dict[str, Any] = {"sub": "alice", "sid": "s1", "ttl": 60, "now": time.time()}
    signed, _ = sign_access_token(
        KEYSET.active, issuer=ISSUER, audience=AUDIENCE, **{**fields, **claims}
    )
    return signed


async def following_verifier(
    backend: dict[str, str], jwks: JsonServer, **overrides: Any
) -> Verifier:
    """A backend's verifier, started and caught up: its keys from ``jwks``, its revocations
    from the stream of ``backend`` (``nats_url``, ``nats_stream``, ``nats_subject``)."""
    settings = VerifierSettings.load(
        {},
        {
            "jwks_url": jwks.url + "/.well-known/jwks.json",
            "nats_url": backend["nats_url"],
            "nats_stream": backend["nats_stream"],
            "nats_subject": backend["nats_subject"],
            "jwks_cooldown": 0.1,
            **overrides,
        },
    )
    verifier = Verifier.from_settings(settings)
    await verifier.start()
    await eventually(lambda: ready(verifier), 10, "the verifier caught up")
    return verifier


def ready(verifier: Verifier) -> bool:
    """Whether ``verifier`` has its keys and a current denylist."""
    try:
        verifier.check_ready()
    except Exception:
        return False
    return True
