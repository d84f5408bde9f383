"""Per-session lifetimes: a session may ask for its own idle and absolute lifetimes.

"Remember me" asks for longer ones, a shared kiosk or a banking session for shorter ones. What a
session asks for is cut to ``SESSIOND_SESSION_MAX_IDLE_TTL`` and
``SESSIOND_SESSION_MAX_ABSOLUTE_TTL`` (by default the default lifetimes, so nothing longer is
granted until the operator allows it), its idle lifetime to at least :data:`MIN_IDLE_TTL` and at
most its absolute one: like a requested token lifetime in OAuth, a request is granted as far as
the policy allows, and the token response says what was granted (``refresh_expires_in``). A
session that asks nothing gets ``SESSIOND_REFRESH_IDLE_TTL`` and
``SESSIOND_REFRESH_ABSOLUTE_TTL``. Access tokens never outlive
the session's absolute lifetime, whichever it is.

The named presets are NIST SP 800-63B-4 (August 2025) reauthentication limits:

- ``aal2`` (section 2.2.3): the subscriber reauthenticates at least once per 24 hours, and the
  inactivity timeout SHOULD be no more than 1 hour: idle 3600 s, absolute 86400 s;
- ``aal3`` (section 2.3.3): at least once per 12 hours, and the inactivity timeout SHALL be no
  more than 15 minutes: idle 900 s, absolute 43200 s.

(The previous revision, SP 800-63B-3, asked 12 hours and 30 minutes at AAL2.)
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from sessiond.settings import Settings

#: The shortest idle lifetime a session may ask for, seconds.
MIN_IDLE_TTL: Final = 60

Preset = Literal["aal2", "aal3"]


class Lifetime(msgspec.Struct, frozen=True, kw_only=True):
    """A session's idle and absolute lifetimes, seconds."""

    idle: int
    absolute: int


PRESETS: Final[dict[Preset, Lifetime]] = {
    "aal2": Lifetime(idle=3600, absolute=86400),
    "aal3": Lifetime(idle=900, absolute=43200),
}


def lifetime(
    settings: Settings,
    *,
    preset: Preset | None = None,
    idle: int | None = None,
    absolute: int | None = None,
) -> Lifetime:
    """The lifetime a session gets: ``idle`` and ``absolute`` if given, else the ``preset``'s,
    else the settings', within the settings' bounds (see the module)."""
    base = (
        PRESETS[preset]
        if preset is not None
        else Lifetime(idle=settings.refresh_idle_ttl, absolute=settings.refresh_absolute_ttl)
    )
    if preset is None and idle is None and absolute is None:
        return base
    longest = min(absolute or base.absolute, settings.session_max_absolute_ttl)
    idle = min(max(idle or base.idle, MIN_IDLE_TTL), settings.session_max_idle_ttl)
    return Lifetime(idle=min(idle, longest), absolute=longest)
