"""Forged, stale and malformed access tokens get 401 problem+json from /v1/whoami."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from support.authority import Authority, MakeAuthority, assert_problem, bearer
from support.jws import b64, segment


def claims(authority: Authority, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    settings = authority.runtime.settings
    base = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": "mallory",
        "sid": "0" * 32,
        "jti": "forged",
        "iat": now,
        "exp": now + 60,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def signed(authority: Authority, payload: dict[str, Any], **header: Any) -> str:
    """A token signed with the authority's real active key."""
    key = authority.runtime.keyset.active
    headers = {"typ": "at+jwt", "kid": key.kid, **header}
    return jwt.encode(payload, key.private, algorithm=key.alg, headers=headers)


async def assert_rejected(authority: Authority, token: str) -> None:
    response = await authority.whoami(token)
    assert_problem(response, 401)
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_a_token_signed_by_us_is_accepted(authority: Authority) -> None:
    assert (await authority.whoami(signed(authority, claims(authority)))).status_code == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000},
        {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 4000},
        {"nbf": int(time.time()) + 3600},
        {"aud": "someone-else"},
        {"iss": "evil"},
        {"iss": "sessiond-evil"},
        {"iss": "session"},
        {"sid": None},
        {"jti": None},
        {"exp": None},
        {"sub": 42},
        {"iat": "yesterday"},
    ],
    ids=lambda c: ",".join(f"{k}={v!r}"[:20] for k, v in c.items()),
)
async def test_bad_claims_are_rejected(authority: Authority, changes: dict[str, Any]) -> None:
    await assert_rejected(authority, signed(authority, claims(authority, **changes)))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_unsigned_tokens_are_rejected(authority: Authority, alg: str) -> None:
    header = {"alg": alg, "typ": "at+jwt", "kid": authority.runtime.keyset.active.kid}
    await assert_rejected(authority, f"{segment(header)}.{segment(claims(authority))}.")


async def test_hs256_signed_with_our_public_key_is_rejected(authority: Authority) -> None:
    public = authority.runtime.keyset.active.public
    assert isinstance(public, ec.EllipticCurvePublicKey)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": authority.runtime.keyset.active.kid}
    signing_input = f"{segment(header)}.{segment(claims(authority))}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    await assert_rejected(authority, f"{signing_input}.{b64(mac)}")


async def test_unknown_kid_is_rejected(authority: Authority) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        claims(authority), stranger, algorithm="ES256", headers={"typ": "at+jwt", "kid": "nope"}
    )
    await assert_rejected(authority, token)


async def test_known_kid_with_a_foreign_signature_is_rejected(authority: Authority) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    kid = authority.runtime.keyset.active.kid
    token = jwt.encode(
        claims(authority), stranger, algorithm="ES256", headers={"typ": "at+jwt", "kid": kid}
    )
    await assert_rejected(authority, token)


@pytest.mark.parametrize("extra", [{"jku": "http://127.0.0.1:1/jwks"}, {"crit": ["exp"]}])
async def test_unexpected_header_members_are_rejected(
    authority: Authority, extra: dict[str, Any]
) -> None:
    await assert_rejected(authority, signed(authority, claims(authority), **extra))


async def test_wrong_typ_is_rejected(authority: Authority) -> None:
    await assert_rejected(authority, signed(authority, claims(authority), typ="JWT"))


async def test_payload_edited_after_signing_is_rejected(authority: Authority) -> None:
    header, _, signature = signed(authority, claims(authority)).split(".")
    forged = segment(claims(authority, sub="admin"))
    await assert_rejected(authority, f"{header}.{forged}.{signature}")


async def test_oversized_token_is_rejected_before_parsing(make_authority: MakeAuthority) -> None:
    authority = await make_authority(max_token_bytes=1024)
    token = signed(authority, claims(authority, padding="x" * 2000))
    await assert_rejected(authority, token)


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.b.c.d", "....", "%%%.%%%.%%%", "Zm9v.YmFy.YmF6"]
)
async def test_garbage_is_rejected(authority: Authority, token: str) -> None:
    response = await authority.http.get("/v1/whoami", headers=bearer(token or "x"))
    assert_problem(response, 401)


async def test_a_refresh_token_is_not_an_access_token(authority: Authority) -> None:
    tokens = await authority.login()
    await assert_rejected(authority, tokens["refresh_token"])


async def test_missing_authorization_is_401(authority: Authority) -> None:
    response = await authority.http.get("/v1/whoami")
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
