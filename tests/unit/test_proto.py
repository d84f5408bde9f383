"""proto/: the checked-in contract equals what the code generates, and says what the code does."""

from __future__ import annotations

import base64
import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
from click.testing import CliRunner

from sessiond import asyncapi, events
from sessiond.broadcast.receipts import PRESENCE, Receipt
from sessiond.broadcast.signing import EventVerifier
from sessiond.broadcast.stream import CONFIRM_WAIT, StreamSpec
from sessiond.cli import main
from sessiond.events import Kind, Revocation
from sessiond.settings import Settings
from sessiond.tokens.jwks import PublishedKeys

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "sessiond proto"
RECEIPTS = "receipts"


def _schema() -> dict[str, Any]:
    return asyncapi.revocation_schema()


def _asyncapi() -> dict[str, Any]:
    return asyncapi.asyncapi()


# --- drift -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(asyncapi.generate()))
def test_checked_in_file_equals_the_generated_one(name: str) -> None:
    path = ROOT / name
    expected = asyncapi.generate()[name]
    assert path.is_file(), f"{name} is missing: run `{REGENERATE}` and commit it"
    assert path.read_text(encoding="utf-8") == expected, (
        f"{name} has drifted from the code: run `{REGENERATE}` and commit the result"
    )


def test_proto_holds_no_stale_generated_file() -> None:
    on_disk = {f"proto/{p.name}" for p in (ROOT / "proto").glob("*.json")}
    assert on_disk == set(asyncapi.generate()), f"unexpected files in proto/: run `{REGENERATE}`"


def test_generation_is_deterministic() -> None:
    assert asyncapi.generate() == asyncapi.generate()
    for content in asyncapi.generate().values():
        assert content.endswith("}\n")
        assert content == asyncapi.render(json.loads(content))


def test_write_then_check(tmp_path: Path) -> None:
    generated = sorted(asyncapi.generate())
    assert sorted(asyncapi.check(tmp_path)) == generated
    written = asyncapi.write(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == generated
    assert asyncapi.check(tmp_path) == []
    (tmp_path / asyncapi.ASYNCAPI_FILE).write_text("{}\n")
    assert asyncapi.check(tmp_path) == [asyncapi.ASYNCAPI_FILE]


def test_the_cli_writes_checks_and_finds_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    out = ["proto", "--out", str(tmp_path)]
    assert runner.invoke(main, [*out, "--check"]).exit_code == 1
    assert runner.invoke(main, out).exit_code == 0
    assert runner.invoke(main, [*out, "--check"]).exit_code == 0
    assert asyncapi.find_root(ROOT / "src" / "sessiond") == ROOT
    monkeypatch.chdir(tmp_path)
    lost = runner.invoke(main, ["proto"])
    assert lost.exit_code == 2
    assert "pass --out" in lost.output


# --- the JSON Schema ---------------------------------------------------------------------


def test_schema_header() -> None:
    schema = _schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:sessiond:proto:revocation-event:v{events.VERSION}"
    assert schema["title"]
    assert schema["description"]


def test_schema_has_every_kind_with_the_struct_fields() -> None:
    schema = _schema()
    mapping = schema["discriminator"]["mapping"]
    assert schema["discriminator"]["propertyName"] == "kind"
    assert set(mapping) == set(typing.get_args(Kind)) == set(asyncapi.kinds())
    assert len(schema["anyOf"]) == len(asyncapi.event_types())
    for cls in asyncapi.event_types():
        kind = asyncapi.kind_of_type(cls)
        body = schema["$defs"][mapping[kind].rsplit("/", 1)[1]]
        assert body["properties"]["kind"] == {"enum": [kind]}
        assert set(body["properties"]) == {"kind", *cls.__struct_fields__}
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        required_fields = {f.name for f in info.fields if f.required}
        assert set(body["required"]) == {"kind", *required_fields}


@pytest.mark.parametrize(
    "event", asyncapi.example_events(), ids=lambda e: asyncapi.kind_of_type(type(e))
)
def test_schema_accepts_real_encoded_events(event: Revocation) -> None:
    payload = json.loads(events.encode(event))
    assert _valid(_schema(), payload)
    assert events.decode(events.encode(event)) == event


def test_schema_examples_are_real_events() -> None:
    examples = _schema()["examples"]
    assert [e["kind"] for e in examples] == list(asyncapi.kinds())
    for example in examples:
        assert _valid(_schema(), example)
        event = msgspec.json.decode(json.dumps(example).encode(), type=Revocation)
        assert json.loads(events.encode(event)) == example


def _wrong_payloads() -> list[tuple[str, Any]]:
    token, session, subject, everything = (
        json.loads(events.encode(e)) for e in asyncapi.example_events()
    )
    return [
        ("unknown kind", {**token, "kind": "device"}),
        ("no kind", {k: v for k, v in token.items() if k != "kind"}),
        ("token without jti", {k: v for k, v in token.items() if k != "jti"}),
        ("session without expires_at", {k: v for k, v in session.items() if k != "expires_at"}),
        ("subject with a string not_before", {**subject, "not_before": "yesterday"}),
        ("all without id", {k: v for k, v in everything.items() if k != "id"}),
        ("reason too long", {**session, "reason": "x" * 201}),
        ("at as a string", {**everything, "at": "now"}),
        ("not an object", [token]),
    ]


@pytest.mark.parametrize(("why", "payload"), _wrong_payloads(), ids=lambda v: str(v)[:30])
def test_schema_and_decoder_both_reject_a_wrong_event(why: str, payload: Any) -> None:
    assert not _valid(_schema(), payload), why
    with pytest.raises(msgspec.ValidationError):
        events.decode(json.dumps(payload).encode())


def test_unknown_members_are_accepted_by_both() -> None:
    payload = {**json.loads(events.encode(asyncapi.example_events()[0])), "future": 1}
    assert _valid(_schema(), payload)
    events.decode(json.dumps(payload).encode())


# --- the AsyncAPI document ---------------------------------------------------------------


def test_asyncapi_has_one_channel_per_kind_and_the_receipts_channel() -> None:
    doc = _asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["version"] == str(events.VERSION)
    assert doc["defaultContentType"] == "application/json"
    assert set(doc["channels"]) == {*asyncapi.kinds(), RECEIPTS}
    for kind in asyncapi.kinds():
        assert doc["channels"][kind]["address"] == f"sessiond.revocations.{kind}"


def test_asyncapi_operations_send_and_receive_every_channel() -> None:
    doc = _asyncapi()
    assert len(doc["operations"]) == 2 * len(doc["channels"])
    for action in ("send", "receive"):
        channels = {
            op["channel"]["$ref"] for op in doc["operations"].values() if op["action"] == action
        }
        assert channels == {f"#/channels/{name}" for name in (*asyncapi.kinds(), RECEIPTS)}
    for op in doc["operations"].values():
        for ref in op["messages"]:
            assert _resolve(doc, ref["$ref"]) is not None


def test_asyncapi_messages_use_the_derived_schemas() -> None:
    doc, schema = _asyncapi(), _schema()
    for kind in asyncapi.kinds():
        (ref,) = doc["channels"][kind]["messages"].values()
        message = _resolve(doc, ref["$ref"])
        payload_schema = _resolve(doc, message["payload"]["$ref"])
        assert payload_schema == schema["$defs"][message["name"]]
        headers = _resolve(doc, message["headers"]["$ref"])
        assert headers["required"] == ["Nats-Msg-Id", "Sessiond-Signature"]
        (example,) = message["examples"]
        event = msgspec.json.decode(json.dumps(example["payload"]).encode(), type=Revocation)
        assert asyncapi.kind_of_type(type(event)) == kind
        assert example["headers"] == asyncapi.example_headers(event)
        assert example["headers"]["Nats-Msg-Id"] == event.id
        assert _valid(payload_schema, example["payload"])
        assert _valid(headers, example["headers"])


@pytest.mark.parametrize(
    "settings", [Settings(), Settings(nats_subject="acme.rev")], ids=["default", "other"]
)
def test_receipts_channel_address_is_the_receipts_subject(settings: Settings) -> None:
    channel = asyncapi.asyncapi(settings)["channels"][RECEIPTS]
    assert channel["address"] == StreamSpec.from_settings(settings).receipts_subject("{identity}")
    assert channel["address"] == f"{settings.nats_subject}-applied.{{identity}}"
    assert "identity" in channel["parameters"]


def _receipt_message(doc: dict[str, Any]) -> dict[str, Any]:
    (ref,) = doc["channels"][RECEIPTS]["messages"].values()
    message: dict[str, Any] = _resolve(doc, ref["$ref"])
    return message


def test_receipt_message_uses_the_derived_schema() -> None:
    doc = _asyncapi()
    message = _receipt_message(doc)
    assert message["name"] == "Receipt"
    assert "headers" not in message
    payload_schema = _resolve(doc, message["payload"]["$ref"])
    derived = msgspec.json.schema(Receipt)["$defs"]["Receipt"]
    assert _undescribed(payload_schema) == _undescribed(derived)
    assert set(payload_schema["properties"]) == set(Receipt.__struct_fields__)
    assert set(payload_schema["required"]) == {"follower", "seq"}


def test_receipt_example_validates_and_decodes() -> None:
    doc = _asyncapi()
    message = _receipt_message(doc)
    payload_schema = _resolve(doc, message["payload"]["$ref"])
    (example,) = message["examples"]
    assert _valid(payload_schema, example["payload"])
    receipt = msgspec.json.decode(json.dumps(example["payload"]).encode(), type=Receipt)
    assert receipt == asyncapi.example_receipt()
    assert not receipt.leaving


@pytest.mark.parametrize(
    "payload",
    [
        {"seq": 1},
        {"follower": "", "seq": 1},
        {"follower": "x" * 129, "seq": 1},
        {"follower": "f", "seq": -1},
        {"follower": "f", "seq": "1"},
        {"follower": "f", "seq": 1, "leaving": "yes"},
    ],
    ids=lambda p: json.dumps(p)[:30],
)
def test_schema_and_decoder_both_reject_a_wrong_receipt(payload: Any) -> None:
    doc = _asyncapi()
    assert not _valid(_resolve(doc, _receipt_message(doc)["payload"]["$ref"]), payload)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(json.dumps(payload).encode(), type=Receipt)


def test_receipt_operations_send_by_verifiers_receive_by_the_authority() -> None:
    doc = _asyncapi()
    on_receipts = {
        op["action"]: op
        for op in doc["operations"].values()
        if op["channel"]["$ref"] == f"#/channels/{RECEIPTS}"
    }
    assert set(on_receipts) == {"send", "receive"}
    assert on_receipts["send"]["tags"] == [{"name": "verifier"}]
    assert on_receipts["receive"]["tags"] == [{"name": "authority"}]
    for op in on_receipts.values():
        (ref,) = op["messages"]
        assert _resolve(doc, ref["$ref"]) == {"$ref": "#/components/messages/Receipt"}
    receive = on_receipts["receive"]["summary"]
    assert f"{PRESENCE:g} s" in receive
    assert f"{CONFIRM_WAIT:g} s" in receive
    assert "`leaving`" in on_receipts["send"]["summary"]


def test_asyncapi_stream_settings_come_from_settings() -> None:
    settings = Settings()
    stream = _asyncapi()["x-sessiond-stream"]
    assert stream["name"] == settings.nats_stream
    assert stream["subjects"] == [f"{settings.nats_subject}.>"]
    assert stream["max_age_seconds"] == settings.stream_max_age
    assert stream["duplicate_window_seconds"] == min(120, settings.stream_max_age)
    assert stream["storage"] == "file"
    assert stream["discard"] == "new"
    assert stream["max_bytes"] == 1024**3
    assert stream["replicas"] == settings.nats_replicas
    assert stream["server"] == {"jetstream": {"sync_interval": "always"}}


def test_other_settings_give_other_documents() -> None:
    settings = Settings(access_ttl=30, leeway=0, nats_subject="acme.rev", nats_replicas=3)
    doc = asyncapi.asyncapi(settings)
    assert doc["x-sessiond-stream"]["max_age_seconds"] == 90
    assert doc["x-sessiond-stream"]["duplicate_window_seconds"] == 90
    assert doc["x-sessiond-stream"]["replicas"] == 3
    assert doc["channels"]["token"]["address"] == "acme.rev.token"
    assert doc["channels"][RECEIPTS]["address"] == "acme.rev-applied.{identity}"
    assert StreamSpec.from_settings(settings).max_age == settings.stream_max_age


def test_readme_names_what_an_implementer_needs() -> None:
    readme = (ROOT / "proto" / "README.md").read_text(encoding="utf-8")
    settings = Settings()
    for needle in (
        *(Path(name).name for name in asyncapi.generate()),
        settings.nats_stream,
        f"{settings.nats_subject}.<kind>",
        StreamSpec.from_settings(settings).receipts_subject("<identity>"),
        "## Receipts",
        "Nats-Msg-Id",
        "/.well-known/jwks.json",
        "at+jwt",
        "sync_interval: always",
        f"{settings.stream_max_age} s",
        "sessiond proto",
    ):
        assert needle in readme, f"proto/README.md does not mention {needle!r}"


def _valid(schema: dict[str, Any], value: Any) -> bool:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return bool(validator.is_valid(value))


def _undescribed(node: Any) -> Any:
    """``node`` without its ``description`` members (the documents render them as prose)."""
    if isinstance(node, dict):
        return {k: _undescribed(v) for k, v in node.items() if k != "description"}
    return node


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


# --- the event signature's test vector ------------------------------------------------------


def _vector() -> dict[str, Any]:
    vector: dict[str, Any] = json.loads((ROOT / asyncapi.VECTOR_FILE).read_text(encoding="utf-8"))
    return vector


def _joserfc_verifies(vector: dict[str, Any], payload: str) -> bool:
    """An independent JWS implementation's verdict on the vector's signature over ``payload``."""
    import warnings

    from joserfc import jws
    from joserfc.errors import BadSignatureError
    from joserfc.jwk import OKPKey

    protected, _, signature = vector["signature"].partition("..")
    content = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    key = OKPKey.import_key(vector["public_jwk"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc calls the EdDSA name deprecated (RFC 9864)
            jws.deserialize_compact(f"{protected}.{content}.{signature}", key, algorithms=["EdDSA"])
    except BadSignatureError:
        return False
    return True


def test_an_independent_implementation_verifies_the_vector() -> None:
    vector = _vector()
    assert vector["protected_header"]["typ"] == "sessiond-event+jws"
    assert vector["public_jwk"]["kty"] == "OKP"
    assert _joserfc_verifies(vector, vector["payload"])
    assert not _joserfc_verifies(vector, vector["payload"].replace('"all"', '"ALL"'))


async def test_sessiond_verifies_the_vector_and_applies_its_event() -> None:
    vector = _vector()
    keys = PublishedKeys.from_jwks({"keys": [vector["public_jwk"]]})

    class Published:
        def current(self) -> PublishedKeys:
            return keys

        async def refresh(self) -> bool:
            return False

        fetched_at = float("inf")  # these keys are the whole truth

    verifier = EventVerifier(Published(), retain=0)
    event = await verifier.event(vector["payload"].encode(), vector["signature"], 0.0)
    assert isinstance(event, events.AllRevoked)
