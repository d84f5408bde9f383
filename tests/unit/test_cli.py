"""The command line: keys and credentials are managed from files, secrets are printed once and
private material never, and every error is one line on stderr with exit code 2."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sessiond.cli import main
from sessiond.credentials.store import CredentialSet
from sessiond.tokens.keys import Keyset, SigningKey

ENV_CLEAR: dict[str, str | None] = {
    "SESSIOND_KEYSET_FILE": None,
    "SESSIOND_CREDENTIALS_FILE": None,
    "SESSIOND_ACCESS_TTL": None,
    "SESSIOND_LEEWAY": None,
}


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env={**ENV_CLEAR, **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sessiond: error: ")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def keyset_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    assert run("keys", "new", "--file", str(path)).exit_code == 0
    return path


# --- keys --------------------------------------------------------------------------------


def test_keys_new_writes_a_private_keyset(keyset_file: Path) -> None:
    keyset = Keyset.load(keyset_file)

    assert keyset.active.alg == "ES256"
    assert len(keyset.keys) == 1
    assert stat.S_IMODE(keyset_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "HS256"])
def test_keys_new_with_each_algorithm(tmp_path: Path, alg: str) -> None:
    path = tmp_path / "keys.json"

    result = run("keys", "new", "--file", str(path), "--alg", alg)

    assert result.exit_code == 0, result.output
    assert Keyset.load(path).active_kid in result.stdout
    assert Keyset.load(path).active.alg == alg


def test_keys_new_reads_the_file_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "env-keys.json"

    result = run("keys", "new", env={"SESSIOND_KEYSET_FILE": str(path)})

    assert result.exit_code == 0, result.output
    assert Keyset.load(path).active_kid in result.stdout


def test_keys_new_does_not_overwrite_without_force(keyset_file: Path) -> None:
    before = Keyset.load(keyset_file)

    refused = run("keys", "new", "--file", str(keyset_file))
    forced = run("keys", "new", "--file", str(keyset_file), "--force")

    assert_one_line_error(refused, str(keyset_file), "--force")
    assert forced.exit_code == 0
    assert Keyset.load(keyset_file).active_kid != before.active_kid


def test_keys_rotate_keeps_the_old_key_as_retired(keyset_file: Path) -> None:
    old = Keyset.load(keyset_file).active_kid

    result = run("keys", "rotate", "--file", str(keyset_file), "--delay", "0")
    keyset = Keyset.load(keyset_file)
    listing = run("keys", "list", "--file", str(keyset_file))

    assert result.exit_code == 0, result.output
    assert keyset.active_kid in result.stdout
    assert [k.kid for k in keyset.keys] == [keyset.active_kid, old]
    rows = {line.split()[0]: line.split() for line in listing.stdout.splitlines()[1:]}
    assert rows[keyset.active_kid][1:3] == ["ES256", "active"]
    assert rows[old][1:3] == ["ES256", "retired"]


def test_keys_rotate_with_a_delay_stages_the_new_key(keyset_file: Path) -> None:
    old = Keyset.load(keyset_file).active_kid

    result = run("keys", "rotate", "--file", str(keyset_file), "--delay", "120")
    keyset = Keyset.load(keyset_file)
    listing = run("keys", "list", "--file", str(keyset_file))

    assert result.exit_code == 0, result.output
    assert "signs from" in result.stdout
    rows = {line.split()[0]: line.split() for line in listing.stdout.splitlines()[1:]}
    assert rows[keyset.active_kid][1:3] == ["ES256", "staged"]
    assert rows[old][1:3] == ["ES256", "active"]


def test_keys_rotate_with_zero_retention_drops_the_old_key(keyset_file: Path) -> None:
    switch = ("--retain", "0", "--delay", "0", "--alg", "HS256")  # a family changes at once
    result = run("keys", "rotate", "--file", str(keyset_file), *switch)

    assert result.exit_code == 0, result.output
    assert [k.alg for k in Keyset.load(keyset_file).keys] == ["HS256"]


def test_keys_rotate_refuses_to_mix_hmac_and_asymmetric(keyset_file: Path) -> None:
    before = keyset_file.read_bytes()

    result = run("keys", "rotate", "--file", str(keyset_file), "--alg", "HS256")

    assert_one_line_error(result, "HS256")
    assert keyset_file.read_bytes() == before


def test_keys_list_shows_expired_keys(tmp_path: Path) -> None:
    now = time.time()
    old = SigningKey.generate("EdDSA", now - 10_000).retire(now - 9_000)
    new = SigningKey.generate("EdDSA", now)
    path = tmp_path / "keys.json"
    Keyset(active_kid=new.kid, keys=(new, old)).save(path)

    listing = run("keys", "list", "--file", str(path))

    assert listing.exit_code == 0
    assert f"{old.kid}  EdDSA  expired" in listing.stdout


@pytest.mark.parametrize("alg", ["ES256", "HS256", "RS256"])
def test_keys_list_never_prints_private_material(tmp_path: Path, alg: str) -> None:
    path = tmp_path / "keys.json"
    run("keys", "new", "--file", str(path), "--alg", alg)
    run("keys", "rotate", "--file", str(path))
    stored = json.loads(path.read_text())

    listing = run("keys", "list", "--file", str(path))

    assert listing.exit_code == 0
    assert "PRIVATE" not in listing.output
    for key in stored["keys"]:
        assert key["kid"] in listing.stdout
        private = key["private"]
        body = private.splitlines()[1] if "BEGIN" in private else private
        assert body not in listing.output


@pytest.mark.parametrize("command", ["list", "rotate"])
@pytest.mark.parametrize("content", [None, b"", b"not json", b'{"version": 1}'])
def test_bad_keyset_file_is_one_line_exit_2(
    tmp_path: Path, command: str, content: bytes | None
) -> None:
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_bytes(content)

    assert_one_line_error(run("keys", command, "--file", str(path)), str(path))


def test_missing_file_option_is_one_line_exit_2() -> None:
    assert_one_line_error(run("keys", "list"), "--file", "SESSIOND_KEYSET_FILE")


# --- credentials -------------------------------------------------------------------------


def test_credentials_new_prints_the_secret_once(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"

    result = run(
        "credentials",
        "new",
        "--name",
        "login",
        "--scopes",
        "sessions:create,sessions:read",
        "--scope",
        "tokens:introspect",
        "--file",
        str(path),
    )

    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert result.stdout == secret + "\n"
    assert secret.startswith("sdc_")
    assert "not be shown again" in result.stderr
    credential = CredentialSet.load(path).authenticate(secret)
    assert credential.name == "login"
    assert credential.scopes == ("sessions:create", "sessions:read", "tokens:introspect")
    assert secret[-43:] not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_credentials_accumulate_in_the_file(tmp_path: Path) -> None:
    env = {"SESSIOND_CREDENTIALS_FILE": str(tmp_path / "c.json")}
    first = run("credentials", "new", "--name", "a", "--scope", "sessions:read", env=env)
    second = run("credentials", "new", "--name", "b", "--scope", "sessions:revoke", env=env)

    credentials = CredentialSet.load(tmp_path / "c.json")

    assert credentials.authenticate(first.stdout.strip()).name == "a"
    assert credentials.authenticate(second.stdout.strip()).name == "b"


def test_credentials_list_shows_neither_secret_nor_hash(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    created = run(
        "credentials", "new", "--name", "svc", "--scope", "sessions:read", "--file", str(path)
    )
    stored = CredentialSet.load(path).credentials[0]

    listing = run("credentials", "list", "--file", str(path))

    assert listing.exit_code == 0
    assert stored.id in listing.stdout
    assert "svc" in listing.stdout
    assert "sessions:read" in listing.stdout
    assert stored.hash not in listing.output
    assert created.stdout.strip()[-43:] not in listing.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--name", "x", "--scopes", "sessions:create,admin"], "'admin'"),
        (["--name", "x"], "at least one scope"),
        (["--scope", "sessions:read"], "--name"),
        (["--name", "x", "--scope", "admin"], "admin"),
    ],
)
def test_credentials_new_usage_errors_are_one_line_exit_2(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    path = tmp_path / "c.json"

    result = run("credentials", "new", *args, "--file", str(path))

    assert_one_line_error(result, needle)
    assert not path.exists()


def test_credentials_new_refuses_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{")

    result = run(
        "credentials", "new", "--name", "x", "--scope", "sessions:read", "--file", str(path)
    )

    assert_one_line_error(result, str(path))
    assert result.stdout == ""
    assert path.read_text() == "{"


def test_credentials_list_of_a_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run("credentials", "list", "--file", str(tmp_path / "nope.json"))

    assert_one_line_error(result, "nope.json")


# --- the group ---------------------------------------------------------------------------


def test_unknown_command_is_one_line_exit_2() -> None:
    assert_one_line_error(run("frobnicate"), "frobnicate")


def test_help_and_version_exit_0() -> None:
    assert run("--help").exit_code == 0
    assert run("keys", "--help").exit_code == 0
    version = run("--version")
    assert version.exit_code == 0
    assert "0.1.0" in version.stdout
