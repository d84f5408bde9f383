"""The service API as the Redis and clock scenarios call it (``redis_failover``, ``redis_aof``,
``refresh_storm``, ``clock_skew``, ``rolling_restart``, ``soak``): one async client, one call
per route, answers returned as they come (a scenario decides what counts)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import redis

from sessiond.settings import env_name

__all__ = ("NO_RATE_LIMITS", "Answer", "Api", "appendfsync", "wait_until")

#: Every rate limit off: the storms are the load, not an abuse to throttle.
NO_RATE_LIMITS = {
    env_name(f"rate_{limit}"): "0"
    for limit in (
        "sessions_per_subject",
        "sessions_per_client",
        "refresh_per_session",
        "revocations_per_client",
    )
}

TIMEOUT = 10.0


@dataclass(frozen=True)
class Answer:
    """One response (``status`` 0: no response, ``error`` says why) and its JSON body."""

    status: int
    body: dict[str, Any]
    error: str = ""

    @property
    def refused(self) -> bool:
        """The connection was refused: nothing listens, nothing was processed."""
        return self.status == 0 and self.error == "ConnectError"


class Api:
    """Calls on any replica's base URL with the service ``credential``."""

    def __init__(self, credential: str, connections: int = 64) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.http = httpx.AsyncClient(timeout=TIMEOUT, limits=limits)
        self._service = {"Authorization": f"Bearer {credential}"}

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self, method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """One request; a transport error is an :class:`Answer` with status 0."""
        try:
            response = await self.http.request(method, url, json=json, headers=headers)
        except httpx.HTTPError as exc:
            return Answer(0, {}, type(exc).__name__)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        return Answer(response.status_code, body if isinstance(body, dict) else {})

    async def create(self, url: str, subject: str) -> Answer:
        """``POST /v1/sessions``: 201 with the tokens and ``session_id``."""
        body = {"subject": subject, "device": {"label": "chaos"}}
        return await self.call("POST", f"{url}/v1/sessions", json=body, headers=self._service)

    async def refresh(self, url: str, refresh_token: str) -> Answer:
        """``POST /v1/tokens/refresh``: 200 with the successor tokens."""
        body = {"refresh_token": refresh_token}
        return await self.call("POST", f"{url}/v1/tokens/refresh", json=body)

    async def whoami(self, url: str, access_token: str) -> Answer:
        """``GET /v1/whoami``: 200 if the replica accepts the access token."""
        auth = {"Authorization": f"Bearer {access_token}"}
        return await self.call("GET", f"{url}/v1/whoami", headers=auth)

    async def session(self, url: str, sid: str) -> Answer:
        """``GET /v1/sessions/{sid}``: 200 while its record exists, 404 once it does not."""
        return await self.call("GET", f"{url}/v1/sessions/{sid}", headers=self._service)

    async def revoke_session(self, url: str, sid: str) -> Answer:
        """``DELETE /v1/sessions/{sid}``: 204 once propagated."""
        return await self.call("DELETE", f"{url}/v1/sessions/{sid}", headers=self._service)

    async def revoke_subject(self, url: str, subject: str) -> Answer:
        """``DELETE /v1/subjects/{sub}/sessions``: the forced sign-out, 204 once propagated."""
        url = f"{url}/v1/subjects/{subject}/sessions"
        return await self.call("DELETE", url, headers=self._service)

    async def gauge(self, url: str, name: str) -> float:
        """The sum over every label of metric ``name`` in ``GET /metrics``."""
        response = await self.http.get(f"{url}/metrics")
        pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
        return sum(float(value) for value in pattern.findall(response.text))


def appendfsync(ports: Sequence[int], policy: str) -> None:
    """``CONFIG SET appendfsync policy`` on these Redis data nodes (as ``default``, which the
    local cluster leaves open on loopback for tools)."""
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        with contextlib.closing(client):
            client.config_set("appendfsync", policy)


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    """Poll ``check`` until it is true (then True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True
