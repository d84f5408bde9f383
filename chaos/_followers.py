"""``python -m chaos._followers N``: N verifiers in one process, each with its own NATS
connection and receipts, following the stream until stdin closes; used by fanout.

Settings come from the ``SESSIOND_*`` environment (:class:`VerifierSettings`); it prints
``ready`` once every verifier is ready.
"""

from __future__ import annotations

import asyncio
import os
import sys

from sessiond.errors import SessiondError
from sessiond.verifier import Verifier
from sessiond.verifier.settings import VerifierSettings

READY = "ready"


async def _follow(count: int) -> None:
    settings = VerifierSettings.load(os.environ)
    verifiers = [Verifier.from_settings(settings) for _ in range(count)]
    await asyncio.gather(*(v.start() for v in verifiers))
    try:
        while True:
            try:
                for verifier in verifiers:
                    verifier.check_ready()
                break
            except SessiondError:
                await asyncio.sleep(0.1)
        print(READY, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the scenario closes it
    finally:
        await asyncio.gather(*(v.aclose() for v in verifiers))


if __name__ == "__main__":
    asyncio.run(_follow(int(sys.argv[1])))
