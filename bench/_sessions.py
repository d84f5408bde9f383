"""Sessions signed in at a running authority, for the benchmarks' setup (never measured)."""

from __future__ import annotations

from typing import Any

import httpx

from bench._processes import BenchError

__all__ = ("create_session",)

REQUEST_TIMEOUT = 10.0


def create_session(
    url: str, credential: str, subject: str, http: httpx.Client | None = None
) -> dict[str, Any]:
    """``POST /v1/sessions`` with the service credential (on ``http``'s connection if given);
    the token response. :class:`BenchError` unless the authority answers 201."""
    request = http.post if http is not None else httpx.post
    response = request(
        f"{url}/v1/sessions",
        json={"subject": subject, "device": {"label": "bench"}},
        headers={"Authorization": f"Bearer {credential}"},
        timeout=REQUEST_TIMEOUT,
    )
    if response.status_code != 201:
        raise BenchError(f"session create: {response.status_code} {response.text}")
    tokens: dict[str, Any] = response.json()
    return tokens
