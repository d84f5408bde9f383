"""Access tokens: a valid token decodes, and every known attack on a JWT verifier is an
InvalidToken with a short detail that never quotes the token. Tokens for the attacks are forged
by hand and, where it matters, carry a valid signature, so each check is reached on its own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, cast

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiond.errors import ClaimNotAllowed, InvalidToken, TooManyClaims
from sessiond.settings import Settings
from sessiond.tokens.access import AccessTokenDecoder, KeyLookup, TokenSettings, sign_access_token
from sessiond.tokens.claims import (
    REQUIRED_CLAIMS,
    RESERVED_CLAIMS,
    AccessClaims,
    check_custom_claims,
)
from sessiond.tokens.jws import VerifyingKey
from sessiond.tokens.keys import Keyset, SigningKey
from sessiond.verifier.settings import VerifierSettings
from support.jws import b64, segment

NOW = 1_800_000_000
TTL = 300
LEEWAY = 5
MAX_BYTES = 4096
ISSUER = "https://auth.example.com"
AUDIENCE = "api"
KEYSET = Keyset.generate("ES256", NOW)
KEY = KEYSET.active


def forge(
    header: Any = None, payload: Any = None, *, key: SigningKey = KEY, alg: str | None = None
) -> str:
    """A token with exactly this header and payload, validly signed by ``key``."""
    header = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid} if header is None else header
    signing_input = f"{segment(header)}.{segment(claims(payload))}"
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


SHARED_SETTINGS: dict[str, Any] = {
    "issuer": ISSUER,
    "audience": AUDIENCE,
    "access_ttl": TTL,
    "leeway": LEEWAY,
    "max_token_bytes": 1024,
}


@pytest.mark.parametrize(
    "settings",
    [
        Settings(**SHARED_SETTINGS),
        VerifierSettings(
            jwks_url="https://auth.example.com/jwks", nats_url="nats://nats", **SHARED_SETTINGS
        ),
    ],
    ids=["service", "verifier"],
)
def test_decoder_from_settings_applies_the_shared_settings(settings: TokenSettings) -> None:
    """Issuer, audience, token size, and a retired key verifying access_ttl + leeway more."""
    rotated = KEYSET.rotate(NOW, retain=3600)  # KEY retired at NOW
    decoder = AccessTokenDecoder.from_settings(settings, lambda: rotated)
    token = forge(payload=with_claims(exp=NOW + 3600))
    retired_for = TTL + LEEWAY

    assert decoder.decode(token, now=NOW + retired_for - 1).sub == "user-1"
    with pytest.raises(InvalidToken, match=r"^unknown signing key$"):
        decoder.decode(token, now=NOW + retired_for)
    with pytest.raises(InvalidToken, match=r"^wrong audience$"):
        decoder.decode(forge(payload=with_claims(aud="other")), now=NOW)
    with pytest.raises(InvalidToken, match=r"^token too large$"):
        decoder.decode(forge(payload=with_claims(pad="x" * 1024)), now=NOW)


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
    token = f"{segment(header)}.{segment(claims())}.{signature}"

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
        signing_input = f"{segment(header)}.{segment(claims())}"
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
    payload = segment(with_claims(sub="admin"))

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


def test_check_custom_claims_counts_them_first() -> None:
    check_custom_claims({"a": 1, "b": 2}, limit=2)
    with pytest.raises(TooManyClaims, match=r"^3 custom claims; at most 2 are allowed$"):
        check_custom_claims({"a": 1, "b": 2, "sid": 3}, limit=2)
    with pytest.raises(ClaimNotAllowed, match="'sid'"):
        check_custom_claims({"a": 1, "sid": 3}, limit=2)


# --- the JWS framing (tokens/jws.py) and the claim rules (tokens/claims.py) ---------------

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class OneKey:
    """A KeyLookup that serves one key under any kid (for keys a Keyset would refuse)."""

    def __init__(self, key: VerifyingKey) -> None:
        self.key = key

    def verification_key(self, kid: str, now: float, retain: float) -> VerifyingKey | None:
        return self.key


def decoder_for(lookup: KeyLookup) -> AccessTokenDecoder:
    return AccessTokenDecoder(
        lambda: lookup, issuer=ISSUER, audience=AUDIENCE, leeway=0, max_bytes=4096, retain=0
    )


def with_signature(token: str, signature: bytes) -> str:
    return f"{token.rpartition('.')[0]}.{b64(signature)}"


@pytest.mark.parametrize("aud", [[AUDIENCE], [AUDIENCE, "other"], {"aud": AUDIENCE}, 1, True])
def test_audience_must_be_one_string(aud: Any) -> None:
    """strict_aud: a list is refused even when it holds only our audience."""
    assert rejected(forge(payload=with_claims(aud=aud))) == "wrong audience"


@pytest.mark.parametrize("aud", ["", [], {}, 0, False])
def test_empty_audience_is_a_missing_one(aud: Any) -> None:
    assert rejected(forge(payload=with_claims(aud=aud))) == "missing claim aud"


@pytest.mark.parametrize("iss", [[ISSUER], {"iss": ISSUER}, 1, True, ISSUER.encode().hex()])
def test_issuer_must_be_our_string(iss: Any) -> None:
    assert rejected(forge(payload=with_claims(iss=iss))) == "wrong issuer"


@pytest.mark.parametrize(("claim", "value"), [("sub", 1), ("sub", False), ("jti", ["j"])])
def test_sub_and_jti_must_be_strings(claim: str, value: Any) -> None:
    assert (
        rejected(forge(payload=with_claims(**{claim: value})))
        == f"claim {claim} has the wrong type"
    )


def test_required_claims_are_checked_in_order_before_iss_and_aud() -> None:
    body = with_claims(iss="https://evil.example", aud="other", sid=None, exp=...)

    assert rejected(forge(payload=body)) == "missing claim sid"


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b'["iss", "aud"]',
        b'"{}"',
        b"null",
        b"1",
        b"",
        b"{} {}",
        b"{",
        b'{"a": 1,}',
        b"NaN",
        b"\xef\xbb\xbf" + json.dumps(claims()).encode(),  # UTF-8 with a BOM
        json.dumps(claims()).encode("utf-16"),
        json.dumps(claims()).encode("utf-32"),
        json.dumps(with_claims(x="\xff"), ensure_ascii=False).encode("latin-1"),  # not UTF-8
        json.dumps(with_claims(x="\ud800")).encode(),  # a lone surrogate, escaped
    ],
)
def test_signed_payload_that_is_not_a_utf8_json_object_is_malformed(payload: bytes) -> None:
    assert rejected(forge(payload=payload)) == "malformed token"


def test_signature_is_checked_before_any_claim() -> None:
    """An unsigned token learns nothing from the detail about the claims it carries."""
    token, _ = sign()
    for body in [with_claims(iss="x"), with_claims(aud=["api"]), with_claims(exp=...), [], "x"]:
        forged = f"{token.split('.')[0]}.{segment(body)}.{token.split('.')[2]}"

        assert rejected(forged) == "bad signature"


@pytest.mark.parametrize("length", [1, 32, 63, 65, 70, 128])
def test_es256_signature_of_the_wrong_length_is_a_bad_signature(length: int) -> None:
    """An ES256 signature is the raw r || s of exactly 64 bytes; any other length fails."""
    token, _ = sign()
    signature = base64.urlsafe_b64decode(token.split(".")[2] + "==")
    forged = (signature * 3)[:length]

    assert rejected(with_signature(token, forged)) == "bad signature"


def test_es256_signature_in_der_form_is_a_bad_signature() -> None:
    """JWS wants the raw r || s; the DER form of a valid signature must not verify."""
    token, _ = sign()
    raw = base64.urlsafe_b64decode(token.split(".")[2] + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")

    assert rejected(with_signature(token, encode_dss_signature(r, s))) == "bad signature"


@pytest.mark.parametrize("alg", ["EdDSA", "RS256", "HS256"])
@pytest.mark.parametrize("delta", [-1, 1])
def test_other_algorithms_signature_of_the_wrong_length_is_a_bad_signature(
    alg: str, delta: int
) -> None:
    keyset = Keyset.generate(cast(Any, alg), NOW)
    token = forge(key=keyset.active)
    signature = base64.urlsafe_b64decode(token.split(".")[2] + "==")
    forged = signature[:delta] if delta < 0 else signature + b"\0"
    decoder = decoder_for(keyset)

    assert decoder.decode(token, now=NOW).sub == "user-1"
    with pytest.raises(InvalidToken, match=r"^bad signature$"):
        decoder.decode(with_signature(token, forged), now=NOW)


def test_key_of_the_wrong_type_for_its_algorithm_is_an_invalid_token() -> None:
    """A key whose type does not fit its pinned algorithm verifies nothing."""
    p384 = ec.generate_private_key(ec.SECP384R1())
    ed = Keyset.generate("EdDSA", NOW).active
    for public in (p384.public_key(), ed.public, b"0" * 32):
        key = SigningKey(kid=KEY.kid, alg="ES256", private=KEY.private, public=public, created_at=0)

        with pytest.raises(InvalidToken):
            decoder_for(OneKey(key)).decode(forge(), now=NOW)


def test_short_rsa_key_verifies_with_pyjwts_warning() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    key = SigningKey(
        kid="short", alg="RS256", private=private, public=private.public_key(), created_at=0
    )

    with pytest.warns(jwt.InsecureKeyLengthWarning):
        assert decoder_for(OneKey(key)).decode(forge(key=key), now=NOW).sub == "user-1"


def padded_to(residue: int) -> tuple[str, int]:
    """A valid token whose payload segment has length ``residue`` (mod 4), and that length."""
    for size in range(8):
        token = forge(payload=with_claims(pad="x" * size))
        length = len(token.split(".")[1])
        if length % 4 == residue:
            return token, length
    raise AssertionError(residue)


@pytest.mark.parametrize("residue", [2, 3])
def test_payload_segment_must_be_canonical_base64url(residue: int) -> None:
    """The unused bits of the last character must be zero (one spelling per token): of
    the 64 characters that could end the segment, only those of the same bytes are accepted."""
    token, _ = padded_to(residue)
    header, payload, signature = token.split(".")
    canonical = "AQgw" if residue == 2 else "AEIMQUYcgkosw048"
    for char in BASE64URL:
        changed = f"{header}.{payload[:-1]}{char}.{signature}"
        detail = rejected(changed) if changed != token else None
        if char == payload[-1]:
            assert changed == token
        elif char in canonical:
            assert detail == "bad signature", char  # other bytes: the signature fails
        else:
            assert detail == "malformed token", char


def other_spellings(segment: str) -> list[str]:
    """``segment`` with its last character changed only in the bits that encode no byte: the
    same bytes, spelt in a way no encoder produces."""
    unused = {2: 15, 3: 3}[len(segment) % 4]
    index = BASE64URL.index(segment[-1])
    assert index % (unused + 1) == 0
    return [segment[:-1] + BASE64URL[index + low] for low in range(1, unused + 1)]


def test_signature_and_header_segments_must_be_canonical_base64url() -> None:
    token, _ = sign()
    header, payload, signature = token.split(".")
    assert len(signature) % 4 == 2  # 64 bytes: two characters past the last group of four
    signatures = other_spellings(signature)
    headers = other_spellings(header)
    assert {base64.urlsafe_b64decode(s + "==") for s in [signature, *signatures]} == {
        base64.urlsafe_b64decode(signature + "==")
    }

    assert len(signatures) == 15
    for spelling in signatures:
        assert rejected(f"{header}.{payload}.{spelling}") == "malformed token"
    for spelling in headers:
        # Checked after the key lookup, with the generic detail.
        assert rejected(f"{spelling}.{payload}.{signature}") == "malformed token"


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_segment_of_impossible_length_is_malformed(segment: int) -> None:
    """A base64url segment of length 1 (mod 4) encodes no byte string at all."""
    token, _ = sign()
    parts = token.split(".")
    parts[segment] += "A" * ((1 - len(parts[segment])) % 4)
    detail = rejected(".".join(parts))

    assert detail == ("malformed header" if segment == 0 else "malformed token")


def test_a_custom_claim_named_extra_is_kept_in_extra() -> None:
    token = forge(payload=with_claims(extra={"a": 1}, tenant="t1"))

    assert DECODER.decode(token, now=NOW).extra == {"extra": {"a": 1}, "tenant": "t1"}


def test_a_shared_header_does_not_keep_a_removed_key() -> None:
    """Tokens of one key share their header segment; the key is still looked up per token."""
    current = [KEYSET]
    decoder = AccessTokenDecoder(
        lambda: current[0], issuer=ISSUER, audience=AUDIENCE, leeway=0, max_bytes=4096, retain=0
    )
    first, second = forge(), forge(payload=with_claims(jti="jti-2"))
    assert first.split(".")[0] == second.split(".")[0]
    assert decoder.decode(first, now=NOW).jti == "jti-1"

    current[0] = Keyset.generate("ES256", NOW)

    with pytest.raises(InvalidToken, match=r"^unknown signing key$"):
        decoder.decode(second, now=NOW)


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
    assert decodes_or_invalid(forge(header, json.dumps(payload).encode())) is None
