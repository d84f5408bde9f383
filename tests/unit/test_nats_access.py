"""NATS credentials and TLS settings: one method at most, files checked at start, the options
handed to ``nats.connect``, and what the connection log says (never a secret)."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import nats
import nkeys
import pytest

from sessiond.broadcast.access import VERIFY_FAILED_HINT, NatsAccess
from sessiond.broadcast.stream import _ConnectionLog
from sessiond.cluster.tls import make_test_pki
from sessiond.errors import ConfigError
from sessiond.settings import Settings
from sessiond.verifier.settings import VerifierSettings
from support.secrets import register

VERIFIER = {"SESSIOND_NATS_URL": "nats://127.0.0.1:4222", "SESSIOND_JWKS_URL": "http://a/jwks"}


@pytest.mark.parametrize(
    "env",
    [
        {"SESSIOND_NATS_USER": "a", "SESSIOND_NATS_PASSWORD": "p", "SESSIOND_NATS_TOKEN": "t"},
        {"SESSIOND_NATS_TOKEN": "t", "SESSIOND_NATS_CREDS_FILE": "/x.creds"},
        {"SESSIOND_NATS_CREDS_FILE": "/x.creds", "SESSIOND_NATS_NKEY_FILE": "/x.nk"},
    ],
    ids=["user+token", "token+creds", "creds+nkey"],
)
@pytest.mark.parametrize("kind", [Settings, VerifierSettings])
def test_at_most_one_credential_method(
    env: dict[str, str], kind: type[Settings | VerifierSettings]
) -> None:
    with pytest.raises(ConfigError, match="set one NATS credential"):
        kind.load({**VERIFIER, **env} if kind is VerifierSettings else env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SESSIOND_NATS_USER": "a"}, "SESSIOND_NATS_USER and SESSIOND_NATS_PASSWORD"),
        ({"SESSIOND_NATS_PASSWORD": "p"}, "SESSIOND_NATS_USER and SESSIOND_NATS_PASSWORD"),
        ({"SESSIOND_NATS_TLS_CERT": "/c.pem"}, "SESSIOND_NATS_TLS_CERT and SESSIOND_NATS_TLS_KEY"),
        ({"SESSIOND_NATS_IDENTITY": "a.b"}, "SESSIOND_NATS_IDENTITY"),
    ],
)
def test_incomplete_or_wrong_nats_settings_are_one_clear_error(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(env)


def test_identity_is_the_setting_else_the_user_else_anonymous() -> None:
    assert Settings.load({}).nats_client_identity == "anonymous"
    user = {"SESSIOND_NATS_USER": "backend", "SESSIOND_NATS_PASSWORD": "p"}
    assert Settings.load(user).nats_client_identity == "backend"
    named = {**user, "SESSIOND_NATS_IDENTITY": "backend-7"}
    assert Settings.load(named).nats_client_identity == "backend-7"


def test_the_options_carry_the_credentials_and_a_tls_context(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path)
    settings = Settings.load(
        {
            "SESSIOND_NATS_USER": "authority",
            "SESSIOND_NATS_PASSWORD": "s3cret-pw",
            "SESSIOND_NATS_TLS_CA": str(pki.ca_file),
            "SESSIOND_NATS_TLS_CERT": str(pki.cert_file),
            "SESSIOND_NATS_TLS_KEY": str(pki.key_file),
        }
    )
    access = NatsAccess.from_settings(settings)
    assert access.identity == "authority"
    assert access.options["user"] == "authority"
    assert access.options["password"] == "s3cret-pw"
    context = access.options["tls"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert "s3cret-pw" not in repr(access)
    assert NatsAccess.from_settings(Settings.load({"SESSIOND_NATS_TOKEN": "t"})).options == {
        "token": "t"
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("SESSIOND_NATS_TLS_CA", "SESSIOND_NATS_TLS_CA: cannot load"),
        ("SESSIOND_NATS_CREDS_FILE", "SESSIOND_NATS_CREDS_FILE: cannot read"),
        ("SESSIOND_NATS_NKEY_FILE", "SESSIOND_NATS_NKEY_FILE: cannot read"),
    ],
)
def test_a_missing_file_is_a_config_error_naming_its_setting(
    tmp_path: Path, name: str, message: str
) -> None:
    settings = Settings.load({name: str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match=message):
        NatsAccess.from_settings(settings)


def new_seed(prefix: int = nkeys.PREFIX_BYTE_USER) -> str:
    seed: str = nkeys.encode_seed(os.urandom(32), prefix).decode()
    register("NATS nkey seed", seed)
    return seed


def test_an_nkey_seed_or_creds_file_is_handed_to_nats_py(tmp_path: Path) -> None:
    seed = new_seed()
    (tmp_path / "user.nk").write_text(seed + "\n")
    (tmp_path / "user.creds").write_text(
        "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.c2ln\n------END NATS USER JWT------"
        f"\n\n-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
    nkey = Settings.load({"SESSIOND_NATS_NKEY_FILE": str(tmp_path / "user.nk")})
    assert NatsAccess.from_settings(nkey).options == {"nkeys_seed": str(tmp_path / "user.nk")}
    creds = Settings.load({"SESSIOND_NATS_CREDS_FILE": str(tmp_path / "user.creds")})
    assert NatsAccess.from_settings(creds).options == {
        "user_credentials": str(tmp_path / "user.creds")
    }


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("SESSIOND_NATS_NKEY_FILE", "not-a-seed", "holds no nkey seed"),
        ("SESSIOND_NATS_NKEY_FILE", "ACCOUNT", "holds an nkey seed that is not a user's"),
        ("SESSIOND_NATS_NKEY_FILE", "PUBLIC", "holds no nkey seed"),
        ("SESSIOND_NATS_CREDS_FILE", "USER", "holds no NATS user JWT"),
        (
            "SESSIOND_NATS_CREDS_FILE",
            "-----BEGIN NATS USER JWT-----\na.b.c\n------END NATS USER JWT------\n",
            "holds no nkey seed",
        ),
    ],
    ids=["garbage", "account-seed", "public-key", "creds-without-jwt", "creds-without-seed"],
)
def test_a_file_without_a_user_seed_is_a_config_error_that_hides_it(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    user = new_seed()
    text = {
        "ACCOUNT": new_seed(nkeys.PREFIX_BYTE_ACCOUNT),
        "PUBLIC": nkeys.from_seed(user.encode()).public_key.decode(),
        "USER": user,
    }.get(text, text)
    (tmp_path / "file").write_text(text)
    settings = Settings.load({name: str(tmp_path / "file")})
    with pytest.raises(ConfigError, match=message) as raised:
        NatsAccess.from_settings(settings)
    assert name in str(raised.value)
    assert text not in str(raised.value)


async def test_the_connection_log_names_the_ca_setting_once_and_hides_url_passwords(
    caplog: pytest.LogCaptureFixture,
) -> None:
    register("NATS password", "url-pw-123")
    events = _ConnectionLog("test", "tls://user:url-pw-123@127.0.0.1:4222")
    wrong_ca = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrong_ca.verify_message = "unable to get local issuer certificate"
    with caplog.at_level(logging.DEBUG, logger="sessiond.broadcast"):
        for _ in range(3):
            await events.error(wrong_ca)
        # A first connect's refusal is a plain Error, a reconnect's an AuthorizationError.
        for _ in range(3):
            await events.error(nats.errors.Error("nats: 'Authorization Violation'"))
        await events.error(nats.errors.AuthorizationError())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3  # the CA once, then each text of the refused credentials once
    assert VERIFY_FAILED_HINT in errors[0].getMessage()
    assert "tls://127.0.0.1:4222" in errors[0].getMessage()
    assert "url-pw-123" not in caplog.text
