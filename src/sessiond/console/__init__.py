"""The web console: "your devices" for signed-in users, and the administrator console.

Served by sessiond itself under ``/console`` (:class:`ConsolePlugin`), from Jinja templates and
a stylesheet and script of its own: no CDN, no build step, no inline script or style. See
``docs/console.md``.
"""

from sessiond.console.plugin import ConsolePlugin
from sessiond.console.state import UserCookies

__all__ = ["ConsolePlugin", "UserCookies"]
