"""(a) No authentication at all: the ceiling the other apps are compared with."""

from __future__ import annotations

from litestar import Litestar

from bench.apps import balance


def create_app() -> Litestar:
    """The ``GET /balance`` app with no authentication."""
    return Litestar(route_handlers=[balance])
