"""The outbox relay's entry point, the ``workers/`` the design names: ``python -m workers.relay``
from the repository, like the installed ``sessiond-relay``.

The relay itself is :mod:`sessiond.workers.relay`, inside the package, so that the wheel installs
no top-level ``workers`` package.
"""

from sessiond.workers.relay import main

if __name__ == "__main__":
    main()
