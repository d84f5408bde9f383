"""Denylists built from revocation events, to compare with one that got them another way."""

from __future__ import annotations

from collections.abc import Iterable

from sessiond.denylist.denylist import Denylist
from sessiond.events import Revocation


def replayed(*batches: Iterable[Revocation]) -> Denylist:
    """A new denylist with every event of ``batches`` applied, in order."""
    denylist = Denylist()
    for batch in batches:
        for event in batch:
            denylist.apply(event)
    return denylist
