"""The administrator console: find a subject, see its sessions and audit trail, force a
sign-out of one session or of all, and watch the cluster's health.

An administrator signs in with a service credential holding ``console:admin``
(:mod:`sessiond.console.admins`); every action is audited with that credential's id and name.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from sessiond.audit import Actor, AuditContext
from sessiond.console import admins
from sessiond.console.admins import Admin
from sessiond.console.health import health
from sessiond.console.pages import AnyRequest, Form, Posted, audit_context, page, see_other, when
from sessiond.console.security import check_csrf, host_cookie
from sessiond.console.state import Console
from sessiond.console.useragent import readable
from sessiond.errors import InsufficientScope, InvalidCredential, StoreUnavailable

log = logging.getLogger("sessiond.console")

ADMIN = "/console/admin"
SIGN_IN = "/console/admin/sign-in"
ADMIN_COOKIE = "__Host-sessiond-console-admin"
NOTICES = {
    "session": "The session is signed out.",
    "subject": "Every session of the subject is signed out, and every access token it holds.",
}


class SignInForm(Form, kw_only=True):
    credential: str = ""


class SubjectForm(Form, kw_only=True):
    subject: str


class SessionForm(SubjectForm, kw_only=True):
    session_id: str


async def administrator(request: AnyRequest, console: Console) -> Admin | None:
    """The administrator signed in on this browser, if any."""
    return await console.admins.get(request.cookies.get(ADMIN_COOKIE), console.runtime.credentials)


@get("/admin/sign-in")
async def sign_in_page(request: AnyRequest) -> Template:
    return page(request, "admin_sign_in.html.j2")


@post("/admin/sign-in")
async def sign_in(
    request: AnyRequest, data: Posted[SignInForm], console: NamedDependency[Console]
) -> Template | Redirect:
    """Exchange a ``console:admin`` service credential for a console session cookie."""
    check_csrf(request, data.csrf)
    try:
        credential = console.runtime.credentials.authenticate(data.credential.strip())
        token = await console.admins.open(credential)
    except (InvalidCredential, InsufficientScope):
        error = "This is not a service credential with the console:admin scope."
        return page(request, "admin_sign_in.html.j2", status=401, error=error)
    log.info(
        "administrator %r (credential %s) signed in to the console", credential.name, credential.id
    )
    return see_other(ADMIN, [host_cookie(ADMIN_COOKIE, token, admins.TTL)])


@post("/admin/sign-out")
async def sign_out(
    request: AnyRequest, data: Posted[Form], console: NamedDependency[Console]
) -> Redirect:
    """End this browser's administrator session."""
    check_csrf(request, data.csrf)
    await console.admins.close(request.cookies.get(ADMIN_COOKIE))
    return see_other(SIGN_IN, [host_cookie(ADMIN_COOKIE, "", 0)])


@get("/admin")
async def admin_page(
    request: AnyRequest,
    console: NamedDependency[Console],
    subject: FromQuery[str | None] = None,
    notice: FromQuery[str | None] = None,
) -> Template | Redirect:
    """The health panel, the subject search, and the subject's sessions and audit trail."""
    admin = await administrator(request, console)
    if admin is None:
        return see_other(SIGN_IN)
    runtime = console.runtime
    context: dict[str, Any] = {
        "admin": admin,
        "health": await health(runtime.bus, runtime.store, runtime.settings.staleness_budget),
        "subject": subject,
        "notice": NOTICES.get(notice or ""),
        "readable": readable,
        "when": when,
    }
    if subject:
        try:
            context["sessions"] = await runtime.sessions.list_subject(subject)
        except StoreUnavailable:
            context["store_down"] = True
        context["trail"] = console.trail.of(subject)
    return page(request, "admin.html.j2", **context)


@post("/admin/sign-out-session")
async def force_sign_out_session(
    request: AnyRequest, data: Posted[SessionForm], console: NamedDependency[Console]
) -> Redirect:
    """Force one session out (``reason_code`` ``admin``)."""
    acting = await _acting(request, data, console)
    if acting is None:
        return see_other(SIGN_IN)
    reason, by = acting
    await console.runtime.sessions.revoke_session(data.session_id, reason, by, code="admin")
    return see_other(_subject_page(data.subject, "session"))


@post("/admin/sign-out-subject")
async def force_sign_out_subject(
    request: AnyRequest, data: Posted[SubjectForm], console: NamedDependency[Console]
) -> Redirect:
    """Force every session of a subject out, and every access token it holds (``forced``)."""
    acting = await _acting(request, data, console)
    if acting is None:
        return see_other(SIGN_IN)
    reason, by = acting
    await console.runtime.sessions.revoke_subject(data.subject, reason, by, code="forced")
    return see_other(_subject_page(data.subject, "subject"))


async def _acting(
    request: AnyRequest, data: Form, console: Console
) -> tuple[str, AuditContext] | None:
    """For the administrator who posts the form ``data`` (CSRF checked): the reason of the
    revocation and its audit context; ``None`` if nobody is signed in."""
    check_csrf(request, data.csrf)
    admin = await administrator(request, console)
    if admin is None:
        return None
    reason = f"signed out by administrator {admin.name} in the console"[:200]
    return reason, audit_context(request, Actor.service(admin.credential_id, admin.name))


def _subject_page(subject: str, notice: str) -> str:
    return f"{ADMIN}?{urlencode({'subject': subject, 'notice': notice})}"
