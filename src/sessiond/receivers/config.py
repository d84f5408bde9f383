"""The receivers file (``SESSIOND_RECEIVERS_FILE``): receivers kept in Git, read at start.

A JSON document; a webhook's secret is read from its own file (a mounted Secret), never
written in this one::

    {"receivers": [
      {"id": "crm", "kind": "webhook", "endpoint": "https://crm.example/hooks/sessiond",
       "secret_file": "/run/secrets/crm-webhook", "events": ["session", "subject"]},
      {"id": "portal", "kind": "backchannel_logout",
       "endpoint": "https://portal.example/backchannel-logout", "audience": "portal"},
      {"id": "gateway", "kind": "ssf", "endpoint": "https://gw.example/ssf/push",
       "audience": "https://gw.example"}
    ]}

Its receivers are read-only through the API: changing them means changing the file (and
restarting). :class:`Catalog` joins them with the registry's.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from sessiond.errors import BadRequest, ConfigError, Conflict, ReceiverNotFound
from sessiond.events import Kind
from sessiond.receivers.base import ReceiverRegistry
from sessiond.receivers.models import (
    EVENT_KINDS,
    Audience,
    Endpoint,
    Receiver,
    ReceiverId,
    ReceiverKind,
    checked,
)


class _Entry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: ReceiverId
    kind: ReceiverKind
    endpoint: Endpoint
    audience: Audience | None = None
    secret_file: str | None = None
    events: tuple[Kind, ...] = EVENT_KINDS


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    receivers: list[_Entry]


def load_receivers(path: str | None) -> tuple[Receiver, ...]:
    """The receivers of the file at ``path`` (none without one); :class:`ConfigError` naming
    the entry if anything in it is wrong."""
    if path is None:
        return ()
    try:
        document = msgspec.json.decode(Path(path).read_bytes(), type=_File)
    except (OSError, msgspec.MsgspecError) as exc:
        raise ConfigError(f"SESSIOND_RECEIVERS_FILE {path}: {exc}") from None
    receivers: dict[str, Receiver] = {}
    for entry in document.receivers:
        if entry.id in receivers:
            raise ConfigError(f"SESSIOND_RECEIVERS_FILE: receiver {entry.id} appears twice")
        receivers[entry.id] = _receiver(entry)
    return tuple(receivers.values())


def _receiver(entry: _Entry) -> Receiver:
    try:
        secret = Path(entry.secret_file).read_text().strip() if entry.secret_file else None
        return checked(
            Receiver(
                id=entry.id,
                kind=entry.kind,
                endpoint=entry.endpoint,
                audience=entry.audience,
                secret=secret,
                events=entry.events,
                source="file",
            )
        )
    except (OSError, BadRequest) as exc:
        raise ConfigError(f"SESSIOND_RECEIVERS_FILE: receiver {entry.id}: {exc}") from None


class Catalog:
    """Every receiver: the file's (read-only) and the registry's (the API's)."""

    def __init__(self, registry: ReceiverRegistry, fixed: tuple[Receiver, ...] = ()) -> None:
        self.registry = registry
        self._fixed = {receiver.id: receiver for receiver in fixed}

    async def all(self) -> list[Receiver]:
        registered = [r for r in await self.registry.all() if r.id not in self._fixed]
        return sorted([*self._fixed.values(), *registered], key=lambda r: r.id)

    async def get(self, receiver_id: str) -> Receiver:
        found = self._fixed.get(receiver_id) or await self.registry.get(receiver_id)
        if found is None:
            raise ReceiverNotFound(f"no receiver {receiver_id}")
        return found

    async def add(self, receiver: Receiver) -> None:
        """Register ``receiver`` (checked); :class:`Conflict` if its id is taken."""
        checked(receiver)
        if receiver.id in self._fixed or not await self.registry.add(receiver):
            raise Conflict(f"receiver {receiver.id} exists")

    async def remove(self, receiver_id: str) -> None:
        if receiver_id in self._fixed:
            raise Conflict(f"receiver {receiver_id} is in the receivers file: change it there")
        if not await self.registry.remove(receiver_id):
            raise ReceiverNotFound(f"no receiver {receiver_id}")
