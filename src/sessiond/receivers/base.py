"""The :class:`ReceiverRegistry` interface: where the API's receivers and their dead letters
live. ``memory.py`` and ``redis.py`` implement it; the file's receivers are ``config.py``'s."""

from __future__ import annotations

from typing import Final, Protocol

from sessiond.receivers.models import DeadLetter, Receiver

#: Dead letters kept per receiver, newest first; older ones are dropped.
DEAD_LETTERS_KEPT: Final = 1000


class ReceiverRegistry(Protocol):
    """Receivers registered through the API, and the events each one never accepted.

    Every method raises :class:`~sessiond.errors.StoreUnavailable` when its store cannot be
    reached.
    """

    async def add(self, receiver: Receiver) -> bool:
        """Register ``receiver``; ``False`` (and nothing changed) if its id is taken."""
        ...

    async def get(self, receiver_id: str) -> Receiver | None: ...

    async def all(self) -> list[Receiver]:
        """Every registered receiver, by id."""
        ...

    async def remove(self, receiver_id: str) -> bool:
        """Unregister; ``False`` if there was no such receiver. Its dead letters go too."""
        ...

    async def dead_letter(self, letter: DeadLetter) -> None:
        """Keep ``letter`` (the newest :data:`DEAD_LETTERS_KEPT` per receiver are kept)."""
        ...

    async def dead_letters(self, receiver_id: str, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters of a receiver, newest first."""
        ...

    async def forget(self, letter: DeadLetter) -> None:
        """Drop ``letter`` (its event was delivered after all); nothing if it is not kept."""
        ...

    async def aclose(self) -> None: ...
