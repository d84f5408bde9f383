"""The language-neutral wire contract in ``proto/``, generated from the code.

Two JSON files describe revocation events for implementers in other languages:

* ``proto/revocation-event.schema.json``: the JSON Schema (2020-12) of one event, exactly as
  ``msgspec.json.schema`` derives it from :data:`sessiond.broadcast.events.Revocation`, plus
  an id, a title and one example per kind;
* ``proto/asyncapi.json``: an AsyncAPI 3.0.0 document with one channel per kind
  (``<nats_subject>.<kind>``), the ``Nats-Msg-Id`` header, a ``send`` operation (the authority)
  and a ``receive`` operation (verifiers) per channel, the same per-kind schemas under
  ``components.schemas``, and the JetStream stream settings in ``x-sessiond-stream``.

Every value comes from the code and the default :class:`~sessiond.settings.Settings`, never
from a hand-written copy. ``sessiond proto`` rewrites the files; a unit test fails
when the checked-in files differ from :func:`generate`. ``proto/README.md`` is hand-written.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any, Final

import msgspec

from sessiond.broadcast import events
from sessiond.broadcast.events import (
    VERSION,
    AllRevoked,
    Revocation,
    SessionRevoked,
    SubjectRevoked,
    TokenRevoked,
)
from sessiond.broadcast.stream import DUPLICATE_WINDOW_MAX, MSG_ID_HEADER, StreamSpec
from sessiond.settings import STREAM_AGE_MARGIN, Settings, env_name

__all__ = [
    "ASYNCAPI_FILE",
    "SCHEMA_FILE",
    "SCHEMA_ID",
    "check",
    "event_types",
    "example_events",
    "find_root",
    "generate",
    "kinds",
    "render",
    "subject_for",
    "write",
]

#: Where the JSON Schema of one event lives, relative to the repository root.
SCHEMA_FILE: Final = "proto/revocation-event.schema.json"
#: Where the AsyncAPI document lives, relative to the repository root.
ASYNCAPI_FILE: Final = "proto/asyncapi.json"
#: The JSON Schema's ``$id``; the last part follows the event format version.
SCHEMA_ID: Final = f"urn:sessiond:proto:revocation-event:v{VERSION}"
#: What the NATS server must be configured with (``jetstream { sync_interval: always }``).
SERVER_JETSTREAM: Final = {"sync_interval": "always"}

_JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: 2026-01-01T00:00:00Z, the fixed clock of the examples.
_EXAMPLE_AT: Final = 1767225600.0


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
            "`sessiond.broadcast.events` by `sessiond proto`: do not edit."
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

    schemas: dict[str, Any] = {
        name: _rebase(body, "#/$defs/", "#/components/schemas/")
        for name, body in derived["$defs"].items()
    }
    schemas["RevocationHeaders"] = _headers_schema()

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for kind in kinds():
        name, event = names[kind], examples[kind]
        channels[kind] = {
            "address": subject_for(settings, kind),
            "title": _title(name),
            "description": doc_of[kind],
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        channel_ref = {"$ref": f"#/channels/{kind}"}
        message_refs = [{"$ref": f"#/channels/{kind}/messages/{name}"}]
        operations[f"send{name}"] = {
            "action": "send",
            "channel": channel_ref,
            "messages": message_refs,
            "title": f"Publish {_title(name).lower()}",
            "summary": (
                "The session authority publishes the event with a JetStream publish and "
                f"`{MSG_ID_HEADER}` set to the event id, and acknowledges the revocation to "
                "its caller once the stream has acknowledged the message."
            ),
            "tags": [{"name": "authority"}],
        }
        operations[f"receive{name}"] = {
            "action": "receive",
            "channel": channel_ref,
            "messages": message_refs,
            "title": f"Apply {_title(name).lower()}",
            "summary": (
                "A verifier reads every subject of the stream with one ordered consumer "
                "(deliver all, no acks), replays the stream before it reports ready, then "
                "follows it, and applies each event to its in-memory denylist idempotently."
            ),
            "tags": [{"name": "verifier"}],
        }
        messages[name] = {
            "name": name,
            "title": _title(name),
            "summary": doc_of[kind],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/RevocationHeaders"},
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "examples": [
                {
                    "name": kind,
                    "summary": f"A {kind} revocation as published",
                    "headers": {MSG_ID_HEADER: event.id},
                    "payload": _payload(event),
                }
            ],
        }

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
                "the stream into an in-memory denylist. The stream is described in "
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


def render(doc: dict[str, Any]) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(settings: Settings | None = None) -> dict[str, str]:
    """Every generated file of ``proto/``: relative file name -> content."""
    return {
        SCHEMA_FILE: render(revocation_schema(settings)),
        ASYNCAPI_FILE: render(asyncapi(settings)),
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


def _payload(event: Revocation) -> Any:
    """An event exactly as it goes on the wire, as JSON data."""
    return json.loads(events.encode(event))


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


def _headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": [MSG_ID_HEADER],
        "properties": {
            MSG_ID_HEADER: {
                "type": "string",
                "description": (
                    "The event's `id`. JetStream drops a second publish with the same id "
                    "within the stream's duplicate window, so a retried publish is harmless. "
                    "Verifiers apply events idempotently and need not read it."
                ),
            }
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
