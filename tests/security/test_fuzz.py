"""API fuzzing: schemathesis over the authority's own OpenAPI, against the embedded app.

Each operation gets a bounded, reproducible set of generated requests (schemathesis's examples,
coverage and fuzzing phases: positive and negative data, missing headers and bodies, methods
the document does not declare), and every answer goes through every check schemathesis has
(:data:`CHECKS_ALL`): no 5xx; the status, content type, headers and body are the ones the document
declares; invalid data is rejected and valid data accepted; a secured route refuses a request
without its credential; an undeclared method is 405 with ``Allow``. On top, every 4xx is
problem+json. Where a check cannot apply, :data:`NOT_APPLICABLE` says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, Response
from schemathesis.checks import CHECKS, CheckFunction, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import positive_data_acceptance

from sessiond.api.app import create_app
from sessiond.runtime import Runtime
from sessiond.settings import Settings

EXAMPLES = 25
load_all_checks()
#: Every check schemathesis 4 registers (status_code_conformance, content_type_conformance,
#: response_headers_conformance, response_schema_conformance, negative_data_rejection,
#: positive_data_acceptance, missing_required_header, unsupported_method, ignored_auth, ...).
CHECKS_ALL: list[CheckFunction] = CHECKS.get_all()  # type: ignore[assignment]

#: Invalid data is rejected with schemathesis's default statuses or 413: a value over its
#: ``maxLength`` (16 KiB for a token) can make the body larger than ``SESSIOND_MAX_BODY_BYTES``,
#: which is refused before it is read.
REJECTED = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}}
)

#: Checks that cannot hold for an operation, and why (never a defect of the server).
#: A refresh is answered 400 to every generated request: a generated refresh token is well
#: formed but never one sessiond issued (RFC 6749 section 5.2: invalid_grant), and a request
#: without one (the body is optional for cookie mode) has no refresh cookie here.
UNKNOWN_GRANT = "a refresh needs a refresh token sessiond issued"
#: Headers whose generated values are well formed but never valid, so a request with one is
#: refused whatever else it holds: a DPoP proof must be signed by the client's key over the
#: request's method and URL (RFC 9449 section 4.3), answered 400 invalid_dpop_proof.
UNVERIFIABLE = {"DPoP"}
NOT_APPLICABLE: dict[str, dict[CheckFunction, str]] = {
    "POST /v1/tokens/refresh": {positive_data_acceptance: UNKNOWN_GRANT},
    "POST /v1/token": {positive_data_acceptance: UNKNOWN_GRANT},
}


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
        self.schema = schemathesis.openapi.from_asgi(
            "/schema/openapi.json", self.app, config=CONFIG
        )
        assert self.runtime.one_time_credential is not None
        self.credential = self.runtime.one_time_credential

    def token_for(self, case: Case[Any]) -> str | None:
        """The credential the operation declares (``security``) in the document."""
        security = case.operation.definition.raw.get("security", [])
        schemes = {name for requirement in security for name in requirement}
        if "serviceCredential" in schemes:
            return self.credential
        if "accessToken" in schemes:
            return self.access_token()
        return None

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


@schema.auth(refresh_interval=None)
class Credentials:
    """Each case carries the credential its operation declares, as schemathesis knows: it
    draws no Authorization header of its own, and ``ignored_auth`` can take it away."""

    def get(self, case: Case[Any], ctx: Any) -> str | None:
        return TARGET.token_for(case)

    def set(self, case: Case[Any], data: str | None, ctx: Any) -> None:
        if data is not None:
            case.headers["Authorization"] = f"Bearer {data}"


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
    """Every schemathesis check that applies, and every 4xx problem+json."""
    response = case.call_and_validate(checks=CHECKS_ALL, excluded_checks=not_applicable(case))
    assert_problem_details(response)


def not_applicable(case: Case[Any]) -> list[CheckFunction]:
    excluded = list(NOT_APPLICABLE.get(f"{case.method} {case.operation.path}", {}))
    if any(name in case.headers for name in UNVERIFIABLE):
        excluded.append(positive_data_acceptance)
    return excluded


def assert_problem_details(response: Response) -> None:
    if 400 <= response.status_code < 500:
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/problem+json"), (
            response.status_code,
            content_type,
            response.text,
        )


class Workflow(schema.as_state_machine()):  # type: ignore[misc]
    """The stateful phase: sequences of calls along the document's links (a session created
    is read, listed and revoked), where ``ensure_resource_availability`` (what was created is
    there) and ``use_after_free`` (what was deleted is gone) apply, besides every other check."""

    def validate_response(
        self,
        response: Response,
        case: Case[Any],
        additional_checks: list[CheckFunction] | None = None,
        **kwargs: Any,
    ) -> None:
        case.validate_response(
            response,
            checks=CHECKS_ALL,
            additional_checks=additional_checks,
            excluded_checks=not_applicable(case),
            transport_kwargs=kwargs or None,
            recorder=self.recorder,
        )
        assert_problem_details(response)

    def teardown(self) -> None:
        """Each case starts with no receivers: whether a case's ``POST /v1/receivers`` makes
        one (201, which later steps follow) or meets an earlier case's (409) must depend on
        the case alone, or Hypothesis finds the same choices behaving differently."""
        service = {"Authorization": f"Bearer {TARGET.credential}"}
        with get_client(TARGET.asgi) as client:
            listed = client.get("/v1/receivers", headers=service)
            assert listed.status_code == 200, listed.text
            for receiver in listed.json()["receivers"]:
                client.delete(f"/v1/receivers/{receiver['id']}", headers=service)


TestWorkflow = Workflow.TestCase
TestWorkflow.settings = settings(FUZZ, max_examples=EXAMPLES, stateful_step_count=6)
