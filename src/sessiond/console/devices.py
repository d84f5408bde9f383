"""Your devices: a signed-in user's sessions, signed out from here one by one or all but this.

The browser's session is the one its refresh-token cookie names (the API's cookie mode), read
without rotating it. The page follows the revocations of its user live: ``/console/events``
is a Server-Sent Events stream fed by :class:`~sessiond.console.feed.RevocationFeed`, and the
page's script reloads the list when one arrives. Without JavaScript the forms still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Template

from sessiond.audit import Actor, AuditContext
from sessiond.console.feed import concerns
from sessiond.console.pages import AnyRequest, Form, Posted, audit_context, page, see_other, when
from sessiond.console.security import check_csrf
from sessiond.console.state import Console
from sessiond.console.useragent import readable
from sessiond.errors import AuthenticationFailed, InvalidGrant, SessionNotFound
from sessiond.events import kind_of
from sessiond.sessions.models import Session
from sessiond.tokens.refresh import RefreshToken

DEVICES = "/console/devices"
#: Seconds between two keep-alive comments of an idle event stream.
KEEP_ALIVE = 15.0
#: Seconds an event stream lasts; the browser then reconnects after RECONNECT_MS. A stopping
#: server waits for its open streams (granian drains connections before the app hears of the
#: shutdown), so this bounds how long an open page can delay a replica's stop.
STREAM_LIFETIME = 20.0
RECONNECT_MS = 500
#: What a redirect may ask the page to say; the query names a key, never the text.
NOTICES = {
    "signed-out": "That device is signed out.",
    "signed-out-others": "Every other device is signed out.",
}


class SessionForm(Form, kw_only=True):
    session_id: str


@dataclass(frozen=True)
class DeviceView:
    """One session as the page lists it."""

    session_id: str
    label: str | None
    browser: str
    ip: str | None
    created: str
    last_active: str
    current: bool

    @classmethod
    def of(cls, session: Session, current: bool) -> DeviceView:
        device = session.device
        return cls(
            session_id=session.sid,
            label=device.label,
            browser=readable(device.user_agent),
            ip=device.ip,
            created=when(session.created_at),
            last_active=when(session.last_seen_at),
            current=current,
        )


async def signed_in(request: AnyRequest, console: Console) -> Session | None:
    """The live session of this browser's refresh-token cookie, if any."""
    token = request.cookies.get(console.cookies.refresh)
    if not token:
        return None
    try:
        presented = RefreshToken.parse(token)
    except InvalidGrant:
        return None
    return await console.runtime.sessions.session_of_refresh(presented)


@get("/devices")
async def devices(
    request: AnyRequest, console: NamedDependency[Console], notice: FromQuery[str | None] = None
) -> Template:
    """The list of the signed-in user's devices."""
    me = await signed_in(request, console)
    if me is None:
        cookieless = console.runtime.settings.cookie_mode == "off"
        return page(request, "signed_out.html.j2", status=401, cookieless=cookieless)
    own = await console.runtime.sessions.list_own(me.sub, me.sid)
    return page(
        request,
        "devices.html.j2",
        subject=me.sub,
        devices=[DeviceView.of(o.session, o.current) for o in own],
        notice=NOTICES.get(notice or ""),
    )


async def _acting(
    request: AnyRequest, data: Form, console: Console
) -> tuple[Session, AuditContext] | None:
    """The session that posts the form ``data`` (CSRF checked) and its audit context, or
    ``None`` if the browser is signed out."""
    check_csrf(request, data.csrf)
    me = await signed_in(request, console)
    return None if me is None else (me, audit_context(request, Actor.client(me.sid)))


@post("/devices/sign-out")
async def sign_out_device(
    request: AnyRequest, data: Posted[SessionForm], console: NamedDependency[Console]
) -> Redirect:
    """Sign one of the user's devices out; this very one clears the browser's cookies."""
    acting = await _acting(request, data, console)
    if acting is None:
        return see_other(DEVICES)
    me, by = acting
    # Signed out already, or never one of this user's: the list shows what is left.
    with contextlib.suppress(SessionNotFound):
        await console.runtime.sessions.revoke_own(me.sub, data.session_id, by)
    if data.session_id != me.sid:
        return see_other(f"{DEVICES}?notice=signed-out")
    response = see_other(DEVICES)
    console.cookies.clear(response, console.runtime.settings)
    return response


@post("/devices/sign-out-others")
async def sign_out_others(
    request: AnyRequest, data: Posted[Form], console: NamedDependency[Console]
) -> Redirect:
    """Sign out every device of the user but this one."""
    acting = await _acting(request, data, console)
    if acting is None:
        return see_other(DEVICES)
    me, by = acting
    await console.runtime.sessions.revoke_others(me.sub, me.sid, by)
    return see_other(f"{DEVICES}?notice=signed-out-others")


@get("/events")
async def events(request: AnyRequest, console: NamedDependency[Console]) -> ServerSentEvent:
    """Server-Sent Events: ``ready`` once listening, then ``revoked`` (data: the event's kind)
    whenever a session of the user may have ended; the stream ends after
    :data:`STREAM_LIFETIME` seconds and the browser reconnects."""
    me = await signed_in(request, console)
    if me is None:
        raise AuthenticationFailed("sign in to follow your devices")
    return ServerSentEvent(_follow(console, me.sub))


async def _follow(console: Console, sub: str) -> AsyncGenerator[ServerSentEventMessage, None]:
    ends = time.monotonic() + STREAM_LIFETIME
    seen: deque[str] = deque(maxlen=8)  # applied here first, then again from the stream
    with console.feed.subscribe(concerns(sub)) as queue:
        yield ServerSentEventMessage(event="ready", data="listening", retry=RECONNECT_MS)
        while (left := ends - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(queue.get(), min(left, KEEP_ALIVE))
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            if event is None:
                return
            if event.id not in seen:
                seen.append(event.id)
                yield ServerSentEventMessage(event="revoked", data=kind_of(event))
