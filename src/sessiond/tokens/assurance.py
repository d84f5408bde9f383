"""How strongly and how recently the subject authenticated: ``acr`` levels and step-up rules.

An access token carries the session's ``acr`` (authentication context class), ``amr``
(methods) and ``auth_time`` (OpenID Connect Core section 2). ``SESSIOND_ACR_LEVELS`` orders the
``acr`` values a deployment uses, weakest first (say ``aal1,aal2,aal3``): a token whose ``acr``
ranks at or above a required one satisfies it. Without an order, only the very value required
satisfies it.

:class:`Assurance` is what a resource asks: a minimum ``acr``, a maximum age of ``auth_time``
in seconds, or both. :meth:`Assurance.check` refuses weaker or older authentication with
:class:`~sessiond.errors.InsufficientUserAuthentication`, whose ``WWW-Authenticate`` challenge
(RFC 9470) tells the client what to step up to: ``acr_values`` and ``max_age``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sessiond.errors import ConfigError, InsufficientUserAuthentication
from sessiond.tokens.claims import AccessClaims

__all__ = ["AcrLevels", "Assurance"]


class AcrLevels:
    """An order of ``acr`` values, weakest first (empty: no order, only equality counts)."""

    def __init__(self, levels: Sequence[str] = ()) -> None:
        if len(set(levels)) != len(levels):
            raise ConfigError("SESSIOND_ACR_LEVELS: a level is listed twice")
        self.levels = tuple(levels)
        self._rank = {acr: n for n, acr in enumerate(self.levels)}

    def satisfies(self, acr: str | None, required: str) -> bool:
        """Whether ``acr`` is ``required`` or ranks above it."""
        if acr is None:
            return False
        if acr == required:
            return True
        have, need = self._rank.get(acr), self._rank.get(required)
        return have is not None and need is not None and have >= need

    def at_least(self, required: str) -> tuple[str, ...]:
        """The values that satisfy ``required``, weakest first (for ``acr_values``)."""
        need = self._rank.get(required)
        return (required,) if need is None else self.levels[need:]

    def known(self, acr: str) -> bool:
        """Whether ``acr`` is one of the levels (always, without an order)."""
        return not self.levels or acr in self._rank


class Assurance:
    """What a resource requires of the authentication behind a token: ``acr`` at least
    ``acr`` (by ``levels``), ``auth_time`` at most ``max_age`` seconds ago."""

    def __init__(
        self,
        levels: AcrLevels,
        *,
        acr: str | None = None,
        max_age: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if acr is None and max_age is None:
            raise ConfigError("an assurance requirement needs acr, max_age or both")
        if acr is not None and not levels.known(acr):
            raise ConfigError(f"acr {acr!r} is not one of SESSIOND_ACR_LEVELS")
        if max_age is not None and max_age < 0:
            raise ConfigError("max_age must not be negative")
        self.levels = levels
        self.acr = acr
        self.max_age = max_age
        self._clock = clock

    def check(self, claims: AccessClaims, now: float | None = None) -> None:
        """Return if ``claims`` meet the requirement; raise
        :class:`InsufficientUserAuthentication` (401 with its challenge) otherwise."""
        if self.acr is not None and not self.levels.satisfies(claims.acr, self.acr):
            self._refuse("a stronger authentication is required")
        if self.max_age is not None:
            now = self._clock() if now is None else now
            if claims.auth_time is None or now - claims.auth_time > self.max_age:
                self._refuse("a more recent authentication is required")

    def _refuse(self, detail: str) -> None:
        acr_values = self.levels.at_least(self.acr) if self.acr is not None else ()
        raise InsufficientUserAuthentication(detail, acr_values=acr_values, max_age=self.max_age)
