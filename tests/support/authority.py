"""An in-process authority driven over HTTP, and helpers for asserting on its answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from sessiond.credentials.store import ALL_SCOPES, CredentialSet
from sessiond.runtime import Runtime
from sessiond.settings import Settings
from sessiond.tokens.keys import Keyset
from support.secrets import register


@dataclass
class Authority:
    """A running authority: its HTTP client, its runtime and an all-scopes credential."""

    http: AsyncTestClient[Any]
    runtime: Runtime
    credential: str

    def __post_init__(self) -> None:
        register("service credential", self.credential)

    @property
    def service(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}"}

    async def login(self, subject: str = "alice", **body: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/v1/sessions", json={"subject": subject, **body}, headers=self.service
        )
        assert response.status_code == 201, response.text
        tokens: dict[str, Any] = response.json()
        register("access token", tokens["access_token"])
        register("refresh token", tokens["refresh_token"])
        return tokens

    async def whoami(self, access_token: str) -> httpx.Response:
        return await self.http.get("/v1/whoami", headers=bearer(access_token))

    async def refresh(self, refresh_token: str) -> httpx.Response:
        response = await self.http.post("/v1/tokens/refresh", json={"refresh_token": refresh_token})
        if response.status_code == 200:
            register("access token", response.json()["access_token"])
            register("refresh token", response.json()["refresh_token"])
        return response


MakeAuthority = Callable[..., Awaitable[Authority]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, slug: str | None = None) -> None:
    """``response`` is RFC 9457 problem details with this status (and type)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:sessiond:problem:")
    if slug is not None:
        assert body["type"] == f"urn:sessiond:problem:{slug}", body


def distributed_settings(redis_url: str, directory: Path, **overrides: Any) -> tuple[Settings, str]:
    """Settings for a Redis-backed authority with key and credential files in ``directory``."""
    keyset_file, credentials_file = directory / "keyset.json", directory / "credentials.json"
    if not keyset_file.exists():
        Keyset.generate(overrides.get("key_algorithm", "ES256")).save(keyset_file)
    secret, credentials = CredentialSet().issue("tests", ALL_SCOPES, now=0.0)
    credentials.save(credentials_file)
    settings = Settings.load(
        {},
        {
            "redis_url": redis_url,
            "keyset_file": str(keyset_file),
            "credentials_file": str(credentials_file),
            **overrides,
        },
    )
    return settings, secret
