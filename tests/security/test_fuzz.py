"""API fuzzing: schemathesis over the authority's own OpenAPI, against the embedded app.

Each operation gets a bounded, reproducible set of generated requests (positive and negative):
no answer may be a 5xx, every 4xx must be problem+json, and every answer must match the
response schema the OpenAPI document declares for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import response_schema_conformance

from sessiond.api.app import create_app
from sessiond.runtime import Runtime
from sessiond.settings import Settings

#: Paths whose routes want the service credential; the others get a client's access token.
SERVICE_PATHS = ("/v1/sessions", "/v1/subjects", "/v1/revocations", "/v1/introspect")
EXAMPLES = 25


class Target:
    """One embedded authority, shared by every generated case of the module."""

    def __init__(self) -> None:
        # The rate limits are off: the fuzzer signs one subject in again and again, and the
        # limits have their own tests (test_rate_limits.py).
        fields = Settings.__struct_fields__
        no_limits = {f: 0 for f in fields if f.startswith("rate_") and f != "rate_window"}
        self.runtime = Runtime(Settings.load({}, no_limits))
        self.app = create_app(self.runtime)
        self.asgi: Any = self.app  # schemathesis types ASGI apps loosely
        self.schema = schemathesis.openapi.from_asgi("/schema/openapi.json", self.app)
        assert self.runtime.one_time_credential is not None
        self.credential = self.runtime.one_time_credential

    def headers_for(self, case: Case[Any]) -> dict[str, str]:
        if case.operation.path.startswith(SERVICE_PATHS):
            return {"Authorization": f"Bearer {self.credential}"}
        return {"Authorization": f"Bearer {self.access_token()}"}

    def access_token(self) -> str:
        """A fresh client token (a fuzzed logout may have revoked the previous one)."""
        with get_client(self.asgi) as client:
            answer = client.post(
                "/v1/sessions",
                json={"subject": "fuzz"},
                headers={"Authorization": f"Bearer {self.credential}"},
            )
        assert answer.status_code == 201, answer.text
        token: str = answer.json()["access_token"]
        return token


TARGET = Target()
schema = TARGET.schema
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def target() -> Target:
    return TARGET


@pytest.fixture(scope="module", autouse=True)
def _stop_target() -> Iterator[None]:
    """Stop the app's lifespan (started by the schema loader) once the module is done."""
    yield
    shutdown_lifespans()


@schema.parametrize()
@FUZZ
def test_api_answers_every_generated_request(case: Case[Any], target: Target) -> None:
    check(case, target)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sessions",
        "/v1/sessions/" + "0" * 32,
        "/v1/subjects/x/sessions",
        "/v1/revocations",
        "/v1/introspect",
    ],
)
def test_options_on_a_service_route_with_a_credential(path: str, target: Target) -> None:
    """Found by the fuzzer (schemathesis sends undeclared methods as negative cases): the
    guard of the service routes once read ``handler.opt["scope"]`` on Litestar's automatic
    OPTIONS handler, which has none, and answered 500."""
    with get_client(target.asgi) as client:
        response = client.options(path, headers={"Authorization": f"Bearer {target.credential}"})
    assert response.status_code == 204, response.text
    assert "GET" in response.headers["allow"] or "POST" in response.headers["allow"]


def check(case: Case[Any], target: Target) -> None:
    """No 5xx, every 4xx problem+json, the answer matches its documented schema."""
    response = case.call(headers=target.headers_for(case))
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    if 400 <= response.status_code < 500:
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/problem+json"), (
            response.status_code,
            content_type,
            response.text,
        )
