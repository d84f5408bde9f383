"""What ``/schema/openapi.json`` says about a route, so that the document is the API.

Litestar documents a route from its decorator and signature. What it cannot see, say in the
decorator with this module; ``tests/security/test_fuzz.py`` (schemathesis, every check) holds
each route to its document, and ``tests/unit/test_openapi.py`` checks what it can statically::

    from sessiond.api.openapi import ACCESS_TOKEN, SERVICE_CREDENTIAL, empty, problems

    @delete(
        "/v1/things/{id:str}",
        opt={"scope": "things:write"},
        status_code=202,
        security=SERVICE_CREDENTIAL,  # not needed under app.service_routes, which sets it
        responses={204: empty("Deleted"), **problems(400, 401, 403, 404, 429, 503)},
    )
    async def delete_thing(id: str) -> Response[Accepted | None]: ...

- ``security=``: :data:`SERVICE_CREDENTIAL` for routes behind the ``service_credential`` guard
  (``app.service_routes`` sets it for its routes), :data:`ACCESS_TOKEN` for routes that read
  the caller's access token, nothing for open routes. A secured route must answer 401 without
  its token (schemathesis's ``ignored_auth`` check).
- ``responses=problems(...)``: every error status the route answers, as problem+json (RFC
  9457). Always 400 on a route with a body or a path or query parameter (else Litestar
  documents its own 400 body, which the server never sends); 401 and 403 on a secured route;
  404 where a path parameter names something; 413 with a body; 429 under a rate limit; 503
  where Redis, the revocation stream or the clock is needed. Unknown paths (404) and methods
  (405) need not be listed. A 401's ``WWW-Authenticate`` and a 429's ``Retry-After`` are
  documented for every route by :func:`finish`.
- Success: ``status_code=`` is documented with the return annotation's body; each other 2xx
  the route answers goes in ``responses=`` (:func:`empty` for no body, ``ResponseSpec(View,
  description=...)`` for one; an entry for ``status_code`` replaces Litestar's). Document no
  2xx the route never answers: Litestar refuses ``status_code=204`` on a handler that may
  answer a body, so set another code it answers and put 204 in ``responses=``. Revocation
  routes (``revocation_response``) use :func:`revocation_answers`.
- A non-JSON answer: ``media_type=`` in the decorator (the JWKS, ``/metrics``).
- A body the handler reads itself (``request.form()``): ``operation_class=request_body(Struct,
  FORM, JSON)``; a ``data:`` parameter is documented by Litestar already.
- A route that reads a ``DPoP`` proof header (RFC 9449: sign-in, refresh):
  ``operation_class=dpop_proof()``, or ``dpop_proof(request_body(...))`` with a body. Routes
  that take the caller's token name it in ``ACCESS_TOKEN``'s ``dpopToken`` scheme instead.
- A route that creates something: ``operation_class=links(201, ReadThing=link("GET",
  "/v1/things/{id}", id="$response.body#/id"))``, so the fuzz test's stateful phase checks
  that it is there after, and gone after its DELETE.
- Request bodies: a struct with ``forbid_unknown_fields`` is documented with
  ``additionalProperties: false`` (the app's :data:`STRUCTS` plugin). Every value the schema
  allows must be accepted (schemathesis's ``positive_data_acceptance``): a range or a rule the
  handler checks belongs in the struct's types (``msgspec.Meta``), else in the schema.
- Routes outside the API (the console's HTML pages): ``include_in_schema=False``.
- HEAD is served for every GET route and 405 carries ``Allow`` (``api.methods``): nothing to
  declare.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    Link,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)

from sessiond.api.schemas import RevocationView
from sessiond.errors import PROBLEM_JSON, Problem

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

__all__ = [
    "ACCESS_TOKEN",
    "COMPONENTS",
    "FORM",
    "JSON",
    "SERVICE_CREDENTIAL",
    "STRUCTS",
    "dpop_proof",
    "empty",
    "finish",
    "link",
    "links",
    "problems",
    "request_body",
    "revocation_answers",
]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

_SERVICE = "serviceCredential"
_ACCESS = "accessToken"
_DPOP = "dpopToken"

#: ``security=`` of a route that wants a service credential (``Authorization: Bearer sd_...``).
SERVICE_CREDENTIAL: list[SecurityRequirement] = [{_SERVICE: []}]
#: ``security=`` of a route that wants the caller's own access token: a bearer token, or a
#: DPoP-bound one with its proof (RFC 9449).
ACCESS_TOKEN: list[SecurityRequirement] = [{_ACCESS: []}, {_DPOP: []}]

#: The app's ``OpenAPIConfig(components=...)``: the security schemes named above.
COMPONENTS = Components(
    security_schemes={
        _SERVICE: SecurityScheme(
            type="http",
            scheme="bearer",
            description="A service credential (`sessiond credentials create`) holding the "
            "route's scope.",
        ),
        _ACCESS: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="An access token sessiond issued (in cookie mode `both`, the access "
            "cookie instead).",
        ),
        _DPOP: SecurityScheme(
            type="http",
            scheme="DPoP",
            bearer_format="JWT",
            description="An access token bound to the client's key (`token_type: DPoP`), with "
            "a `DPoP` header holding a proof by that key for this request (RFC 9449).",
        ),
    }
)


class _StrictStructs(StructSchemaPlugin):
    """Litestar's schemas of msgspec structs, where a struct that refuses unknown fields
    (``forbid_unknown_fields``) says so: ``additionalProperties: false``."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if field_definition.type_.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


#: The app's ``plugins=``: the schema generation of request and response bodies.
STRUCTS = _StrictStructs()

_MEANING = {
    400: "The request is malformed or a value is invalid (`errors` lists the fields).",
    401: "No valid credential or token (with `WWW-Authenticate`).",
    403: "The credential or token lacks the route's scope (or a cookie request lacks CSRF proof).",
    404: "Nothing by that name.",
    409: "The request conflicts with the resource's current state.",
    413: "The body is over `SESSIOND_MAX_BODY_BYTES`.",
    415: "The body's media type is not one this route reads.",
    429: "Over a rate limit (with `Retry-After`).",
    431: "The headers are over their limit.",
    503: "A dependency is unavailable (Redis, the revocation stream) or this replica's clock "
    "is skewed; retry.",
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` entries: each status answered with RFC 9457 problem details."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=_MEANING.get(status) or HTTPStatus(status).phrase,
            generate_examples=False,
        )
        for status in statuses
    }


#: The headers every problem of a status carries (``SessiondError.headers``).
_PROBLEM_HEADERS = {
    "401": {
        "WWW-Authenticate": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING),
            required=True,
            description="The challenge (RFC 6750 section 3).",
        )
    },
    "429": {
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING, pattern="^[0-9]+$"),
            required=True,
            description="Seconds until the limit lets the request pass.",
        )
    },
}


def finish(document: OpenAPI) -> None:
    """What Litestar's ``responses=`` cannot say, said in the app's ``document``: the headers
    of its problem answers (``WWW-Authenticate`` with a 401, ``Retry-After`` with a 429)."""
    for item in (document.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method)
            for status, answer in (operation.responses or {}).items() if operation else ():
                if status in _PROBLEM_HEADERS and isinstance(answer, OpenAPIResponse):
                    answer.headers = {**(answer.headers or {}), **_PROBLEM_HEADERS[status]}


def empty(description: str) -> ResponseSpec:
    """A ``responses=`` entry for a success answered without a body (204)."""
    return ResponseSpec(data_container=None, description=description, generate_examples=False)


def revocation_answers(status: int) -> dict[int, ResponseSpec]:
    """``responses=`` entries of a route answering ``revocation_response(revoked, status)``:
    ``status`` once every replica has the revocation, 202 while the stream does not."""
    done = "Revoked, and the revocation is on its way to every replica."
    return {
        status: empty(done) if status == 204 else _answer(RevocationView, done),
        202: _answer(RevocationView, "Stored; every replica gets it once the stream is back."),
    }


def _answer(view: type[msgspec.Struct], description: str) -> ResponseSpec:
    return ResponseSpec(data_container=view, description=description, generate_examples=False)


def request_body(struct: type[msgspec.Struct], *media_types: str) -> type[Operation]:
    """``operation_class=`` documenting ``struct`` as the body, in each of ``media_types``,
    for a handler that reads its body itself (Litestar sees no ``data`` parameter)."""
    schema = _schema(msgspec.json.schema(struct)["$defs"][struct.__name__])
    content = {media_type: OpenAPIMediaType(schema=schema) for media_type in media_types}

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(content=content, required=True)

    return WithBody


def links(status: int, **named: Link) -> type[Operation]:
    """``operation_class=`` giving the ``status`` answer OpenAPI links: the operations that
    take a value of it (schemathesis's stateful test follows them: a resource created is
    there, one deleted is gone)."""

    @dataclass
    class WithLinks(Operation):
        def __post_init__(self) -> None:
            answer = (self.responses or {}).get(str(status))
            if not isinstance(answer, OpenAPIResponse):
                raise TypeError(f"{self.operation_id}: no {status} answer to link from")
            answer.links = dict(named)

    return WithLinks


def link(method: str, path: str, **parameters: str) -> Link:
    """A link to the operation ``method path`` (as the document names it, ``{sid}``), its
    ``parameters`` given as runtime expressions (``$response.body#/session_id``)."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return Link(operation_ref=f"#/paths/{pointer}/{method.lower()}", parameters=parameters)


_SCHEMA_KEYS = {"minLength": "min_length", "maxLength": "max_length", "anyOf": "any_of"}


def _schema(json_schema: dict[str, Any]) -> Schema:
    """A self-contained JSON Schema (msgspec's, for a struct without nested structs) as
    Litestar's ``Schema``."""
    fields: dict[str, Any] = {}
    for key, value in json_schema.items():
        if key == "properties":
            value = {name: _schema(prop) for name, prop in value.items()}
        elif key == "anyOf":
            value = [_schema(option) for option in value]
        elif key == "default" and value is None:
            continue
        fields[_SCHEMA_KEYS.get(key, key)] = value
    return Schema(**fields)


_DPOP_HEADER = Parameter(
    name="DPoP",
    param_in="header",
    required=False,
    schema=Schema(
        type=OpenAPIType.STRING, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
    ),
    description="A DPoP proof (RFC 9449) by the client's key for this request: binds a new "
    "session to the key, and is required with every token of a bound session.",
)


def dpop_proof(base: type[Operation] = Operation) -> type[Operation]:
    """``operation_class=`` of a route that reads a ``DPoP`` proof header (on top of
    ``base``, say a :func:`request_body`)."""

    @dataclass
    class WithDpopProof(base):  # type: ignore[valid-type,misc]
        def __post_init__(self) -> None:
            if hasattr(base, "__post_init__"):
                base.__post_init__(self)
            operation: Operation = self
            operation.parameters = [*(operation.parameters or []), _DPOP_HEADER]

    return WithDpopProof
