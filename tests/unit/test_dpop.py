"""DPoP proofs (RFC 9449) as the checker reads them: proofs from joserfc (an outside
implementation) accepted, and every hostile variant refused."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from sessiond.errors import InvalidDpopProof, UseDpopNonce
from sessiond.tokens.dpop import (
    DpopRequest,
    ProofChecker,
    ReplayCache,
    normalize_url,
    thumbprint,
    token_hash,
)
from sessiond.tokens.dpop_nonces import DpopNonces
from support.dpop import (
    DpopClient,
    ath,
    curve_mismatch_proof,
    handmade_proof,
    hmac_proof,
    private_jwk_proof,
)

URL = "https://api.example.com/v1/accounts"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.fixture
def checker() -> ProofChecker:
    return ProofChecker(max_age=60, leeway=5, max_bytes=8192)


def check(
    checker: ProofChecker, proof: str, *, method: str = "GET", url: str = URL, **kw: str
) -> str:
    return checker.check(DpopRequest(proof, method, url), time.time(), **kw)


@pytest.mark.parametrize(
    "key",
    [
        (ECKey.generate_key("P-256"), "ES256"),
        (ECKey.generate_key("P-384"), "ES384"),
        (OKPKey.generate_key("Ed25519"), "EdDSA"),
        (RSAKey.generate_key(2048), "PS256"),
        (RSAKey.generate_key(2048), "RS256"),
    ],
    ids=["ES256", "ES384", "EdDSA", "PS256", "RS256"],
)
def test_a_joserfc_proof_is_accepted_and_names_its_key(
    checker: ProofChecker, key: tuple[ECKey | OKPKey | RSAKey, str]
) -> None:
    client = DpopClient(*key)
    proof = client.proof("GET", URL, TOKEN)
    assert check(checker, proof, access_token=TOKEN, jkt=client.jkt) == client.jkt


def test_the_thumbprint_is_rfc_7638s_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
            "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65"
            "YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyr"
            "dkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzK"
            "nqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_ath_is_rfc_9449s_example() -> None:
    example = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert token_hash(example) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    assert token_hash(TOKEN) == ath(TOKEN)


@pytest.mark.parametrize(
    ("sent", "signed"),
    [
        ("https://api.example.com/v1/accounts", "HTTPS://API.Example.COM:443/v1/accounts"),
        ("https://api.example.com/v1/a~b?page=2", "https://api.example.com/v1/a%7Eb#top"),
        ("http://localhost:8000/x%2fy", "http://LOCALHOST:8000/x%2Fy"),
        ("https://api.example.com", "https://api.example.com/"),
    ],
)
def test_htu_is_compared_after_normalisation_without_query_or_fragment(
    checker: ProofChecker, sent: str, signed: str
) -> None:
    assert normalize_url(sent) == normalize_url(signed)
    client = DpopClient()
    assert check(checker, client.proof("GET", signed), url=sent) == client.jkt


def test_normalisation_keeps_what_makes_urls_different() -> None:
    assert normalize_url("https://a.example/x") != normalize_url("http://a.example/x")
    assert normalize_url("https://a.example/x") != normalize_url("https://a.example:8443/x")
    assert normalize_url("https://a.example/x") != normalize_url("https://a.example/X")
    assert normalize_url("https://a.example/x%2Fy") != normalize_url("https://a.example/x/y")


def _other_key_proof() -> str:
    return DpopClient().proof("GET", URL, TOKEN)


def _replayed(checker: ProofChecker) -> str:
    proof = DpopClient().proof("GET", URL, TOKEN)
    check(checker, proof, access_token=TOKEN)
    return proof


HOSTILE: dict[str, Callable[[DpopClient, ProofChecker], str]] = {
    "wrong method": lambda c, _: c.proof("POST", URL, TOKEN),
    "wrong URL": lambda c, _: c.proof("GET", "https://api.example.com/v1/transfers", TOKEN),
    "other host": lambda c, _: c.proof("GET", "https://evil.example.com/v1/accounts", TOKEN),
    "old iat": lambda c, _: c.proof("GET", URL, TOKEN, iat=time.time() - 120),
    "future iat": lambda c, _: c.proof("GET", URL, TOKEN, iat=time.time() + 60),
    "iat as a string": lambda c, _: c.proof("GET", URL, TOKEN, claims={"iat": "now"}),
    "replayed jti": lambda _, checker: _replayed(checker),
    "wrong ath": lambda c, _: c.proof("GET", URL, TOKEN + "x"),
    "no ath": lambda c, _: c.proof("GET", URL),
    "no jti": lambda c, _: c.proof("GET", URL, TOKEN, claims={"jti": ""}),
    "another key": lambda _c, _: _other_key_proof(),
    "alg none": lambda c, _: handmade_proof(
        {"typ": "dpop+jwt", "alg": "none", "jwk": c.jwk}, "GET", URL
    ),
    "HS256 with a symmetric jwk": lambda _c, _: hmac_proof("GET", URL),
    "private key in the jwk": lambda _c, _: private_jwk_proof("GET", URL),
    "typ JWT": lambda c, _: c.proof("GET", URL, TOKEN, header={"typ": "JWT"}),
    "jku header": lambda c, _: c.proof("GET", URL, TOKEN, header={"jku": "https://evil.example"}),
    "no jwk": lambda _c, _: handmade_proof({"typ": "dpop+jwt", "alg": "ES256"}, "GET", URL, b"s"),
    "RSA 1024": lambda _c, _: DpopClient(RSAKey.generate_key(1024, auto_kid=False), "RS256").proof(
        "GET", URL, TOKEN
    ),
    "an access token instead": lambda _c, _: TOKEN,
    "garbage": lambda _c, _: "not a proof",
    "ES256 over a P-384 key": lambda _c, _: curve_mismatch_proof("GET", URL),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_every_hostile_proof_is_refused(checker: ProofChecker, case: str) -> None:
    client = DpopClient()
    proof = HOSTILE[case](client, checker)
    with pytest.raises(InvalidDpopProof):
        check(checker, proof, access_token=TOKEN, jkt=client.jkt)


def test_a_proof_whose_signature_does_not_match_its_jwk_is_refused(checker: ProofChecker) -> None:
    honest, other = DpopClient(), DpopClient()
    header = honest.proof("GET", URL).split(".")[0]
    _, payload, signature = other.proof("GET", URL).split(".")
    with pytest.raises(InvalidDpopProof, match="signature"):
        check(checker, f"{header}.{payload}.{signature}")


def test_the_jti_is_remembered_for_the_window_then_forgotten() -> None:
    cache = ReplayCache(ttl=10, max_entries=3)
    assert cache.first_use("a", now=100)
    assert not cache.first_use("a", now=109)
    assert cache.first_use("a", now=110.5)  # its first use expired at 110
    for key in "bcd":
        assert cache.first_use(key, now=111)
    assert len(cache) == 3  # bounded: "a" was forgotten first
    assert cache.first_use("e", now=200)
    assert len(cache) == 1


def test_with_nonces_a_proof_needs_a_current_one() -> None:
    nonces = DpopNonces(b"s" * 32, window=60)
    checker = ProofChecker(max_age=60, leeway=5, max_bytes=8192, nonces=nonces)
    client, now = DpopClient(), time.time()
    with pytest.raises(UseDpopNonce) as asked:
        check(checker, client.proof("GET", URL))
    nonce = asked.value.headers()["DPoP-Nonce"]
    assert nonce == nonces.current(now)
    assert 'error="use_dpop_nonce"' in asked.value.headers()["WWW-Authenticate"]
    assert check(checker, client.proof("GET", URL, claims={"nonce": nonce})) == client.jkt
    for stale in ("forged", DpopNonces(b"t" * 32, window=60).current(now)):
        with pytest.raises(UseDpopNonce):
            check(checker, client.proof("GET", URL, claims={"nonce": stale}))


def test_a_nonce_lives_one_to_two_windows_and_every_replica_knows_it() -> None:
    replica_a, replica_b = DpopNonces(b"shared", window=60), DpopNonces(b"shared", window=60)
    nonce = replica_a.current(1000.0)  # window 16 (960-1020)
    assert replica_b.accepts(nonce, 1000.0)
    assert replica_b.accepts(nonce, 1079.0)  # the next window
    assert not replica_b.accepts(nonce, 1080.0)
    assert not replica_b.accepts(None, 1000.0)
