"""Where a verifier's keys come from: the keyset file (the authority) or the JWKS (a backend).

Both are a :class:`KeySource`. A token with an unknown ``kid`` makes the verifier call
:meth:`KeySource.refresh` once before rejecting it, so a key rotation needs no restart:

- :class:`LocalKeys` re-reads the keyset file if it changed (a cheap ``stat``);
- :class:`RemoteJwks` fetches the JWKS again, at most once per ``cooldown`` seconds between
  such fetches (the fetch at start and the periodic one do not count), and every caller
  waiting meanwhile shares that one fetch, so a stream of made-up ``kid`` values costs
  the authority one request per cooldown, not one per token. It also refetches every
  ``refresh_every`` seconds to drop keys the authority no longer publishes. A failed fetch
  keeps the keys it had (logged).

Fetching uses ``urllib`` in a worker thread, never on the event loop (PyJWT's ``PyJWKClient``
is synchronous too, and is not used: it caches by its own rules and has no cooldown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import urllib.request
from typing import Protocol

import msgspec

from sessiond.broadcast.stream import cancel_task
from sessiond.errors import ConfigError
from sessiond.tokens.access import KeyLookup
from sessiond.tokens.jwks import PublishedKeys
from sessiond.tokens.keys import Algorithm, Keyset

log = logging.getLogger("sessiond.verifier")

#: The largest JWKS document accepted (a few keys take a few kB).
MAX_JWKS_BYTES = 1 << 20
FETCH_TIMEOUT = 5.0
#: How often a keyset file is checked for a rotation (``sessiond keys rotate``).
RELOAD_INTERVAL = 2.0
_NO_KEYS = PublishedKeys({})


class KeySource(Protocol):
    """The verification keys of a verifier, and how to look for new ones."""

    def current(self) -> KeyLookup:
        """The keys now (none before the first successful load)."""
        ...

    @property
    def loaded(self) -> bool:
        """Whether keys were loaded at least once (readiness)."""
        ...

    async def refresh(self) -> bool:
        """Look for new keys now if allowed (a token named an unknown ``kid``); ``True`` if
        :meth:`current` changed."""
        ...

    @property
    def fetched_at(self) -> float:
        """``time.monotonic()`` when :meth:`current` was last confirmed against its source."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class LocalKeys:
    """A keyset in this process: read from ``path`` (and re-read every ``RELOAD_INTERVAL``
    seconds if it changed), or given."""

    loaded = True

    def __init__(self, keyset: Keyset, path: str | None = None) -> None:
        self.keyset = keyset
        self._path = path
        self._mtime = _mtime(path)
        self.fetched_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def load(cls, path: str | None, alg: Algorithm = "ES256") -> LocalKeys:
        """The keyset file at ``path``, or without one a new ephemeral key of ``alg``."""
        return cls(Keyset.load(path), path) if path else cls(Keyset.generate(alg))

    def current(self) -> Keyset:
        return self.keyset

    async def refresh(self) -> bool:
        return self.reload()

    def reload(self) -> bool:
        """Re-read the file if it changed; keep the keys we have if it cannot be read."""
        mtime = _mtime(self._path)
        if self._path is None or mtime == self._mtime:
            self.fetched_at = time.monotonic()
            return False
        try:
            self.keyset = Keyset.load(self._path)
        except ConfigError as exc:
            log.warning("keyset reload failed, keeping the current keys: %s", exc)
            return False
        self._mtime, self.fetched_at = mtime, time.monotonic()
        log.info("keyset reloaded; active key %s", self.keyset.active.kid)
        return True

    async def start(self) -> None:
        if self._path is not None:
            self._task = asyncio.create_task(self._watch(), name="sessiond-keyset-reload")

    async def aclose(self) -> None:
        await cancel_task(self._task)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            self.reload()


class RemoteJwks:
    """The authority's JWKS at ``url``, fetched at start, on unknown keys, and periodically."""

    def __init__(
        self,
        url: str,
        *,
        cooldown: float = 10.0,
        refresh_every: float = 300.0,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.url = url
        self.fetches = 0  # fetches attempted, for tests and metrics
        self.fetched_at = -float("inf")
        self._cooldown = cooldown
        self._refresh_every = refresh_every
        self._timeout = timeout
        self._keys: PublishedKeys | None = None
        self._loaded = asyncio.Event()
        self._document: object = None
        self._last_attempt = -float("inf")
        self._inflight: asyncio.Task[bool] | None = None
        self._task: asyncio.Task[None] | None = None

    def current(self) -> PublishedKeys:
        return self._keys or _NO_KEYS

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    async def refresh(self) -> bool:
        if self._inflight is None:
            if time.monotonic() - self._last_attempt < self._cooldown:
                return False
            self._last_attempt = time.monotonic()
            self._inflight = asyncio.create_task(self._fetch(), name="sessiond-jwks-fetch")
            self._inflight.add_done_callback(self._fetched)
        return await asyncio.shield(self._inflight)

    async def start(self) -> None:
        """Fetch once (without waiting longer than the fetch timeout), then keep up in the
        background; until the first success :meth:`current` is ``None``."""
        self._task = asyncio.create_task(self._keep_up(), name="sessiond-jwks")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout):
                await self._loaded.wait()

    async def aclose(self) -> None:
        await cancel_task(self._task)
        if self._inflight is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._inflight

    async def _keep_up(self) -> None:
        while True:
            await self._fetch()
            loaded = self._keys is not None
            await asyncio.sleep(self._refresh_every if loaded else min(1.0, self._cooldown))

    def _fetched(self, task: asyncio.Task[bool]) -> None:
        self._inflight = None

    async def _fetch(self) -> bool:
        self.fetches += 1
        started = time.monotonic()
        try:
            document = await asyncio.to_thread(_get_json, self.url, self._timeout)
            if document == self._document:
                self.fetched_at = started
                return False
            keys = PublishedKeys.from_jwks(document)
        except (OSError, ValueError, msgspec.DecodeError, ConfigError) as exc:
            log.warning(
                "cannot fetch the JWKS from %s: %s (keeping the keys we have)", self.url, exc
            )
            return False
        self._keys, self._document, self.fetched_at = keys, document, started
        self._loaded.set()
        log.info("JWKS loaded from %s: keys %s", self.url, ", ".join(sorted(keys.by_kid)))
        return True


def _get_json(url: str, timeout: float) -> object:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (the scheme is checked to be http(s) in VerifierSettings)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (same)
        body = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
    return msgspec.json.decode(body)


def _mtime(path: str | None) -> float | None:
    try:
        return os.stat(path).st_mtime if path else None
    except OSError:
        return None
