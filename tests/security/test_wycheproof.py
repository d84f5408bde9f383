"""Project Wycheproof vectors run through the code path sessiond verifies access tokens with.

Vectors: ``tests/security/wycheproof/`` (C2SP/wycheproof ``testvectors_v1`` at dac1dd4, Apache
2.0, see the README and LICENSE there).

How each file is run:

* ``ecdsa_secp256r1_sha256_p1363_test.json``, ``ed25519_test.json``, ``hmac_sha256_test.json``
  are primitive vectors (an arbitrary message, not a JWS signing input), so they exercise the
  exact step ``AccessTokenDecoder`` relies on inside PyJWT (``PyJWS._verify_signature``):
  ``alg = jwt.get_algorithm_by_name(key.alg); alg.verify(msg, alg.prepare_key(key.public), sig)``
  where ``key`` is a :class:`SigningKey` taken back out of a :class:`Keyset` (so the key passes
  the keyset's invariants and the pinned ``alg`` is the key's, never the vector's). HMAC keys
  shorter than 256 bits are refused by sessiond's keyset files (``HMAC_SECRET_BYTES``), so those
  groups (keySize 128) are checked at the algorithm level only: the same PyJWT HS256 object with
  the raw ``bytes`` key type sessiond uses.
* ``json_web_signature_test.json`` holds whole compact JWS with their JWKs. Each token goes
  (1) through ``AccessTokenDecoder.decode`` with a keyset holding the vector's key under the
  vector's ``kid`` whenever the key's algorithm is one sessiond supports (ES256, RS256, HS256):
  every vector, valid or not, must come back as :class:`InvalidToken` (none of them is an
  RFC 9068 access token, so a "valid" one fails on ``typ``/claims, never with another exception);
  and (2) through the signature layer with the algorithm pinned to the key
  (``jwt.PyJWS().decode_complete(token, key, algorithms=[key_alg])``, what ``decode`` calls):
  "valid" must verify, "invalid" must be rejected.

``result: "acceptable"``: we fail closed, i.e. an acceptable vector must be rejected like an
invalid one (a bank verifier has no use for legacy leniency). The pinned files contain none, so
this is policy only.

HMAC groups with ``tagSize`` 128 carry truncated tags that Wycheproof labels valid for
HMAC-SHA256-128; JWS HS256 requires the full 256-bit tag (RFC 7518 section 3.2), so a truncated
tag must be rejected whatever its label.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast, get_args

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sessiond.errors import InvalidToken
from sessiond.settings import Algorithm
from sessiond.tokens.access import AccessTokenDecoder
from sessiond.tokens.keys import HMAC_SECRET_BYTES, Keyset, PrivateKey, PublicKey, SigningKey

# --- overrides -----------------------------------------------------------------------------
#
# json_web_signature_test.json vectors whose label the signature layer deliberately does not
# follow. An override FLIPS the expected signature-layer outcome (valid -> rejected, invalid ->
# verifies); the decoder layer still rejects every vector. Keep this list short and explained.
OVERRIDES: dict[int, str] = {
    # Base64 vectors labelled inconsistently upstream (see the vectors' README): 372/373 insert an
    # invalid character into the header/payload and are labelled "valid" (a decoder that drops
    # it recovers the signed bytes); sessiond's verifier refuses any non-base64url character.
    372: "invalid character inserted in header, labelled valid upstream; we reject it",
    373: "invalid character inserted in payload, labelled valid upstream; we reject it",
    # 367/370 ("invalidBase64Padding", "...InPayload") are byte-for-byte the token of the valid
    # tc357: the padding edit was lost upstream, so the signature is genuinely valid and the
    # signature layer verifies it (test_mislabelled_base64_vectors_equal_a_valid_one pins that).
    367: "identical to valid tc357 (upstream lost the padding edit); the signature is valid",
    370: "identical to valid tc357 (upstream lost the padding edit); the signature is valid",
    # 353-356 are signed correctly but with a JWK marked for encryption (use "enc" or key_ops
    # ["encrypt"]). Key-usage metadata is invisible to signature verification, and sessiond
    # never imports JWKs: its keys come only from its own keyset file, each pinned to one
    # signing algorithm, so there is no encryption key to misuse. The decoder still rejects
    # the tokens (not access tokens); the signature layer verifies them.
    353: "JWK use=enc: key-usage metadata, not a signature property; sessiond imports no JWKs",
    354: "JWK use=enc: key-usage metadata, not a signature property; sessiond imports no JWKs",
    355: "JWK key_ops=[encrypt]: key metadata, not a signature property; no JWK import in sessiond",
    356: "JWK key_ops=[encrypt]: key metadata, not a signature property; no JWK import in sessiond",
    # RFC 7520 figures whose JWK "alg" disagrees with the header "alg" (PS256 key, PS384 token;
    # "ES521" key, ES512 token). sessiond pins exactly one algorithm per key and never takes it
    # from the header, so these are rejected by design (and none is a sessiond algorithm).
    346: "JWK alg PS256 but header alg PS384: per-key algorithm pinning rejects it",
    350: "JWK alg PS256 but header alg PS384: per-key algorithm pinning rejects it",
    347: "JWK alg 'ES521' (non-standard) but header ES512: per-key pinning rejects it",
    351: "JWK alg 'ES521' (non-standard) but header ES512: per-key pinning rejects it",
}

VECTORS = Path(__file__).parent / "wycheproof"
ECDSA_FILE = "ecdsa_secp256r1_sha256_p1363_test.json"
ED25519_FILE = "ed25519_test.json"
HMAC_FILE = "hmac_sha256_test.json"
JWS_FILE = "json_web_signature_test.json"

#: Vectors each file must yield; the suite fails if a file silently shrinks below these.
FLOORS = {ECDSA_FILE: 250, ED25519_FILE: 145, HMAC_FILE: 170, JWS_FILE: 395}

SESSIOND_ALGS: frozenset[str] = frozenset(get_args(Algorithm))
Expect = Literal["verify", "reject"]

# The only exceptions the decoder turns into InvalidToken: anything else is a 5xx.
_REJECTIONS = (jwt.PyJWTError, ValueError, TypeError, OverflowError)


@cache
def _load(name: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((VECTORS / name).read_text()))


@dataclass(frozen=True)
class Vector:
    file: str
    group: dict[str, Any]
    test: dict[str, Any]

    @property
    def tc_id(self) -> int:
        return int(self.test["tcId"])

    @property
    def expect(self) -> Expect:
        # "acceptable" fails closed (module docstring).
        return "verify" if self.test["result"] == "valid" else "reject"


def _vectors(name: str) -> Iterator[Vector]:
    for group in _load(name)["testGroups"]:
        for test in group["tests"]:
            yield Vector(name, group, test)


def _params(name: str) -> list[Any]:
    return [
        pytest.param(v, id=f"tc{v.tc_id}-{v.test['result']}-{v.test['comment'][:40]}")
        for v in _vectors(name)
    ]


def _keyset_key(alg: Algorithm, kid: str, public: PublicKey) -> SigningKey:
    """``public`` held by a one-key Keyset, taken back out the way the decoder does.

    The verifier only reads ``SigningKey.public``; the vectors carry no private key, so the public
    key fills ``private`` too (never used to sign here).
    """
    key = SigningKey(
        kid=kid, alg=alg, private=cast(PrivateKey, public), public=public, created_at=0.0
    )
    found = Keyset(active_kid=kid, keys=(key,)).verification_key(kid, now=0.0, retain=0.0)
    assert found is not None
    return found


def _primitive_verifies(alg_name: str, public: PublicKey, msg: bytes, sig: bytes) -> bool:
    """PyJWS._verify_signature's steps, minus the header: prepare_key, then verify."""
    alg = jwt.get_algorithm_by_name(alg_name)
    try:
        return bool(alg.verify(msg, alg.prepare_key(public), sig))
    except _REJECTIONS:
        return False


# --- primitive vectors ---------------------------------------------------------------------


@pytest.mark.parametrize("vector", _params(ECDSA_FILE))
def test_ecdsa_p256_p1363(vector: Vector) -> None:
    public = serialization.load_der_public_key(bytes.fromhex(vector.group["publicKeyDer"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)  # what keys.py accepts for ES256
    key = _keyset_key("ES256", "ecdsa", public)
    msg, sig = bytes.fromhex(vector.test["msg"]), bytes.fromhex(vector.test["sig"])
    verified = _primitive_verifies(key.alg, key.public, msg, sig)
    assert verified is (vector.expect == "verify"), vector.test


@pytest.mark.parametrize("vector", _params(ED25519_FILE))
def test_ed25519(vector: Vector) -> None:
    public = serialization.load_der_public_key(bytes.fromhex(vector.group["publicKeyDer"]))
    assert isinstance(public, ed25519.Ed25519PublicKey)
    key = _keyset_key("EdDSA", "ed25519", public)
    msg, sig = bytes.fromhex(vector.test["msg"]), bytes.fromhex(vector.test["sig"])
    verified = _primitive_verifies(key.alg, key.public, msg, sig)
    assert verified is (vector.expect == "verify"), vector.test


@pytest.mark.parametrize("vector", _params(HMAC_FILE))
def test_hmac_sha256(vector: Vector) -> None:
    secret = bytes.fromhex(vector.test["key"])
    if len(secret) >= HMAC_SECRET_BYTES:
        key: PublicKey = _keyset_key("HS256", "hmac", secret).public
    else:
        key = secret  # below sessiond's minimum: algorithm level only (module docstring)
    msg, tag = bytes.fromhex(vector.test["msg"]), bytes.fromhex(vector.test["tag"])
    full_tag = vector.group["tagSize"] == 256  # truncated tags are never valid HS256
    expect_verify = vector.expect == "verify" and full_tag
    assert _primitive_verifies("HS256", key, msg, tag) is expect_verify, vector.test


# --- whole JWS vectors ---------------------------------------------------------------------

_DEFAULT_ALG = {"EC": "ES256", "RSA": "RS256", "oct": "HS256"}


def _jwk_of(group: dict[str, Any]) -> dict[str, Any] | None:
    jwk = group.get("public") or group.get("private")
    return cast(dict[str, Any], jwk) if jwk else None


def _import_jwk(jwk: dict[str, Any]) -> tuple[str, Any]:
    """The key's pinned algorithm (its own ``alg``, else by ``kty``) and the key object.

    The service never imports JWKs (its keys come from its own keyset file); this is test-side
    plumbing that yields the same key types keys.py holds.
    """
    pinned = str(jwk.get("alg") or _DEFAULT_ALG[jwk["kty"]])
    importer = jwt.get_algorithm_by_name(_DEFAULT_ALG[jwk["kty"]])
    material = {k: v for k, v in jwk.items() if k not in ("alg", "use", "key_ops", "kid")}
    return pinned, importer.from_jwk(material)


def _header_kid(token: str) -> str | None:
    segment = token.split(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _signature_layer_verifies(token: str, key: Any, pinned: str) -> bool:
    try:
        jwt.PyJWS().decode_complete(token, key, algorithms=[pinned])
    except _REJECTIONS:
        return False
    return True


def _jws_expect(vector: Vector) -> Expect:
    if vector.tc_id in OVERRIDES:
        return "reject" if vector.expect == "verify" else "verify"
    return vector.expect


@pytest.mark.parametrize("vector", _params(JWS_FILE))
def test_json_web_signature(vector: Vector) -> None:
    token = str(vector.test["jws"])
    jwk = _jwk_of(vector.group)
    if jwk is None:
        # No key in the group: nothing can verify it, so it must be invalid (e.g. alg none).
        assert vector.expect == "reject"
        pinned, key = "HS256", b""
    else:
        pinned, key = _import_jwk(jwk)

    # (1) the service path: AccessTokenDecoder with the vector's key in its keyset.
    if jwk is not None and pinned in SESSIOND_ALGS:
        kid = _header_kid(token) or str(jwk.get("kid") or "wycheproof")
        signing_key = _keyset_key(cast(Algorithm, pinned), kid, key)
        decoder = AccessTokenDecoder(
            lambda: Keyset(active_kid=kid, keys=(signing_key,)),
            issuer="https://issuer.example",
            audience="sessiond",
            leeway=0.0,
            max_bytes=8192,
            retain=0.0,
        )
        with pytest.raises(InvalidToken):
            decoder.decode(token, now=0.0)

    # (2) the signature layer the decoder calls, algorithm pinned to the key.
    verified = _signature_layer_verifies(token, key, pinned) if jwk is not None else False
    assert verified is (_jws_expect(vector) == "verify"), (vector.test, OVERRIDES.get(vector.tc_id))


# --- the suite cannot silently shrink ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_vector_count_floor(name: str) -> None:
    vectors = list(_vectors(name))
    assert len(vectors) == _load(name)["numberOfTests"]
    assert len(vectors) >= FLOORS[name]
    assert all(v.test["result"] in ("valid", "invalid", "acceptable") for v in vectors)


def test_overrides_name_real_vectors() -> None:
    ids = {v.tc_id for v in _vectors(JWS_FILE)}
    assert set(OVERRIDES) <= ids


def test_mislabelled_base64_vectors_equal_a_valid_one() -> None:
    tokens = {v.tc_id: v.test["jws"] for v in _vectors(JWS_FILE)}
    assert tokens[367] == tokens[370] == tokens[357]
