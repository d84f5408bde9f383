"""The OpenAPI documents: the authority's says what its routes want and answer (the fuzz test,
tests/security/test_fuzz.py, holds each route to it), and the verifier's Litestar plugin puts
its bearer scheme in a resource server's, as Litestar's own ``JWTAuth`` does."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from sessiond.api.app import create_app
from sessiond.api.auth import service_credential
from sessiond.runtime import Runtime
from sessiond.settings import Settings
from sessiond.verifier.litestar import SessiondPlugin
from sessiond.verifier.settings import VerifierSettings

SERVICE: list[dict[str, list[str]]] = [{"serviceCredential": []}]
#: A resource server's settings; no test here starts the app, so nothing is fetched.
RESOURCE_SERVER = VerifierSettings(
    jwks_url="https://authority.example/.well-known/jwks.json", nats_url="nats://127.0.0.1:4222"
)


def service_document() -> tuple[Litestar, dict[str, Any]]:
    app = create_app(Runtime(Settings.load({})))
    return app, app.openapi_schema.to_schema()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "responses" in operation
    ]


def test_every_error_answer_is_documented_as_problem_details() -> None:
    _, document = service_document()
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (
                    method,
                    path,
                    status,
                )


def test_the_service_credential_is_documented_where_the_guard_wants_it() -> None:
    app, document = service_document()
    guarded = {
        (method, path)
        for route in app.routes
        for method, (handler, _) in getattr(route, "route_handler_map", {}).items()
        if service_credential in handler.resolve_guards()
        for path in [route.path_format]
    }
    documented = {(m, p) for m, p, op in operations(document) if op.get("security") == SERVICE}
    assert guarded - {(m, p) for m, p in guarded if m == "OPTIONS"} == documented
    schemes = document["components"]["securitySchemes"]
    assert schemes["serviceCredential"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["serviceCredential"]["description"],
    }
    assert schemes["accessToken"]["bearerFormat"] == "JWT"


def test_introspection_and_revocation_document_their_form_and_json_bodies() -> None:
    _, document = service_document()
    for path in ("/v1/introspect", "/v1/revoke"):
        body = document["paths"][path]["post"]["requestBody"]
        assert set(body["content"]) == {"application/x-www-form-urlencoded", "application/json"}
        schema = body["content"]["application/json"]["schema"]
        assert schema["required"] == ["token"]


@get("/balance", sync_to_thread=False)
def balance() -> dict[str, int]:
    return {"balance": 1}


def resource_server(plugin: SessiondPlugin, **config: Any) -> Litestar:
    """A resource server's app (Litestar's own logging set-up would take the suite's log
    capture away)."""
    return Litestar([balance], plugins=[plugin], logging_config=None, **config)


def test_the_verifier_plugin_documents_its_bearer_scheme_on_every_route() -> None:
    app = resource_server(SessiondPlugin(RESOURCE_SERVER))
    document = app.openapi_schema.to_schema()
    assert document["components"]["securitySchemes"]["BearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token issued by sessiond.",
    }
    assert document["security"] == [{"BearerToken": []}]


def test_the_verifier_plugin_keeps_the_apps_own_components_and_requirements() -> None:
    own = Components(security_schemes={"ApiKey": SecurityScheme(type="apiKey", name="k")})
    config = OpenAPIConfig(title="bank", version="1", components=own, security=[{"ApiKey": []}])
    plugin = SessiondPlugin(
        RESOURCE_SERVER, required_scopes=["accounts:read"], openapi_scheme="Sessiond"
    )
    app = resource_server(plugin, openapi_config=config)
    document = app.openapi_schema.to_schema()
    assert set(document["components"]["securitySchemes"]) == {"ApiKey", "Sessiond"}
    assert "accounts:read" in document["components"]["securitySchemes"]["Sessiond"]["description"]
    assert document["security"] == [{"ApiKey": []}, {"Sessiond": []}]


def test_the_verifier_plugin_needs_no_openapi_document() -> None:
    app = resource_server(SessiondPlugin(RESOURCE_SERVER), openapi_config=None)
    assert app.openapi_config is None
