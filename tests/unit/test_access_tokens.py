"""Access tokens: a valid token decodes, and every known attack on a JWT verifier is an
InvalidToken with a short detail that never quotes the token. Tokens for the attacks are forged
by hand and, where it matters, carry a valid signature, so each check is reached on its own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiond.errors import ClaimNotAllowed, InvalidToken
from sessiond.tokens.access import (
    REQUIRED_CLAIMS,
    RESERVED_CLAIMS,
    AccessClaims,
    AccessTokenDecoder,
    check_custom_claims,
    sign_access_token,
)
from sessiond.tokens.keys import Keyset, SigningKey

NOW = 1_800_000_000
TTL = 300
LEEWAY = 5
MAX_BYTES = 4096
ISSUER = "https://auth.example.com"
AUDIENCE = "api"
KEYSET = Keyset.generate("ES256", NOW)
KEY = KEYSET.active


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_json(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def forge(
    header: Any = None, payload: Any = None, *, key: SigningKey = KEY, alg: str | None = None
) -> str:
    """A token with exactly this header and payload, validly signed by ``key``."""
    header = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid} if header is None else header
    signing_input = f"{b64(encode_json(header))}.{b64(encode_json(claims(payload)))}"
    signature = jwt.get_algorithm_by_name(alg or key.alg).sign(signing_input.encode(), key.private)
    return f"{signing_input}.{b64(signature)}"


def claims(payload: Any = None) -> Any:
    if payload is not None:
        return payload
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "sid": "session-1",
        "jti": "jti-1",
        "iat": NOW,
        "exp": NOW + TTL,
    }


def with_claims(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = claims()
    for name, value in changes.items():
        if value is ...:
            del body[name]
        else:
            body[name] = value
    return body


DECODER = AccessTokenDecoder(
    lambda: KEYSET,
    issuer=ISSUER,
    audience=AUDIENCE,
    leeway=LEEWAY,
    max_bytes=MAX_BYTES,
    retain=TTL + LEEWAY,
)


def rejected(token: str, now: float = NOW) -> str:
    """Assert that ``token`` is an InvalidToken and that the detail does not quote it."""
    with pytest.raises(InvalidToken) as info:
        DECODER.decode(token, now=now)
    detail = info.value.detail
    assert all(part not in detail for part in [token, *token.split(".")] if len(part) > 8)
    assert len(detail) < 80
    return detail


def sign(now: float = NOW, **kwargs: Any) -> tuple[str, AccessClaims]:
    arguments: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "sub": "user-1",
        "sid": "session-1",
        "scope": None,
        "extra": None,
        "ttl": TTL,
        "now": now,
        **kwargs,
    }
    return sign_access_token(KEY, **arguments)


# --- the happy path ----------------------------------------------------------------------


def test_valid_token_decodes_to_its_claims() -> None:
    token, issued = sign(now=NOW + 0.9, scope="read write", extra={"tenant": "t1", "n": [1]})

    decoded = DECODER.decode(token, now=NOW + 10)

    assert decoded == issued
    assert decoded.iat == NOW
    assert decoded.exp == NOW + TTL
    assert decoded.scope == "read write"
    assert decoded.extra == {"tenant": "t1", "n": [1]}


def test_header_is_exactly_alg_typ_kid() -> None:
    token, _ = sign()

    assert jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid}


def test_custom_claims_are_flat_in_the_payload() -> None:
    token, issued = sign(extra={"tenant": "t1"})

    payload = jwt.decode(token, options={"verify_signature": False})

    assert payload["tenant"] == "t1"
    assert "extra" not in payload
    assert "scope" not in payload
    assert payload["jti"] == issued.jti


def test_jti_is_random_with_at_least_128_bits() -> None:
    jtis = {sign()[1].jti for _ in range(100)}

    assert len(jtis) == 100
    assert all(len(base64.urlsafe_b64decode(j + "==")) >= 16 for j in jtis)


def test_registered_claims_we_do_not_model_are_not_extra() -> None:
    token = forge(payload=with_claims(nbf=NOW, azp="client", tenant="t1"))

    assert DECODER.decode(token, now=NOW).extra == {"tenant": "t1"}


def test_rfc9068_media_type_form_of_typ_is_accepted() -> None:
    token = forge({"alg": "ES256", "typ": "application/at+jwt", "kid": KEY.kid})

    assert DECODER.decode(token, now=NOW).sub == "user-1"


def test_keyset_getter_is_read_per_token() -> None:
    current = [Keyset.generate("EdDSA", NOW)]
    decoder = AccessTokenDecoder(
        lambda: current[0], issuer=ISSUER, audience=AUDIENCE, leeway=0, max_bytes=4096, retain=0
    )
    fresh = Keyset.generate("EdDSA", NOW)
    current[0] = fresh

    assert decoder.decode(forge(key=fresh.active), now=NOW).sub == "user-1"


# --- time --------------------------------------------------------------------------------


def test_expired_token_is_rejected_after_the_leeway() -> None:
    token, _ = sign()

    assert DECODER.decode(token, now=NOW + TTL + LEEWAY - 1).sub == "user-1"
    assert rejected(token, now=NOW + TTL + LEEWAY) == "token expired"


def test_token_issued_in_the_future_is_rejected() -> None:
    token, _ = sign(now=NOW + LEEWAY + 1)

    assert rejected(token, now=NOW) == "token issued in the future"
    assert DECODER.decode(token, now=NOW + 1).sub == "user-1"


def test_token_not_yet_valid_is_rejected() -> None:
    token = forge(payload=with_claims(nbf=NOW + LEEWAY + 1))

    assert rejected(token, now=NOW) == "token not yet valid"
    assert DECODER.decode(token, now=NOW + 1).sub == "user-1"


def test_decode_uses_the_real_clock_by_default() -> None:
    assert DECODER.decode(forge(payload=with_claims(iat=0, exp=2**40))).sub == "user-1"
    with pytest.raises(InvalidToken):
        DECODER.decode(forge(payload=with_claims(iat=0, exp=1)))


# --- audience and issuer -----------------------------------------------------------------


@pytest.mark.parametrize("aud", ["other", "ap", "api ", "API", ["api"], ["api", "other"], ""])
def test_wrong_audience_is_rejected(aud: Any) -> None:
    rejected(forge(payload=with_claims(aud=aud)))


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example.com",
        ISSUER[:-1],
        ISSUER + ".evil",
        ISSUER + "/",
        "https://auth.example",
        ISSUER.upper(),
        [ISSUER],
        "",
    ],
)
def test_wrong_issuer_is_rejected(iss: Any) -> None:
    rejected(forge(payload=with_claims(iss=iss)))


# --- algorithm attacks ---------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["", "AAAA", "c2lnbmF0dXJl"])
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_token_is_rejected(alg: str, signature: str) -> None:
    header = {"alg": alg, "typ": "at+jwt", "kid": KEY.kid}
    token = f"{b64(encode_json(header))}.{b64(encode_json(claims()))}.{signature}"

    rejected(token)


def test_hs256_signed_with_our_public_key_is_rejected() -> None:
    """Key confusion (CVE-2022-29217): the attacker uses the published public key as secret."""
    for public_format in (
        serialization.PublicFormat.SubjectPublicKeyInfo,
        serialization.PublicFormat.UncompressedPoint,
    ):
        encoding = (
            serialization.Encoding.PEM
            if public_format is serialization.PublicFormat.SubjectPublicKeyInfo
            else serialization.Encoding.X962
        )
        assert not isinstance(KEY.public, bytes)
        secret = KEY.public.public_bytes(encoding, public_format)
        header = {"alg": "HS256", "typ": "at+jwt", "kid": KEY.kid}
        signing_input = f"{b64(encode_json(header))}.{b64(encode_json(claims()))}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()

        assert rejected(f"{signing_input}.{b64(mac)}") == "algorithm not allowed for this key"


def test_hs256_decoder_rejects_an_es256_header_with_the_same_kid() -> None:
    hs = Keyset.generate("HS256", NOW)
    decoder = AccessTokenDecoder(
        lambda: hs, issuer=ISSUER, audience=AUDIENCE, leeway=0, max_bytes=4096, retain=0
    )
    token = forge({"alg": "ES256", "typ": "at+jwt", "kid": hs.active_kid})

    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        decoder.decode(token, now=NOW)
    assert decoder.decode(forge(key=hs.active), now=NOW).sub == "user-1"


@pytest.mark.parametrize("alg", ["ES384", "ES512", "RS256", "PS256", "EdDSA", "HS512", ""])
def test_any_other_header_alg_is_rejected(alg: str) -> None:
    token = forge({"alg": alg, "typ": "at+jwt", "kid": KEY.kid})

    assert rejected(token) == "algorithm not allowed for this key"


def test_unknown_kid_is_rejected() -> None:
    stranger = SigningKey.generate("ES256", NOW)

    assert rejected(forge(key=stranger)) == "unknown signing key"


def test_another_key_under_our_kid_fails_the_signature() -> None:
    impostor = SigningKey(
        kid=KEY.kid,
        alg="ES256",
        private=SigningKey.generate("ES256", NOW).private,
        public=KEY.public,
        created_at=NOW,
    )

    assert rejected(forge(key=impostor)) == "bad signature"


def test_tampered_payload_fails_the_signature() -> None:
    token, _ = sign()
    header, _, signature = token.split(".")
    payload = b64(encode_json(with_claims(sub="admin")))

    assert rejected(f"{header}.{payload}.{signature}") == "bad signature"


# --- header shape ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "member",
    [
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        {"jwk": {"kty": "oct", "k": "AAAA"}},
        {"x5c": ["AAAA"]},
        {"crit": ["exp"]},
        {"crit": ["b64"], "b64": False},
        {"cty": "JWT"},
        {"zip": "DEF"},
    ],
)
def test_extra_header_member_is_rejected(member: dict[str, Any]) -> None:
    header = {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid, **member}

    assert rejected(forge(header)) == "unexpected header parameter"


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "AT+JWT", "at+JWT ", "application/jwt", 1])
def test_missing_or_wrong_typ_is_rejected(typ: Any) -> None:
    header: dict[str, Any] = {"alg": "ES256", "kid": KEY.kid}
    if typ is not None:
        header["typ"] = typ

    assert rejected(forge(header)) == "not an access token (typ)"


@pytest.mark.parametrize("kid", [None, 1, [KEY.kid], {"kid": KEY.kid}])
def test_missing_or_non_string_kid_is_rejected(kid: Any) -> None:
    header: dict[str, Any] = {"alg": "ES256", "typ": "at+jwt"}
    if kid is not None:
        header["kid"] = kid

    rejected(forge(header))


@pytest.mark.parametrize("header", [[], "x", 1, None, b"{", b"\xff", b'{"alg":"ES256",}'])
def test_header_that_is_not_a_json_object_is_rejected(header: Any) -> None:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()

    assert rejected(forge(raw)) == "malformed header"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "a..c",
        ".b.c",
        "a.b.",
        "a b.c.d",
        "a=.b.c",
        "é.b.c",
        "a.b.c\n",
    ],
)
def test_token_without_three_base64url_segments_is_rejected(token: str) -> None:
    rejected(token)


def test_oversized_token_is_rejected_before_parsing() -> None:
    token, _ = sign(extra={"pad": "x" * 1000})

    def decoder(max_bytes: int) -> AccessTokenDecoder:
        return AccessTokenDecoder(
            lambda: KEYSET,
            issuer=ISSUER,
            audience=AUDIENCE,
            leeway=0,
            max_bytes=max_bytes,
            retain=0,
        )

    assert decoder(len(token)).decode(token, now=NOW).sub == "user-1"
    with pytest.raises(InvalidToken, match="token too large"):
        decoder(len(token) - 1).decode(token, now=NOW)
    assert rejected("!" * (MAX_BYTES + 1)) == "token too large"
    assert rejected("!" * MAX_BYTES) == "malformed token"


# --- claims ------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_missing_required_claim_is_rejected(claim: str) -> None:
    assert claim in rejected(forge(payload=with_claims(**{claim: ...})))


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_null_required_claim_is_rejected(claim: str) -> None:
    rejected(forge(payload=with_claims(**{claim: None})))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", 123),
        ("sub", ["user-1"]),
        ("sub", ""),
        ("sid", 1),
        ("sid", {"id": 1}),
        ("jti", 5),
        ("iat", str(NOW)),
        ("iat", float(NOW)),
        ("iat", True),
        ("iat", -1),
        ("exp", str(NOW + TTL)),
        ("exp", NOW + TTL + 0.5),
        ("exp", 2**64),
        ("scope", 5),
        ("scope", ["read"]),
        ("nbf", "0"),
        ("nbf", 1.5),
        ("nbf", False),
    ],
)
def test_claim_of_the_wrong_type_is_rejected(claim: str, value: Any) -> None:
    rejected(forge(payload=with_claims(**{claim: value})))


@pytest.mark.parametrize("payload", [[], "x", 1, b"{", b"\xff\xfe", b"NaN"])
def test_payload_that_is_not_a_json_object_is_rejected(payload: Any) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()

    rejected(forge(payload=raw))


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400", "1" * 5000])
def test_non_finite_or_huge_numbers_are_rejected(literal: str) -> None:
    body = json.dumps(with_claims(exp="EXP")).replace('"EXP"', literal)

    rejected(forge(payload=body.encode()))


@pytest.mark.parametrize("name", sorted(RESERVED_CLAIMS))
def test_reserved_custom_claim_is_refused(name: str) -> None:
    with pytest.raises(ClaimNotAllowed, match=name):
        sign(extra={name: "x"})


def test_check_custom_claims_accepts_private_names() -> None:
    check_custom_claims({"tenant": 1, "roles": ["a"], "https://example.com/x": True})
    with pytest.raises(ClaimNotAllowed, match="'sid'"):
        check_custom_claims({"tenant": 1, "sid": "other"})


# --- fuzzing: nothing but InvalidToken escapes -------------------------------------------

VALID, VALID_CLAIMS = sign()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOKEN_ALPHABET = st.sampled_from(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
CLAIM_NAMES = st.sampled_from([*REQUIRED_CLAIMS, "nbf", "scope", "extra", "azp", "x"])


def decodes_or_invalid(token: str) -> AccessClaims | None:
    try:
        return DECODER.decode(token, now=NOW)
    except InvalidToken:
        return None


@FUZZ
@given(st.text(max_size=600))
def test_fuzz_random_strings(token: str) -> None:
    assert decodes_or_invalid(token) is None


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["replace", "insert", "delete"]), st.integers(0, 10**6), TOKEN_ALPHABET
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_mutations_of_a_valid_token(edits: list[tuple[str, int, str]]) -> None:
    chars = list(VALID)
    for kind, position, char in edits:
        index = position % (len(chars) + 1)
        if kind == "insert":
            chars.insert(index, char)
        elif chars and index < len(chars):
            if kind == "replace":
                chars[index] = char
            else:
                del chars[index]
    token = "".join(chars)

    decoded = decodes_or_invalid(token)

    assert decoded is None or (token == VALID and decoded == VALID_CLAIMS)


@FUZZ
@given(st.dictionaries(CLAIM_NAMES, JSON, max_size=6), st.sets(CLAIM_NAMES, max_size=3))
def test_fuzz_validly_signed_random_claims(changes: dict[str, Any], drop: set[str]) -> None:
    body = {**claims(), **changes}
    for name in drop:
        body.pop(name, None)

    decoded = decodes_or_invalid(forge(payload=body))

    if decoded is not None:
        assert decoded.sub == body["sub"]
        assert decoded.exp + LEEWAY > NOW


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["alg", "typ", "kid", "crit", "jku", "b64"]), JSON, max_size=4)
)
def test_fuzz_validly_signed_random_headers(changes: dict[str, Any]) -> None:
    header = {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid, **changes}

    decoded = decodes_or_invalid(forge(header))

    assert decoded is None or (
        set(header) == {"alg", "typ", "kid"}
        and header["alg"] == "ES256"
        and header["typ"] in {"at+jwt", "application/at+jwt"}
        and header["kid"] == KEY.kid
    )


@FUZZ
@given(JSON, JSON)
def test_fuzz_validly_signed_arbitrary_json(header: Any, payload: Any) -> None:
    assert decodes_or_invalid(forge(header, encode_json(payload))) is None
