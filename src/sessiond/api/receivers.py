"""Service routes (scope ``receivers:manage``): the receivers revocations are delivered to.

A webhook's secret is made here and shown once, in the answer to its creation; no other
answer carries it. Receivers of the receivers file are listed and read here too, but are
changed only in the file (409).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter

from sessiond.api.auth import service_context
from sessiond.api.openapi import problems
from sessiond.audit import Action
from sessiond.audit import event as audit_event
from sessiond.events import Kind
from sessiond.receivers.models import (
    EVENT_KINDS,
    ID_PATTERN,
    Audience,
    DeadLetter,
    Endpoint,
    Receiver,
    ReceiverId,
    ReceiverKind,
    Source,
    new_receiver_id,
    new_secret,
)
from sessiond.runtime import Runtime

ReceiverPath = Annotated[str, PathParameter(pattern=ID_PATTERN)]
AnyRequest = Request[Any, Any, Any]
MANAGE = {"scope": "receivers:manage"}


class _Create(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    endpoint: Endpoint
    #: Made up (``rcv_...``) when left out.
    id: ReceiverId | None = None
    #: The revocation kinds it wants (a kind named twice counts once).
    events: Annotated[list[Kind], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: list(EVENT_KINDS)
    )

    def receiver(self, now: float) -> Receiver:
        return Receiver(
            id=self.id or new_receiver_id(),
            kind=self.__struct_config__.tag,  # type: ignore[arg-type]
            endpoint=self.endpoint,
            audience=getattr(self, "audience", None),
            secret=new_secret() if isinstance(self, CreateWebhook) else None,
            events=tuple(kind for kind in EVENT_KINDS if kind in self.events),
            created_at=now,
        )


class CreateWebhook(_Create, tag="webhook", kw_only=True, forbid_unknown_fields=True):
    """A webhook: its secret is made here and shown once."""


class CreateBackchannelLogout(
    _Create, tag="backchannel_logout", kw_only=True, forbid_unknown_fields=True
):
    """An OpenID Connect relying party; ``audience`` is its ``client_id``."""

    audience: Audience


class CreateSsf(_Create, tag="ssf", kw_only=True, forbid_unknown_fields=True):
    """A Shared Signals receiver; ``audience`` is the ``aud`` it expects."""

    audience: Audience


#: The body of ``POST /v1/receivers``, one shape per ``kind``.
CreateReceiver = CreateWebhook | CreateBackchannelLogout | CreateSsf


class ReceiverView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A receiver as the API shows it: never its secret."""

    id: str
    kind: ReceiverKind
    endpoint: str
    events: list[Kind]
    source: Source
    audience: str | None = None
    created_at: float | None = None

    @classmethod
    def of(cls, receiver: Receiver) -> ReceiverView:
        return cls(
            id=receiver.id,
            kind=receiver.kind,
            endpoint=receiver.endpoint,
            events=list(receiver.events),
            source=receiver.source,
            audience=receiver.audience,
            created_at=receiver.created_at,
        )


class CreatedReceiver(ReceiverView, kw_only=True, omit_defaults=True):
    """The new receiver; for a webhook, its ``secret`` (``whsec_...``): shown only here."""

    secret: str | None = None


class ReceiverList(msgspec.Struct, kw_only=True):
    receivers: list[ReceiverView]


class DeadLetterList(msgspec.Struct, kw_only=True):
    """The events a receiver never accepted, newest first (the worker's dead letters)."""

    dead_letters: list[DeadLetter]


@post(
    "/v1/receivers",
    opt=MANAGE,
    status_code=201,
    responses={
        201: ResponseSpec(CreatedReceiver, description="Registered.", generate_examples=False),
        **problems(400, 401, 403, 409, 413, 503),
    },
)
async def create_receiver(
    data: JSONBody[CreateReceiver], runtime: NamedDependency[Runtime], request: AnyRequest
) -> CreatedReceiver:
    """Register a receiver; it gets every revocation from now on."""
    receiver = data.receiver(time.time())
    await runtime.receivers.add(receiver)
    await _audit(runtime, "receiver.created", receiver.id, request)
    view = ReceiverView.of(receiver)
    return CreatedReceiver(**msgspec.structs.asdict(view), secret=receiver.secret)


@get("/v1/receivers", opt=MANAGE, responses=problems(400, 401, 403, 503))
async def list_receivers(runtime: NamedDependency[Runtime]) -> ReceiverList:
    """Every receiver: the receivers file's and the registered ones."""
    return ReceiverList(receivers=[ReceiverView.of(r) for r in await runtime.receivers.all()])


@get("/v1/receivers/{receiver_id:str}", opt=MANAGE, responses=problems(400, 401, 403, 404, 503))
async def read_receiver(
    receiver_id: ReceiverPath, runtime: NamedDependency[Runtime]
) -> ReceiverView:
    return ReceiverView.of(await runtime.receivers.get(receiver_id))


@get(
    "/v1/receivers/{receiver_id:str}/dead-letters",
    opt=MANAGE,
    responses=problems(400, 401, 403, 404, 503),
)
async def read_dead_letters(
    receiver_id: ReceiverPath, runtime: NamedDependency[Runtime]
) -> DeadLetterList:
    """The newest 100 events the delivery worker gave up on for this receiver."""
    receiver = await runtime.receivers.get(receiver_id)
    letters = await runtime.receivers.registry.dead_letters(receiver.id)
    return DeadLetterList(dead_letters=letters)


@delete(
    "/v1/receivers/{receiver_id:str}",
    opt=MANAGE,
    responses=problems(400, 401, 403, 404, 409, 503),
)
async def delete_receiver(
    receiver_id: ReceiverPath, runtime: NamedDependency[Runtime], request: AnyRequest
) -> None:
    """Unregister a receiver: nothing more is delivered to it (409 for one of the receivers
    file)."""
    await runtime.receivers.remove(receiver_id)
    await _audit(runtime, "receiver.deleted", receiver_id, request)


async def _audit(runtime: Runtime, action: Action, receiver_id: str, request: AnyRequest) -> None:
    by = service_context(request)
    await runtime.auditor.record(audit_event(action, time.time(), by, receiver=receiver_id))
