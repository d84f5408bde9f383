"""An in-memory :class:`~sessiond.receivers.base.ReceiverRegistry`: the embedded mode, tests."""

from __future__ import annotations

import contextlib
from collections import defaultdict, deque

from sessiond.receivers.base import DEAD_LETTERS_KEPT
from sessiond.receivers.models import DeadLetter, Receiver


class MemoryReceiverRegistry:
    """Receivers and dead letters in this process only."""

    def __init__(self) -> None:
        self._receivers: dict[str, Receiver] = {}
        self._dead: defaultdict[str, deque[DeadLetter]] = defaultdict(
            lambda: deque(maxlen=DEAD_LETTERS_KEPT)
        )

    async def add(self, receiver: Receiver) -> bool:
        if receiver.id in self._receivers:
            return False
        self._receivers[receiver.id] = receiver
        return True

    async def get(self, receiver_id: str) -> Receiver | None:
        return self._receivers.get(receiver_id)

    async def all(self) -> list[Receiver]:
        return [self._receivers[i] for i in sorted(self._receivers)]

    async def remove(self, receiver_id: str) -> bool:
        self._dead.pop(receiver_id, None)
        return self._receivers.pop(receiver_id, None) is not None

    async def dead_letter(self, letter: DeadLetter) -> None:
        self._dead[letter.receiver].appendleft(letter)

    async def dead_letters(self, receiver_id: str, limit: int = 100) -> list[DeadLetter]:
        return list(self._dead.get(receiver_id, ()))[:limit]

    async def forget(self, letter: DeadLetter) -> None:
        with contextlib.suppress(ValueError):
            self._dead[letter.receiver].remove(letter)

    async def aclose(self) -> None:
        return None
