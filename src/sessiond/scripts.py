"""The console scripts ``sessiond``, ``sessiond-relay`` and ``sessiond-delivery``.

All run the server, whose dependencies are the ``server`` extra: ``pip install sessiond`` is the
verifier SDK of a resource backend (:mod:`sessiond.verifier`), ``pip install 'sessiond[server]'``
the service. Without the extra, a script says so in one line instead of failing on an import
deep inside the server, which is why the server is imported only once that is checked.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Final

#: The import names of the ``server`` extra's packages.
SERVER_PACKAGES: Final = ("click", "granian", "litestar", "prometheus_client", "redis")
#: What ``pip install`` adds them with.
INSTALL_SERVER: Final = "pip install 'sessiond[server]'"


def sessiond() -> None:
    """``sessiond``: the command line of :mod:`sessiond.cli`."""
    _require_server("sessiond")
    from sessiond.cli import main

    main()


def sessiond_relay() -> None:
    """``sessiond-relay``: the outbox relay of :mod:`sessiond.workers.relay`."""
    _require_server("sessiond-relay")
    from sessiond.workers.relay import main

    main()


def sessiond_delivery() -> None:
    """``sessiond-delivery``: the receivers' delivery worker of :mod:`sessiond.workers.delivery`."""
    _require_server("sessiond-delivery")
    from sessiond.workers.delivery import main

    main()


def _require_server(script: str) -> None:
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(
            f"{script}: the sessiond server needs the 'server' extra "
            f"(missing: {', '.join(missing)}): {INSTALL_SERVER}"
        )
