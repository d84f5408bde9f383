"""sessiond's tokens, keys and metadata as implementations nobody here wrote read them.

joserfc verifies access tokens of every signing algorithm against the JWKS the authority
serves; authlib's RFC 9068 validator accepts them; authlib's RFC 8414 model checks the server
metadata, and its OAuth client refreshes and revokes at the endpoints the metadata names; and
a verifier that caches the JWKS as its ``Cache-Control`` allows never meets a key it does not
know across a rotation with ``sessiond keys rotate``'s defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import KeySet, KeySetSerialization, OctKey

from sessiond.cli import main
from sessiond.tokens.keys import Keyset
from support.authority import Authority, MakeAuthority, assert_problem
from support.secrets import register

ISSUER = "https://auth.example.test"
#: node jose's createRemoteJWKSet refetches on an unknown kid at most every 30 s.
JOSE_COOLDOWN = 30
#: How long a replica of the authority may run on the old keyset file (a Kubernetes Secret).
FILE_PROPAGATION = 60


@pytest.fixture
def backend() -> None:
    """The embedded mode: what is checked here is the same on every backend."""


def client_id(authority: Authority) -> str:
    return authority.runtime.credentials.authenticate(authority.credential).id


async def served_jwks(authority: Authority) -> dict[str, Any]:
    response = await authority.http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    jwks: dict[str, Any] = response.json()
    return jwks


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "HS256"])
async def test_joserfc_verifies_access_tokens_against_the_served_jwks(
    make_authority: MakeAuthority, alg: str
) -> None:
    authority = await make_authority(key_algorithm=alg, issuer=ISSUER)
    tokens = await authority.login("alice", scope="read write")
    jwks = await served_jwks(authority)
    if alg == "HS256":  # a shared secret is never published: verifiers hold the keyset file
        assert jwks == {"keys": []}
        secret = authority.runtime.keyset.active.private
        assert isinstance(secret, bytes)
        key: Any = OctKey.import_key(secret)
    else:
        key = KeySet.import_key_set(cast(KeySetSerialization, jwks))

    token = jwt.decode(tokens["access_token"], key, algorithms=[alg])

    assert token.header["typ"] == "at+jwt"
    essential: jwt.ClaimsOption = {"essential": True}
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": "sessiond"},
        sub={"essential": True, "value": "alice"},
        client_id={"essential": True, "value": client_id(authority)},
        exp=essential,
        iat=essential,
        jti=essential,
    ).validate(token.claims)
    assert token.claims["scope"] == "read write"


class _ServedKeys(JWTBearerTokenValidator):  # type: ignore[misc]
    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__(issuer=ISSUER, resource_server="sessiond")
        self._jwks = jwks

    def get_jwks(self) -> dict[str, Any]:
        return self._jwks


# authlib decodes with joserfc's recommended algorithms only, which leave out EdDSA (RFC 9864
# deprecates the name); joserfc itself verifies EdDSA tokens above when asked to.
@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_authlib_rfc9068_validator_accepts_access_tokens(
    make_authority: MakeAuthority, alg: str
) -> None:
    authority = await make_authority(key_algorithm=alg, issuer=ISSUER)
    tokens = await authority.login("alice", scope="read")
    validator = _ServedKeys(await served_jwks(authority))

    claims = validator.authenticate_token(tokens["access_token"])
    validator.validate_token(claims, scopes=["read"], request=None)

    assert claims["client_id"] == client_id(authority)
    assert claims["sub"] == "alice"


async def test_client_id_is_in_introspection_and_callers_cannot_set_it(
    authority: Authority,
) -> None:
    tokens = await authority.login()
    for token in (tokens["access_token"], tokens["refresh_token"]):
        answer = await authority.http.post(
            "/v1/introspect", data={"token": token}, headers=authority.service
        )
        assert answer.json()["client_id"] == client_id(authority)
    forged = await authority.http.post(
        "/v1/sessions",
        json={"subject": "a", "claims": {"client_id": "someone-else"}},
        headers=authority.service,
    )
    assert_problem(forged, 400, "claim-not-allowed")


async def server_metadata(authority: Authority) -> AuthorizationServerMetadata:
    response = await authority.http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    return AuthorizationServerMetadata(response.json())


async def test_server_metadata_is_valid_rfc8414(make_authority: MakeAuthority) -> None:
    authority = await make_authority(issuer=ISSUER, public_url=ISSUER)
    metadata = await server_metadata(authority)

    # RFC 8414 requires response_types_supported even of a server without an authorization
    # endpoint; sessiond's is empty, which authlib takes for missing. Everything else holds.
    for name in set(metadata.REGISTRY_KEYS) - {"response_types_supported"}:
        getattr(metadata, f"validate_{name}")()
    assert metadata["response_types_supported"] == []
    assert metadata["issuer"] == ISSUER
    assert metadata["grant_types_supported"] == ["refresh_token"]
    keys = await authority.http.get(metadata["jwks_uri"].removeprefix(ISSUER))
    assert keys.json() == await served_jwks(authority)


async def test_an_oauth_client_refreshes_and_revokes_through_the_metadata(
    make_authority: MakeAuthority,
) -> None:
    authority = await make_authority(issuer=ISSUER, public_url=ISSUER)
    metadata = await server_metadata(authority)
    tokens = await authority.login("alice")
    transport = httpx.ASGITransport(app=authority.http.app)
    async with AsyncOAuth2Client(
        client_id=client_id(authority), token_endpoint_auth_method="none", transport=transport
    ) as client:
        refreshed = await client.refresh_token(
            metadata["token_endpoint"], refresh_token=tokens["refresh_token"]
        )
        register("access token", refreshed["access_token"])
        register("refresh token", refreshed["refresh_token"])
        assert refreshed["token_type"] == "Bearer"
        assert (await authority.whoami(refreshed["access_token"])).status_code == 200

        revoked = await client.revoke_token(
            metadata["revocation_endpoint"], token=refreshed["refresh_token"]
        )

    assert revoked.status_code == 200
    assert_problem(await authority.whoami(refreshed["access_token"]), 401, "token-revoked")


async def test_a_verifier_caching_the_jwks_never_meets_an_unknown_key_after_a_rotation(
    make_authority: MakeAuthority, tmp_path: Path
) -> None:
    """Under ``keys rotate``'s defaults, a verifier whose JWKS copy is as old as caching allows
    (its own max-age, a shared cache's max-age before it, then a 30 s refetch cooldown) and
    served by a replica still on the old file for a minute, has every key that signs."""
    path = tmp_path / "keyset.json"
    Keyset.generate("ES256").save(path)
    authority = await make_authority(keyset_file=str(path))
    cache_control = (await authority.http.get("/.well-known/jwks.json")).headers["cache-control"]
    match = re.search(r"max-age=(\d+)", cache_control)
    assert match is not None
    max_age = int(match.group(1))
    retain = authority.runtime.key_retention
    old = Keyset.load(path)

    rotated = CliRunner().invoke(main, ["keys", "rotate", "--file", str(path)])
    assert rotated.exit_code == 0, rotated.output
    new = Keyset.load(path)
    at = new.active.created_at  # the moment of the rotation

    def kids_served(moment: float) -> frozenset[str]:
        keyset = old if moment < at + FILE_PROPAGATION else new
        return frozenset(key["kid"] for key in keyset.jwks(moment, retain)["keys"])

    copy_age = 2 * max_age + JOSE_COOLDOWN
    start, end = int(at) - copy_age, int(at + (new.active.signs_from - at) + retain + copy_age)
    served = {moment: kids_served(moment) for moment in range(start, end + 1)}
    signers = {signed: new.signing_key(signed).kid for signed in range(int(at) + 1, end - copy_age)}
    unknown = [
        (signed, fetched)
        for signed, kid in signers.items()
        for fetched in range(signed - copy_age, signed + 1)
        if kid not in served[fetched]
    ]
    assert unknown == [], f"{len(unknown)} (signed at, JWKS fetched at) pairs miss the key"
