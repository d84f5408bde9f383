"""Service credentials: a secret authenticates only its own credential, is shown once and
never stored, errors never echo it, scopes are enforced, and the file is safe and strict."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from pathlib import Path

import pytest

from sessiond.credentials.store import ALL_SCOPES, CredentialSet, parse_scopes
from sessiond.errors import ConfigError, InsufficientScope, InvalidCredential

NOW = 1_800_000_000.0
SECRET_FORMAT = re.compile(r"sdc_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@pytest.fixture
def issued() -> tuple[str, CredentialSet]:
    return CredentialSet().issue("login-backend", ["sessions:create", "sessions:read"], NOW)


def test_issued_secret_authenticates_its_credential(issued: tuple[str, CredentialSet]) -> None:
    secret, credentials = issued

    credential = credentials.authenticate(secret)

    assert credential.name == "login-backend"
    assert credential.scopes == ("sessions:create", "sessions:read")
    assert credential.created_at == NOW


def test_secret_has_the_documented_format_and_256_bits(issued: tuple[str, CredentialSet]) -> None:
    secret, credentials = issued
    match = SECRET_FORMAT.fullmatch(secret)

    assert match is not None
    assert match.group(1) == credentials.credentials[0].id
    assert len(match.group(2)) * 6 >= 256


def test_only_the_hash_of_the_secret_is_kept(
    issued: tuple[str, CredentialSet], tmp_path: Path
) -> None:
    secret, credentials = issued
    match = SECRET_FORMAT.fullmatch(secret)
    assert match is not None
    raw = match.group(2)
    path = tmp_path / "credentials.json"

    credentials.save(path)

    assert credentials.credentials[0].hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in path.read_text()
    assert raw not in repr(credentials)


def test_secrets_are_unique_and_bound_to_their_own_id() -> None:
    first, credentials = CredentialSet().issue("a", ["sessions:read"], NOW)
    second, credentials = credentials.issue("b", ["sessions:revoke"], NOW)
    first_id, second_id = (c.id for c in credentials.credentials)

    assert credentials.authenticate(first).name == "a"
    assert credentials.authenticate(second).name == "b"
    swapped = second.replace(second_id, first_id)
    with pytest.raises(InvalidCredential):
        credentials.authenticate(swapped)


def _variants(secret: str) -> list[str]:
    body = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    return [
        body,
        secret[:-1],
        secret + "A",
        secret.upper(),
        secret.replace("sdc_", "sdx_"),
        "sdc_0000000000000000_" + secret[-43:],
        " " + secret,
        secret + "\n",
        "Bearer " + secret,
        "",
        "sdc__",
        "x" * 10_000,
        "sdc_" + "é" * 16 + "_" + secret[-43:],
    ]


def test_wrong_or_malformed_secret_is_refused_without_echo(
    issued: tuple[str, CredentialSet],
) -> None:
    secret, credentials = issued

    for presented in _variants(secret):
        with pytest.raises(InvalidCredential) as info:
            credentials.authenticate(presented)
        detail = info.value.detail
        assert not presented or presented not in detail
        assert secret[-43:] not in detail
        assert secret[-43:] not in str(info.value)


def test_unknown_credential_in_an_empty_set_is_refused() -> None:
    secret, _ = CredentialSet.ephemeral()

    with pytest.raises(InvalidCredential, match="unknown or invalid"):
        CredentialSet().authenticate(secret)


def test_require_enforces_scopes(issued: tuple[str, CredentialSet]) -> None:
    secret, credentials = issued
    credential = credentials.authenticate(secret)

    credential.require("sessions:create")
    assert credential.has("sessions:read")
    assert not credential.has("sessions:revoke")
    with pytest.raises(InsufficientScope, match="sessions:revoke"):
        credential.require("sessions:revoke")


def test_ephemeral_credential_has_every_scope() -> None:
    secret, credentials = CredentialSet.ephemeral()

    credential = credentials.authenticate(secret)

    assert credential.scopes == ALL_SCOPES
    for scope in ALL_SCOPES:
        credential.require(scope)


def test_scopes_are_validated_deduplicated_and_ordered() -> None:
    assert parse_scopes(["tokens:introspect", " sessions:create", "tokens:introspect", ""]) == (
        "sessions:create",
        "tokens:introspect",
    )
    with pytest.raises(ConfigError, match="'sessions:delete'"):
        parse_scopes(["sessions:create", "sessions:delete"])
    with pytest.raises(ConfigError, match="at least one scope"):
        parse_scopes(["", " "])
    with pytest.raises(ConfigError):
        CredentialSet().issue("x", [], NOW)


@pytest.mark.parametrize("name", ["", "x" * 201])
def test_bad_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="name"):
        CredentialSet().issue(name, ["sessions:read"], NOW)


def test_save_load_round_trip_with_mode_0600(
    issued: tuple[str, CredentialSet], tmp_path: Path
) -> None:
    secret, credentials = issued
    path = tmp_path / "credentials.json"
    path.write_text("old")
    path.chmod(0o644)

    credentials.save(path)
    loaded = CredentialSet.load(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert loaded == credentials
    assert loaded.authenticate(secret).name == "login-backend"
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]


def _record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": "0123456789abcdef",
        "name": "n",
        "scopes": ["sessions:read"],
        "hash": "0" * 64,
        "created_at": NOW,
        **changes,
    }
    return record


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"[]",
        b'{"version": 2, "credentials": []}',
        json.dumps({"version": 1, "credentials": [_record(scopes=["admin"])]}).encode(),
        json.dumps({"version": 1, "credentials": [_record(scopes=[])]}).encode(),
        json.dumps({"version": 1, "credentials": [_record(hash="secret")]}).encode(),
        json.dumps({"version": 1, "credentials": [_record(id="ZZ")]}).encode(),
        json.dumps({"version": 1, "credentials": [_record(secret="s")]}).encode(),
        json.dumps({"version": 1, "credentials": [_record(), _record()]}).encode(),
    ],
)
def test_corrupt_credentials_file_raises_one_line_config_error(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "credentials.json"
    path.write_bytes(content)

    with pytest.raises(ConfigError) as info:
        CredentialSet.load(path)

    assert info.value.detail.startswith(f"{path}: ")
    assert "\n" not in info.value.detail


def test_missing_credentials_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read credentials file"):
        CredentialSet.load(tmp_path / "missing.json")


def test_save_to_a_missing_directory_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write credentials file"):
        CredentialSet.ephemeral()[1].save(tmp_path / "no" / "credentials.json")
