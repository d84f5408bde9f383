"""The language-neutral wire contract in ``proto/``, generated from the code.

Two JSON files describe revocation events for implementers in other languages:

* ``proto/revocation-event.schema.json``: the JSON Schema (2020-12) of one event, exactly as
  ``msgspec.json.schema`` derives it from :data:`sessiond.events.Revocation`, plus
  an id, a title and one example per kind;
* ``proto/asyncapi.json``: an AsyncAPI 3.0.0 document with one channel per kind
  (``<nats_subject>.<kind>``), the ``Nats-Msg-Id`` header, a ``send`` operation (the authority)
  and a ``receive`` operation (verifiers) per channel, the same per-kind schemas under
  ``components.schemas``, and the JetStream stream settings in ``x-sessiond-stream``; plus the
  ``receipts`` channel (``<nats_subject>-applied``, core NATS, not stored) with the
  :class:`~sessiond.broadcast.receipts.Receipt` schema, one example, a ``send`` operation
  (every verifier) and a ``receive`` operation (the authority waits for them);
* ``proto/signed-event.vector.json``: a test vector of the ``Sessiond-Signature`` header
  (``broadcast/signing.py``): a fixed Ed25519 public JWK, the exact payload bytes and the
  header value, deterministic since EdDSA signatures are.

Every value comes from the code and the default :class:`~sessiond.settings.Settings`, never
from a hand-written copy. ``sessiond proto`` rewrites the files; a unit test fails
when the checked-in files differ from :func:`generate`. ``proto/README.md`` is hand-written.
"""

from __future__ import annotations

import base64
import json
import re
import typing
from pathlib import Path
from typing import Any, Final

import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519

from sessiond import events
from sessiond.broadcast.follower import HEARTBEAT, RECEIPT_INTERVAL
from sessiond.broadcast.receipts import PRESENCE, Receipt
from sessiond.broadcast.signing import EVENT_TYPE, SIGNATURE_HEADER, sign_detached
from sessiond.broadcast.stream import (
    CONFIRM_WAIT,
    DUPLICATE_WINDOW_MAX,
    MSG_ID_HEADER,
    StreamSpec,
)
from sessiond.events import (
    VERSION,
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
)
from sessiond.settings import STREAM_AGE_MARGIN, Settings, env_name
from sessiond.tokens.keys import SigningKey

__all__ = [
    "ASYNCAPI_FILE",
    "SCHEMA_FILE",
    "SCHEMA_ID",
    "VECTOR_FILE",
    "check",
    "event_types",
    "example_events",
    "example_headers",
    "example_key",
    "example_receipt",
    "find_root",
    "generate",
    "kinds",
    "render",
    "signature_vector",
    "subject_for",
    "write",
]

#: Where the JSON Schema of one event lives, relative to the repository root.
SCHEMA_FILE: Final = "proto/revocation-event.schema.json"
#: Where the AsyncAPI document lives, relative to the repository root.
ASYNCAPI_FILE: Final = "proto/asyncapi.json"
#: Where the test vector of an event signature lives, relative to the repository root.
VECTOR_FILE: Final = "proto/signed-event.vector.json"
#: The JSON Schema's ``$id``; the last part follows the event format version.
SCHEMA_ID: Final = f"urn:sessiond:proto:revocation-event:v{VERSION}"
#: What the NATS server must be configured with (``jetstream { sync_interval: always }``).
SERVER_JETSTREAM: Final = {"sync_interval": "always"}

#: The schema of the revocation messages' headers, under ``components.schemas``.
_HEADERS: Final = "RevocationHeaders"
_JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: 2026-01-01T00:00:00Z, the fixed clock of the examples.
_EXAMPLE_AT: Final = 1767225600.0
#: The Ed25519 key of the examples' signatures: published here, so it signs nothing real.
_EXAMPLE_SEED: Final = bytes(range(32))
_EXAMPLE_KID: Final = "sessiond-example-key"


# --- what the code says ------------------------------------------------------------------


def event_types() -> tuple[type[Revocation], ...]:
    """The event Structs of the :data:`Revocation` union, in declaration order."""
    types: tuple[type[Revocation], ...] = typing.get_args(Revocation)
    return types


def kind_of_type(cls: type[Revocation]) -> str:
    """The ``kind`` tag of one event Struct."""
    tag = cls.__struct_config__.tag
    if not isinstance(tag, str):  # pragma: no cover - every event has a string tag
        raise TypeError(f"{cls.__name__} has no string tag")
    return tag


def kinds() -> tuple[str, ...]:
    """Every event kind, in declaration order."""
    return tuple(kind_of_type(cls) for cls in event_types())


def subject_for(settings: Settings, kind: str) -> str:
    """The NATS subject an event of ``kind`` is published to."""
    return f"{StreamSpec.from_settings(settings).subject_prefix}.{kind}"


def example_events(settings: Settings | None = None) -> tuple[Revocation, ...]:
    """One realistic event per kind with fixed values, for the documents and for tests."""
    settings = settings or Settings()
    at = _EXAMPLE_AT
    die_by = at + settings.access_ttl + settings.leeway
    nbf = int(at)
    return (
        TokenRevoked(
            id="3f2b8c1d9e4a4b7c8d6e5f4a3b2c1d0e",
            at=at,
            reason="token leaked in a log",
            jti="b3JkZXItNDItdG9rZW4tMQ",
            expires_at=die_by,
        ),
        SessionRevoked(
            id="7a6b5c4d3e2f40918273645546372819",
            at=at,
            reason="logout",
            sid="2bd806c97f0e00af1a1a7f3c5d9e4b21",
            expires_at=die_by,
        ),
        SubjectRevoked(
            id="c0ffee00deadbeef0123456789abcdef",
            at=at,
            reason="password changed",
            sub="alice",
            not_before=nbf,
            expires_at=die_by,
        ),
        AllRevoked(
            id="e1d2c3b4a5964788a9b0c1d2e3f40516",
            at=at,
            reason=None,
            not_before=nbf,
        ),
    )


def example_receipt() -> Receipt:
    """One receipt with fixed values, for the documents and for tests."""
    return Receipt(follower="backend/api-7d9f8b6c5-x2k4q/1/3f2b8c1d", seq=42)


# --- the documents -----------------------------------------------------------------------


def revocation_schema(settings: Settings | None = None) -> dict[str, Any]:
    """The JSON Schema (2020-12) document of one revocation event."""
    derived = msgspec.json.schema(Revocation)
    doc: dict[str, Any] = {
        "$schema": _JSON_SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": f"sessiond revocation event, version {VERSION}",
        "description": (
            _prose(events.__doc__ or "")
            + "\n\nTimes are seconds since the Unix epoch: `at` and `expires_at` are numbers, "
            "`not_before` is an integer compared with the token's `iat`. Unknown members are "
            "ignored (forward compatibility); an unknown `kind` is an error. Generated from "
            "`sessiond.events` by `sessiond proto`: do not edit."
        ),
        **derived,
        "examples": [_payload(event) for event in example_events(settings)],
    }
    tidy: dict[str, Any] = _tidy(doc)
    return tidy


def asyncapi(settings: Settings | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the revocation channels and their stream."""
    settings = settings or Settings()
    derived = msgspec.json.schema(Revocation)
    mapping: dict[str, str] = derived["discriminator"]["mapping"]
    names = {kind: ref.rsplit("/", 1)[1] for kind, ref in mapping.items()}
    examples = {kind_of_type(type(event)): event for event in example_events(settings)}
    doc_of = {kind_of_type(cls): _prose(cls.__doc__ or "") for cls in event_types()}

    schemas = _component_schemas(derived)
    schemas[_HEADERS] = _headers_schema()

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for kind in kinds():
        name, event = names[kind], examples[kind]
        channels[kind] = _channel(subject_for(settings, kind), name, doc_of[kind])
        operations[f"send{name}"] = _operation(
            "send",
            kind,
            name,
            f"Publish {_title(name).lower()}",
            "The session authority publishes the event with a JetStream publish, "
            f"`{MSG_ID_HEADER}` set to the event id and `{SIGNATURE_HEADER}` to its "
            "signature, and acknowledges the revocation to its caller once the stream has "
            "acknowledged the message.",
            "authority",
        )
        operations[f"receive{name}"] = _operation(
            "receive",
            kind,
            name,
            f"Apply {_title(name).lower()}",
            "A verifier reads every subject of the stream with one ordered consumer "
            "(deliver all, no acks), replays the stream before it reports ready, then "
            "follows it, and applies each event whose signature verifies to its in-memory "
            "denylist idempotently (an event without a valid signature is dropped, logged "
            "and counted).",
            "verifier",
        )
        messages[name] = _message(
            name,
            doc_of[kind],
            kind,
            f"A {kind} revocation as published",
            event,
            headers=example_headers(event),
        )
    _add_receipts(settings, channels, operations, messages, schemas)

    doc: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "id": SCHEMA_ID.replace("revocation-event", "revocations"),
        "info": {
            "title": "sessiond revocation events",
            "version": str(VERSION),
            "description": (
                "Every revocation made by the sessiond authority (one token, one session, "
                "every session of a subject, or everything) becomes one JSON event on a NATS "
                "JetStream stream. Every replica, and every verifier in any language, follows "
                "the stream into an in-memory denylist, and tells the authority how far it has "
                "applied it on the `receipts` channel. The stream is described in "
                "`x-sessiond-stream`; how to consume it and the exact denylist check are in "
                "`proto/README.md`. Generated from the code by `sessiond proto`: do "
                "not edit."
            ),
            "license": {"name": "Apache-2.0"},
            "tags": [
                {"name": "authority", "description": "The sessiond session authority."},
                {"name": "verifier", "description": "Anything that verifies access tokens."},
            ],
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "{host}",
                "protocol": "nats",
                "description": (
                    "The NATS server or cluster, with JetStream enabled and "
                    "`jetstream { sync_interval: always }` in its configuration."
                ),
                "variables": {
                    "host": {
                        "default": "127.0.0.1:4222",
                        "description": f"Host and port, as in `{env_name('nats_url')}`.",
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
        "x-sessiond-stream": _stream_extension(settings),
    }
    tidy: dict[str, Any] = _tidy(doc)
    return tidy


def example_key() -> SigningKey:
    """The fixed Ed25519 key that signs the examples and the test vector."""
    private = ed25519.Ed25519PrivateKey.from_private_bytes(_EXAMPLE_SEED)
    return SigningKey(
        kid=_EXAMPLE_KID,
        alg="EdDSA",
        private=private,
        public=private.public_key(),
        created_at=_EXAMPLE_AT,
    )


def example_headers(event: Revocation) -> dict[str, str]:
    """The headers the authority publishes ``event`` with, signed by :func:`example_key`."""
    return {
        MSG_ID_HEADER: event.id,
        SIGNATURE_HEADER: sign_detached(events.encode(event), example_key()),
    }


def signature_vector(settings: Settings | None = None) -> dict[str, Any]:
    """A test vector of the event signature: key, exact payload bytes, header value."""
    event = next(e for e in example_events(settings) if isinstance(e, AllRevoked))
    payload = events.encode(event)
    key = example_key()
    signature = sign_detached(payload, key)
    protected, _, signed = signature.partition("..")
    return {
        "description": (
            "Test vector of the Sessiond-Signature header of a revocation event: a detached "
            "compact JWS (RFC 7515 appendix F). Verify `signature` over `payload` (its UTF-8 "
            "bytes exactly as given: never re-encode the JSON) with `public_jwk`, taking "
            "the algorithm from the key, never from the header. Generated by `sessiond proto`."
        ),
        "public_jwk": key.public_jwk(),
        "payload": payload.decode("utf-8"),
        "header": SIGNATURE_HEADER,
        "signature": signature,
        "protected_header": msgspec.json.decode(_b64decode(protected)),
        "signing_input": f"{protected}.{_b64encode(payload)}",
        "signature_bytes_base64url": signed,
    }


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def render(doc: dict[str, Any]) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(settings: Settings | None = None) -> dict[str, str]:
    """Every generated file of ``proto/``: relative file name -> content."""
    return {
        SCHEMA_FILE: render(revocation_schema(settings)),
        ASYNCAPI_FILE: render(asyncapi(settings)),
        VECTOR_FILE: render(signature_vector(settings)),
    }


def write(root: Path) -> list[Path]:
    """Write the generated files (default settings) under ``root``; return their paths."""
    written = []
    for name, content in generate().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8", newline="\n")
        written.append(path)
    return written


def check(root: Path) -> list[str]:
    """The generated files under ``root`` that are missing or differ from :func:`generate`."""
    drifted = []
    for name, content in generate().items():
        path = root / name
        try:
            current = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            current = None
        if current != content:
            drifted.append(name)
    return drifted


def find_root(start: Path) -> Path:
    """The sessiond repository that holds ``start``: a directory with ``pyproject.toml``
    and ``src/sessiond``. Raises :class:`FileNotFoundError` if there is none."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file() and (directory / "src/sessiond").is_dir():
            return directory
    raise FileNotFoundError(f"no sessiond repository at or above {start}")


# --- helpers -------------------------------------------------------------------------------


def _payload(message: Revocation | Receipt) -> Any:
    """An event or a receipt exactly as it goes on the wire, as JSON data."""
    return json.loads(msgspec.json.encode(message))


def _prose(docstring: str) -> str:
    """A docstring as Markdown prose: paragraphs joined into lines, ``code`` as `code`."""
    paragraphs = (" ".join(p.split()) for p in docstring.strip().split("\n\n"))
    return "\n\n".join(p.replace("``", "`") for p in paragraphs if p)


def _title(name: str) -> str:
    """``TokenRevoked`` -> ``Token revoked``."""
    words = re.findall(r"[A-Z][a-z]*", name)
    return " ".join([words[0], *(w.lower() for w in words[1:])])


def _rebase(node: Any, old: str, new: str) -> Any:
    """``node`` with every ``$ref`` that starts with ``old`` pointing under ``new`` instead."""
    if isinstance(node, dict):
        return {
            k: (new + v[len(old) :] if k == "$ref" and v.startswith(old) else _rebase(v, old, new))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(item, old, new) for item in node]
    return node


def _tidy(node: Any) -> Any:
    """``node`` as plain JSON data with every ``description`` (docstrings) as prose."""
    if isinstance(node, dict):
        return {
            k: _prose(v) if k == "description" and isinstance(v, str) else _tidy(v)
            for k, v in node.items()
        }
    if isinstance(node, list | tuple):
        return [_tidy(item) for item in node]
    return node


def _component_schemas(derived: dict[str, Any]) -> dict[str, Any]:
    """The ``$defs`` of a schema from ``msgspec.json.schema``, for ``components.schemas``."""
    return {
        name: _rebase(body, "#/$defs/", "#/components/schemas/")
        for name, body in derived["$defs"].items()
    }


def _channel(address: str, name: str, description: str) -> dict[str, Any]:
    """A channel that carries the one message ``name``."""
    return {
        "address": address,
        "title": _title(name),
        "description": description,
        "messages": {name: {"$ref": f"#/components/messages/{name}"}},
    }


def _operation(
    action: str, channel: str, name: str, title: str, summary: str, tag: str
) -> dict[str, Any]:
    """``action`` (``send`` or ``receive``) of the message ``name`` on ``channel``."""
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
        "title": title,
        "summary": summary,
        "tags": [{"name": tag}],
    }


def _message(
    name: str,
    summary: str,
    example: str,
    example_summary: str,
    payload: Revocation | Receipt,
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON message ``name`` (schema ``components.schemas.<name>``), with one example;
    with ``headers``, the example's headers (schema ``RevocationHeaders``)."""
    sample: dict[str, Any] = {"name": example, "summary": example_summary}
    message: dict[str, Any] = {
        "name": name,
        "title": _title(name),
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{name}"},
        "examples": [sample],
    }
    if headers is not None:
        message["headers"] = {"$ref": f"#/components/schemas/{_HEADERS}"}
        sample["headers"] = headers
    sample["payload"] = _payload(payload)
    return message


def _add_receipts(
    settings: Settings,
    channels: dict[str, Any],
    operations: dict[str, Any],
    messages: dict[str, Any],
    schemas: dict[str, Any],
) -> None:
    """The ``receipts`` channel: followers tell the authority how far they have applied."""
    name = Receipt.__name__
    schemas.update(_component_schemas(msgspec.json.schema(Receipt)))
    channels["receipts"] = _channel(
        StreamSpec.from_settings(settings).receipts_subject("{identity}"),
        name,
        "How far each follower of the stream has applied it. Plain (core) NATS messages, "
        "outside the stream: never stored, never replayed.",
    )
    channels["receipts"]["parameters"] = {
        "identity": {
            "description": "The follower's NATS identity (by default its NATS user); "
            "`follower` starts with it and a slash, else the authority ignores the receipt."
        }
    }
    operations[f"send{name}"] = _operation(
        "send",
        "receipts",
        name,
        "Confirm applied events",
        "Every follower of the stream (every verifier, the authority's replicas included), "
        "once caught up, publishes a receipt with core NATS: after applying events (at most "
        f"one per {RECEIPT_INTERVAL * 1000:g} ms, and always when the server has nothing more "
        "pending), at every "
        f"heartbeat ({HEARTBEAT:g} s) as a sign of presence, and once with `leaving` true "
        "when it stops. `seq` is the stream sequence of the last event it has applied; "
        "`follower` is unique per follower process and starts with `<identity>/`.",
        "verifier",
    )
    operations[f"receive{name}"] = _operation(
        "receive",
        "receipts",
        name,
        "Wait for the followers",
        "The authority tracks every follower heard from within the last "
        f"{PRESENCE:g} s, and answers a revocation only once each of them has sent a "
        "receipt with `seq` at or past the event's stream sequence, or after at most "
        f"{CONFIRM_WAIT:g} s. A `leaving` receipt stops the wait for that follower at once; "
        "a follower that sends no receipts is not waited for.",
        "authority",
    )
    messages[name] = _message(
        name, _prose(Receipt.__doc__ or ""), "receipt", "A receipt as published", example_receipt()
    )


def _headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": [MSG_ID_HEADER, SIGNATURE_HEADER],
        "properties": {
            MSG_ID_HEADER: {
                "type": "string",
                "description": (
                    "The event's `id`. JetStream drops a second publish with the same id "
                    "within the stream's duplicate window, so a retried publish is harmless. "
                    "Verifiers apply events idempotently and need not read it."
                ),
            },
            SIGNATURE_HEADER: {
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]+\\.\\.[A-Za-z0-9_-]+$",
                "description": (
                    "The authority's signature of the payload bytes: a detached compact JWS "
                    "(RFC 7515 appendix F), protected header `alg`, `kid` and `typ` "
                    f"`{EVENT_TYPE}`, by a key of the authority's JWKS. Verify it before "
                    "applying the event; see `proto/README.md` and "
                    f"`{VECTOR_FILE}`."
                ),
            },
        },
    }


def _stream_extension(settings: Settings) -> dict[str, Any]:
    spec = StreamSpec.from_settings(settings)
    config = spec.config()
    return {
        "description": (
            "The JetStream stream the authority creates or updates at start-up. It keeps every "
            "event for as long as a token it matches can still be valid, so replaying it from "
            "the start rebuilds a complete denylist. Durations are in seconds (the JetStream "
            "API takes nanoseconds). A full stream rejects the publish (discard `new`) instead "
            "of dropping an old revocation."
        ),
        "name": spec.name,
        "subjects": [spec.filter_subject],
        "storage": _value(config.storage),
        "retention": _value(config.retention),
        "max_age_seconds": int(spec.max_age),
        "duplicate_window_seconds": int(spec.duplicate_window),
        "discard": _value(config.discard),
        "max_bytes": spec.max_bytes,
        "max_msg_size": config.max_msg_size,
        "deny_delete": config.deny_delete,
        "replicas": spec.num_replicas,
        "server": {"jetstream": SERVER_JETSTREAM},
        "derived_from": {
            "name": env_name("nats_stream"),
            "subjects": f"{env_name('nats_subject')}, then `.<kind>` per event kind",
            "max_age_seconds": (
                f"{env_name('access_ttl')} + {env_name('leeway')} + {STREAM_AGE_MARGIN}"
            ),
            "duplicate_window_seconds": f"min({int(DUPLICATE_WINDOW_MAX)}, max_age_seconds)",
            "replicas": f"{env_name('nats_replicas')}: 1 locally, 3 in production",
        },
    }


def _value(option: object) -> object:
    return getattr(option, "value", option)
