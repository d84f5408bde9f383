"""Signing keys and keysets: every algorithm works, rotation keeps old tokens valid for exactly
the retention window, the JWKS leaks nothing private, and the keyset file is safe and strict."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, get_args

import jwt
import pytest

from sessiond.errors import ConfigError, InvalidToken
from sessiond.settings import Algorithm
from sessiond.tokens.access import AccessTokenDecoder, sign_access_token
from sessiond.tokens.keys import Keyset, SigningKey

NOW = 1_800_000_000.0
RETAIN = 305.0
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def sign(key: SigningKey, now: float = NOW) -> str:
    token, _ = sign_access_token(
        key, issuer="iss", audience="aud", sub="user", sid="sid", ttl=300, now=now
    )
    return token


def decoder(keyset: Keyset) -> AccessTokenDecoder:
    return AccessTokenDecoder(
        lambda: keyset, issuer="iss", audience="aud", leeway=5, max_bytes=8192, retain=RETAIN
    )


@pytest.fixture(scope="module", params=ALGORITHMS)
def keyset(request: pytest.FixtureRequest) -> Keyset:
    alg: Algorithm = request.param
    return Keyset.generate(alg, NOW)


def test_every_algorithm_signs_and_verifies(keyset: Keyset) -> None:
    claims = decoder(keyset).decode(sign(keyset.active), now=NOW + 1)

    assert claims.sub == "user"
    header = jwt.get_unverified_header(sign(keyset.active))
    assert header == {"alg": keyset.active.alg, "typ": "at+jwt", "kid": keyset.active_kid}


def test_pyjwt_verifies_with_the_key_objects(keyset: Keyset) -> None:
    key = keyset.active
    token = jwt.encode({"x": 1}, key.private, algorithm=key.alg)

    assert jwt.decode(token, key.public, algorithms=[key.alg]) == {"x": 1}


def test_generated_keys_have_fresh_short_urlsafe_ids() -> None:
    kids = {SigningKey.generate("EdDSA", NOW).kid for _ in range(50)}

    assert len(kids) == 50
    assert all(len(kid) == 16 and kid.replace("-", "").replace("_", "").isalnum() for kid in kids)


def test_hs256_secret_is_at_least_256_bits_and_not_in_repr() -> None:
    key = SigningKey.generate("HS256", NOW)

    assert isinstance(key.private, bytes)
    assert len(key.private) >= 32
    assert key.private == key.public
    assert repr(key.private) not in repr(key)
    assert repr(key.private) not in repr(Keyset(active_kid=key.kid, keys=(key,)))


def test_rotate_keeps_old_key_verifying_inside_the_window_only() -> None:
    first = Keyset.generate("ES256", NOW)
    old_token = sign(first.active, now=NOW)
    rotated = first.rotate(NOW + 10, retain=RETAIN)

    assert rotated.active_kid != first.active_kid
    assert rotated.active.alg == "ES256"
    assert decoder(rotated).decode(old_token, now=NOW + 10).sub == "user"
    assert rotated.verification_key(first.active_kid, NOW + 10 + RETAIN - 1, RETAIN) is not None
    assert rotated.verification_key(first.active_kid, NOW + 10 + RETAIN, RETAIN) is None
    assert decoder(rotated).decode(sign(rotated.active, NOW + 10), now=NOW + 11).sub == "user"


def test_a_staged_rotation_verifies_at_once_and_signs_only_after_the_delay(tmp_path: Path) -> None:
    first = Keyset.generate("ES256", NOW)
    old, delay = first.active, 120.0
    staged = first.rotate(NOW, retain=RETAIN, delay=delay)
    Keyset.save(staged, tmp_path / "k.json")
    staged = Keyset.load(tmp_path / "k.json")
    new = staged.active
    assert staged.signing_key(NOW + delay - 1).kid == old.kid
    assert staged.signing_key(NOW + delay).kid == new.kid
    assert staged.status(new, NOW, RETAIN) == "staged"
    assert staged.status(staged.signing_key(NOW), NOW, RETAIN) == "active"
    assert staged.status(new, NOW + delay, RETAIN) == "active"
    assert {k["kid"] for k in staged.jwks(NOW, RETAIN)["keys"]} == {old.kid, new.kid}
    assert staged.verification_key(new.kid, NOW, RETAIN) is not None
    assert staged.verification_key(old.kid, NOW + delay + RETAIN - 1, RETAIN) is not None
    assert staged.verification_key(old.kid, NOW + delay + RETAIN, RETAIN) is None


def test_rotate_drops_keys_retired_longer_than_retain() -> None:
    first = Keyset.generate("EdDSA", NOW)
    second = first.rotate(NOW, retain=RETAIN)
    third = second.rotate(NOW + RETAIN - 1, retain=RETAIN)
    fourth = third.rotate(NOW + RETAIN + 1, retain=RETAIN)

    assert [k.kid for k in third.keys] == [third.active_kid, second.active_kid, first.active_kid]
    assert first.active_kid not in {k.kid for k in fourth.keys}
    assert {k.kid for k in fourth.keys} == {fourth.active_kid, third.active_kid, second.active_kid}


def test_token_of_a_dropped_key_is_rejected() -> None:
    first = Keyset.generate("ES256", NOW)
    token = sign(first.active, now=NOW)
    rotated = first.rotate(NOW + 1, retain=0)

    with pytest.raises(InvalidToken, match="unknown signing key"):
        decoder(rotated).decode(token, now=NOW + 2)


def test_rotate_can_change_algorithm_within_the_asymmetric_family() -> None:
    rotated = Keyset.generate("ES256", NOW).rotate(NOW, "EdDSA", retain=RETAIN)

    assert rotated.active.alg == "EdDSA"
    assert {k.alg for k in rotated.keys} == {"ES256", "EdDSA"}


def test_mixing_hs256_and_asymmetric_keys_is_refused() -> None:
    es = SigningKey.generate("ES256", NOW)
    hs = SigningKey.generate("HS256", NOW).retire(NOW)

    with pytest.raises(ConfigError, match="HS256"):
        Keyset(active_kid=es.kid, keys=(es, hs))
    with pytest.raises(ConfigError, match="HS256"):
        Keyset(active_kid=es.kid, keys=(es,)).rotate(NOW, "HS256", retain=RETAIN)
    with pytest.raises(ConfigError, match="HS256"):
        Keyset.generate("HS256", NOW).rotate(NOW, "RS256", retain=RETAIN)


def test_switching_family_works_when_nothing_is_retained() -> None:
    switched = Keyset.generate("ES256", NOW).rotate(NOW, "HS256", retain=0)

    assert [k.alg for k in switched.keys] == ["HS256"]


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda a, b: Keyset(active_kid="nope", keys=(a,)), id="unknown-active"),
        pytest.param(lambda a, b: Keyset(active_kid=a.kid, keys=(a, a.retire(NOW))), id="dup"),
        pytest.param(lambda a, b: Keyset(active_kid=a.kid, keys=(a, b)), id="two-unretired"),
        pytest.param(
            lambda a, b: Keyset(active_kid=a.kid, keys=(a.retire(NOW),)), id="active-retired"
        ),
    ],
)
def test_inconsistent_keysets_are_refused(build: Any) -> None:
    a, b = SigningKey.generate("EdDSA", NOW), SigningKey.generate("EdDSA", NOW)

    with pytest.raises(ConfigError):
        build(a, b)


def test_jwks_publishes_public_keys_only(keyset: Keyset) -> None:
    jwks = keyset.rotate(NOW, retain=RETAIN).jwks(NOW + 1, RETAIN)

    if keyset.active.alg == "HS256":
        assert jwks == {"keys": []}
        return
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert PRIVATE_JWK_MEMBERS.isdisjoint(jwk), jwk
        assert jwk["use"] == "sig"
        assert jwk["alg"] == keyset.active.alg
        assert {"kid", "kty"} <= set(jwk)
        assert "key_ops" not in jwk


def test_jwks_omits_keys_outside_their_window() -> None:
    first = Keyset.generate("ES256", NOW)
    rotated = first.rotate(NOW, retain=RETAIN)

    kids = [jwk["kid"] for jwk in rotated.jwks(NOW + RETAIN, RETAIN)["keys"]]

    assert kids == [rotated.active_kid]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_jwks_lets_a_resource_server_verify_tokens(alg: Algorithm) -> None:
    keyset = Keyset.generate(alg, NOW)
    token = sign(keyset.active)
    published = jwt.PyJWKSet.from_dict(keyset.jwks(NOW, RETAIN))
    jwk = next(k for k in published.keys if k.key_id == keyset.active_kid)

    claims = jwt.decode(
        token, jwk, audience="aud", issuer="iss", options={"verify_exp": False, "verify_iat": False}
    )

    assert claims["sub"] == "user"


def test_save_load_round_trip_with_mode_0600(keyset: Keyset, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("old")
    path.chmod(0o644)
    rotated = keyset.rotate(NOW, retain=RETAIN)

    rotated.save(path)
    loaded = Keyset.load(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert loaded == rotated
    assert loaded.jwks(NOW, RETAIN) == rotated.jwks(NOW, RETAIN)
    token = sign(rotated.active)
    assert decoder(loaded).decode(token, now=NOW).sub == "user"
    assert decoder(rotated).decode(sign(loaded.active), now=NOW).sub == "user"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]


def _valid_file(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "valid.json"
    Keyset.generate("ES256", NOW).save(path)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _corrupt(data: dict[str, Any], change: str) -> bytes:
    key = data["keys"][0]
    if change == "version":
        data["version"] = 2
    elif change == "active":
        data["active"] = "missing"
    elif change == "pem":
        key["private"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    elif change == "alg-mismatch":
        key["alg"] = "EdDSA"
    elif change == "short-secret":
        key["alg"], key["private"] = "HS256", "c2hvcnQ"
    elif change == "unknown-field":
        key["public"] = "x"
    elif change == "no-keys":
        data["keys"] = []
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "change",
    ["version", "active", "pem", "alg-mismatch", "short-secret", "unknown-field", "no-keys"],
)
def test_invalid_keyset_file_raises_one_line_config_error(tmp_path: Path, change: str) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(_corrupt(_valid_file(tmp_path), change))

    with pytest.raises(ConfigError) as info:
        Keyset.load(path)

    assert str(path) in info.value.detail
    assert "\n" not in info.value.detail
    assert "PRIVATE KEY" not in info.value.detail


@pytest.mark.parametrize("content", [b"", b"garbage", b"{}", b"[]", b"\xff\xfe"])
def test_corrupt_keyset_file_raises_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)

    with pytest.raises(ConfigError, match=r"keys\.json") as info:
        Keyset.load(path)

    assert "\n" not in info.value.detail


def test_missing_or_unreadable_keyset_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read keyset file"):
        Keyset.load(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="cannot read keyset file"):
        Keyset.load(tmp_path)


def test_save_to_a_missing_directory_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write keyset file"):
        Keyset.generate("EdDSA", NOW).save(tmp_path / "no" / "keys.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_keyset_file_without_read_permission_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    Keyset.generate("EdDSA", NOW).save(path)
    path.chmod(0)

    with pytest.raises(ConfigError, match="Permission denied"):
        Keyset.load(path)


def test_a_short_hs256_secret_is_refused_however_the_key_is_made() -> None:
    with pytest.raises(ConfigError, match="shorter than 256 bits"):
        SigningKey(kid="k", alg="HS256", private=b"x" * 31, public=b"x" * 31, created_at=NOW)
