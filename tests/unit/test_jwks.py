"""A backend's keys from the authority's JWKS: what a JWK must be, and the rate-limited refetch."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator

import jwt
import msgspec
import pytest

from sessiond.denylist.denylist import Denylist
from sessiond.errors import ConfigError, InvalidToken, KeysUnavailable
from sessiond.tokens.access import AccessTokenDecoder, sign_access_token
from sessiond.tokens.jwks import PublishedKeys
from sessiond.tokens.keys import Keyset
from sessiond.verifier.engine import Verifier
from sessiond.verifier.keys import RemoteJwks
from support.servers import JsonServer

KEYSET = Keyset.generate("ES256")


@pytest.fixture
def jwks_server() -> Iterator[JsonServer]:
    with JsonServer(KEYSET.jwks(time.time(), 60)) as server:
        yield server


def verifier_on(keys: RemoteJwks) -> Verifier:
    decoder = AccessTokenDecoder(
        keys.current, issuer="i", audience="a", leeway=0, max_bytes=4096, retain=60
    )
    return Verifier(decoder, keys, Denylist())


def signed(keyset: Keyset, kid: str | None = None) -> str:
    token, _ = sign_access_token(
        keyset.active, issuer="i", audience="a", sub="s", sid="x", ttl=60, now=time.time()
    )
    if kid is None:
        return token
    header = msgspec.json.encode({"alg": "ES256", "typ": "at+jwt", "kid": kid})
    return base64.urlsafe_b64encode(header).rstrip(b"=").decode() + token[token.index(".") :]


def test_published_keys_verify_what_the_keyset_signed() -> None:
    keys = PublishedKeys.from_jwks(KEYSET.jwks(time.time(), 60))
    decoder = AccessTokenDecoder(
        lambda: keys, issuer="i", audience="a", leeway=0, max_bytes=4096, retain=60
    )
    assert decoder.decode(signed(KEYSET)).sub == "s"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "alg": "HS256"}, "HS256"),
        ({"alg": "none"}, "algorithm"),
        ({"alg": "RS256"}, "key"),  # an EC key that claims to be RSA
        ({"use": "enc"}, "asymmetric"),
        ({"kid": ""}, "no kid"),
    ],
)
def test_a_jwk_that_is_not_a_public_signing_key_is_refused(
    change: dict[str, str], message: str
) -> None:
    jwk = {**KEYSET.jwks(time.time(), 60)["keys"][0], **change}
    with pytest.raises(ConfigError, match=message):
        PublishedKeys.from_jwks({"keys": [jwk]})


def test_a_private_jwk_is_refused() -> None:
    private = jwt.get_algorithm_by_name("ES256").to_jwk(KEYSET.active.private, as_dict=True)
    with pytest.raises(ConfigError, match="private"):
        PublishedKeys.from_jwks({"keys": [{**private, "kid": "k", "alg": "ES256"}]})


@pytest.mark.parametrize("document", [[], {"keys": "x"}, {"keys": [1]}, "keys"])
def test_a_document_that_is_no_jwk_set_is_refused(document: object) -> None:
    with pytest.raises(ConfigError):
        PublishedKeys.from_jwks(document)


async def test_an_unknown_kid_fetches_the_jwks_again(jwks_server: JsonServer) -> None:
    keys = RemoteJwks(jwks_server.url + "/.well-known/jwks.json", cooldown=0.1)
    engine = verifier_on(keys)
    await engine.start()
    try:
        assert keys.loaded
        assert len(jwks_server.hits) == 1
        rotated = KEYSET.rotate(time.time(), retain=60)
        jwks_server.document = rotated.jwks(time.time(), 60)
        await asyncio.sleep(0.15)
        assert (await engine.verify(signed(rotated))).sub == "s"
        assert len(jwks_server.hits) == 2
    finally:
        await engine.aclose()


async def test_made_up_kids_cost_one_fetch_per_cooldown(jwks_server: JsonServer) -> None:
    keys = RemoteJwks(jwks_server.url + "/.well-known/jwks.json", cooldown=30)
    engine = verifier_on(keys)
    await engine.start()
    try:
        await asyncio.sleep(0)
        results = await asyncio.gather(
            *(engine.verify(signed(KEYSET, kid=f"forged-{n}")) for n in range(200)),
            return_exceptions=True,
        )
        assert all(isinstance(r, InvalidToken) for r in results)
        assert len(jwks_server.hits) <= 2  # the start-up fetch, and at most one more
    finally:
        await engine.aclose()


async def test_without_the_jwks_the_verifier_is_unavailable_not_unauthorised() -> None:
    keys = RemoteJwks("http://127.0.0.1:9/jwks.json", cooldown=0.1, timeout=0.5)
    engine = verifier_on(keys)
    await engine.start()
    try:
        with pytest.raises(KeysUnavailable):
            engine.check_ready()
        with pytest.raises(KeysUnavailable):
            await engine.verify(signed(KEYSET))
    finally:
        await engine.aclose()
