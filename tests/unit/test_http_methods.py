"""RFC 9110 methods on every route of the app (walked from its router, not listed by hand):
HEAD answers as GET without the body (section 9.3.2), and every 405 says what is allowed in
``Allow`` (section 15.5.6), as problem details."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pytest
from litestar.routes import HTTPRoute

from sessiond.api.openapi import ACCESS_TOKEN, SERVICE_CREDENTIAL
from support.authority import Authority, assert_problem, bearer

#: Tried in this order for a method the route does not serve.
OTHER_METHODS = ("PATCH", "PUT", "DELETE", "POST", "GET", "TRACE")


@pytest.fixture
def backend() -> None:
    """In memory: the methods are the router's, whatever the store."""


def routes(authority: Authority) -> list[HTTPRoute]:
    app: Any = authority.http.app
    return [route for route in app.routes if isinstance(route, HTTPRoute)]


class Requests:
    """Concrete requests for any route: a live session to name, and the credentials."""

    def __init__(self, authority: Authority, tokens: dict[str, Any]) -> None:
        self.authority = authority
        self.tokens = tokens
        self.samples: dict[str, str] = defaultdict(
            lambda: "x", sid=tokens["session_id"], sub="alice"
        )

    def path(self, route: HTTPRoute) -> str:
        return route.path_format.format_map(self.samples)

    def auth(self, route: HTTPRoute, method: str) -> dict[str, str]:
        """The credential the route's ``method`` declares in the OpenAPI document."""
        handler, _ = route.route_handler_map[method]  # type: ignore[index]
        security = handler.resolve_security()
        if security == SERVICE_CREDENTIAL:
            return self.authority.service
        if security == ACCESS_TOKEN:
            return bearer(self.tokens["access_token"])
        return {}


@pytest.fixture
async def requests(authority: Authority) -> Requests:
    return Requests(authority, await authority.login("alice"))


async def test_head_answers_every_get_route_as_get_without_a_body(
    authority: Authority, requests: Requests
) -> None:
    checked = []
    for route in routes(authority):
        if "GET" not in route.methods:
            continue
        path, auth = requests.path(route), requests.auth(route, "GET")
        get = await authority.http.get(path, headers=auth)
        head = await authority.http.head(path, headers=auth)
        assert head.status_code == get.status_code, (path, head.status_code, get.status_code)
        assert head.content == b"", path
        assert head.headers.keys() == get.headers.keys(), path
        assert _fixed(head.headers) == _fixed(get.headers), path
        checked.append(path)
    assert "/healthz" in checked
    assert "/.well-known/jwks.json" in checked


def _fixed(headers: Mapping[str, str]) -> dict[str, str]:
    """The header fields whose values are the same for every answer: not a /metrics body's
    length (it grows between two requests), nor a cookie holding a fresh CSRF token."""
    return {k: v for k, v in headers.items() if k not in {"content-length", "set-cookie"}}


async def test_every_405_carries_allow_as_problem_details(
    authority: Authority, requests: Requests
) -> None:
    for route in routes(authority):
        allowed = set(route.methods) | ({"HEAD"} if "GET" in route.methods else set())
        method = next(m for m in OTHER_METHODS if m not in allowed)
        served = min(route.methods - {"OPTIONS"})
        path, auth = requests.path(route), requests.auth(route, served)
        answer = await authority.http.request(method, path, headers=auth)
        assert_problem(answer, 405, "method-not-allowed")
        listed = {m.strip() for m in answer.headers["allow"].split(",")}
        assert listed == allowed, (method, path, listed)


async def test_head_on_a_route_without_get_is_405_without_head_in_allow(
    authority: Authority,
) -> None:
    answer = await authority.http.head("/v1/sessions", headers=authority.service)
    assert answer.status_code == 405
    assert answer.content == b""
    assert {m.strip() for m in answer.headers["allow"].split(",")} == {"POST", "OPTIONS"}


async def test_options_lists_every_method_of_the_path(
    authority: Authority, requests: Requests
) -> None:
    """Litestar 2's automatic OPTIONS answer lists only the methods registered before it
    (litestar-org/litestar#4169): GET /v1/sessions/{sid} without DELETE."""
    for route in routes(authority):
        allowed = set(route.methods) | ({"HEAD"} if "GET" in route.methods else set())
        answer = await authority.http.options(requests.path(route), headers=authority.service)
        assert answer.status_code == 204, (route.path, answer.text)
        listed = {m.strip() for m in answer.headers["allow"].split(",")}
        assert listed == allowed, (route.path, listed)
