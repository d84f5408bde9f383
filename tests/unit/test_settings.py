"""Settings from the environment: typed values, and one clear line for a wrong one."""

from __future__ import annotations

import pytest

from sessiond.errors import ConfigError
from sessiond.settings import Settings


def test_defaults_are_the_embedded_mode() -> None:
    settings = Settings.load({})
    assert settings.embedded
    assert settings.access_ttl == 300
    assert settings.key_algorithm == "ES256"


def test_values_come_from_sessiond_variables_and_overrides_win() -> None:
    env = {"SESSIOND_PORT": "9000", "SESSIOND_REFRESH_GRACE": "2.5", "OTHER": "x"}
    settings = Settings.load(env, {"host": "::1", "port": None})
    assert settings.port == 9000
    assert settings.refresh_grace == 2.5
    assert settings.host == "::1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SESSIOND_PORT": "eighty"}, "SESSIOND_PORT: Expected `int`"),
        ({"SESSIOND_PORT": "70000"}, "SESSIOND_PORT: Expected `int` <= 65535"),
        ({"SESSIOND_ACCESS_TTL": "0"}, "SESSIOND_ACCESS_TTL: Expected `int` >= 1"),
        (
            {"SESSIOND_KEY_ALGORITHM": "HS512"},
            "SESSIOND_KEY_ALGORITHM: Invalid enum value 'HS512' (expected one of: ES256, EdDSA",
        ),
        ({"SESSIOND_LOG_LEVEL": "loud"}, "expected one of: debug, info, warning, error"),
        ({"SESSIOND_PROT": "1"}, "SESSIOND_PROT: unknown setting"),
        (
            {"SESSIOND_REFRESH_IDLE_TTL": "100", "SESSIOND_REFRESH_ABSOLUTE_TTL": "10"},
            "SESSIOND_REFRESH_IDLE_TTL must not exceed SESSIOND_REFRESH_ABSOLUTE_TTL",
        ),
        ({"SESSIOND_REDIS_URL": "redis://x"}, "SESSIOND_KEYSET_FILE and SESSIOND_CREDENTIALS_FILE"),
    ],
)
def test_a_wrong_value_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
