"""JWT attack corpus (issue 6, point 1): hostile access tokens against the authority over HTTP.

Every case builds one hostile token and sends it three times, on each backend (memory store,
real Redis, real Redis and NATS):

- ``GET /v1/whoami`` with ``Authorization: Bearer <token>`` must answer 401 problem+json
  (RFC 9457) with a ``WWW-Authenticate: Bearer ...`` challenge (RFC 6750);
- ``POST /v1/introspect`` with the service credential must answer 200 ``{"active": false}``:
  RFC 7662 section 2.2 says an introspection endpoint answers an invalid, expired, revoked or
  otherwise unusable token with a 200 whose only member is ``active: false`` (not an error).
  The one exception is the refresh token: it *is* a valid token, and RFC 7662 lets the endpoint
  describe it, so introspection may say ``active: true`` for it, but only as a
  ``refresh_token``, never as an access token;
- ``GET /balance`` on a resource backend (a Litestar app with the verifier plugin, its keys
  read from the authority's published JWKS, its denylist the authority's) must answer 401
  problem+json with the challenge, like ``whoami``.

No case may be accepted, answer 5xx or stall: every request runs under a 2 s timeout. The
``jku``/``x5u`` cases point at a loopback HTTP server run by this module, which must receive no
request at all (the authority never fetches keys named by a token).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from sessiond.tokens.access import AccessTokenDecoder
from sessiond.tokens.jwks import PublishedKeys
from sessiond.verifier.engine import Verifier
from sessiond.verifier.litestar import AuthRequest, SessiondPlugin
from support.authority import Authority, assert_problem, bearer
from support.jws import b64, segment
from support.servers import JsonServer

REQUEST_TIMEOUT = 2.0
#: Order of the P-256 group (FIPS 186-4 / SEC 2).
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
MIN_CASES = 60
#: A DER-encoded ECDSA signature (r = s = 1), where JWS wants the 64-byte P1363 form.
DER_SIGNATURE = b"\x30\x06\x02\x01\x01\x02\x01\x01"


# --------------------------------------------------------------------------- loopback server


STREAM_TAG = uuid.uuid4().hex[:12]


@pytest.fixture(params=["memory", "redis", "redis+nats"])
def backend(request: pytest.FixtureRequest) -> dict[str, str] | None:
    """The corpus also runs against the distributed mode with real NATS (the revocation of the
    malleated-signature case travels through the stream)."""
    if request.param == "memory":
        return None
    settings = {"redis_url": request.getfixturevalue("redis_url")}
    if request.param == "redis+nats":
        settings["nats_url"] = request.getfixturevalue("nats_server").url
        # One stream for the module: each reserves its max_bytes of the server's storage.
        settings.update(nats_stream=f"C_{STREAM_TAG}", nats_subject=f"c{STREAM_TAG}.revocations")
    return settings


@pytest.fixture(scope="module")
def key_server() -> Iterator[JsonServer]:
    with JsonServer({"keys": []}) as server:
        yield server


# --------------------------------------------------------------------------- token building


@dataclass
class Ctx:
    authority: Authority
    key_server: JsonServer

    @property
    def kid(self) -> str:
        return self.authority.runtime.keyset.active.kid

    @property
    def private(self) -> ec.EllipticCurvePrivateKey:
        key = self.authority.runtime.keyset.active.private
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        key = self.authority.runtime.keyset.active.public
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key


Builder = Callable[[Ctx], str | Awaitable[str]]

ATTACKER = ec.generate_private_key(ec.SECP256R1())


def claims(ctx: Ctx, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    settings = ctx.authority.runtime.settings
    base: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": "mallory",
        "sid": "0" * 32,
        "jti": "forged-jti",
        "iat": now,
        "exp": now + 60,
    }
    base.update(changes)
    return base


def header(ctx: Ctx, **changes: Any) -> dict[str, Any]:
    return {"alg": "ES256", "typ": "at+jwt", "kid": ctx.kid, **changes}


def es256_raw(private: ec.EllipticCurvePrivateKey, signing_input: str) -> bytes:
    der = private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def es256(
    ctx: Ctx,
    payload: dict[str, Any] | bytes,
    head: dict[str, Any] | bytes | None = None,
    private: ec.EllipticCurvePrivateKey | None = None,
) -> str:
    """A compact JWS signed (ES256, P1363 signature) with our key unless ``private`` is given."""
    h = head if head is not None else header(ctx)
    signing_input = f"{segment(h)}.{segment(payload)}"
    return f"{signing_input}.{b64(es256_raw(private or ctx.private, signing_input))}"


def hs256(ctx: Ctx, secret: bytes) -> str:
    signing_input = f"{segment(header(ctx, alg='HS256'))}.{segment(claims(ctx))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def valid(ctx: Ctx) -> str:
    return es256(ctx, claims(ctx))


def unsigned(alg: str) -> Builder:
    return lambda ctx: f"{segment(header(ctx, alg=alg))}.{segment(claims(ctx))}."


def edited_payload(**changes: Any) -> Builder:
    def build(ctx: Ctx) -> str:
        head, _, signature = valid(ctx).split(".")
        return f"{head}.{segment(claims(ctx, **changes))}.{signature}"

    return build


def psychic(r: int, s: int) -> Builder:
    def build(ctx: Ctx) -> str:
        signing_input = f"{segment(header(ctx))}.{segment(claims(ctx))}"
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert len(signature) == 64
        return f"{signing_input}.{b64(signature)}"

    return build


def with_claim(name: str, value: Any) -> Builder:
    return lambda ctx: es256(ctx, claims(ctx, **{name: value}))


def with_issuer(change: Callable[[str], str]) -> Builder:
    return lambda ctx: es256(ctx, claims(ctx, iss=change(ctx.authority.runtime.settings.issuer)))


def with_kid(kid: Any) -> Builder:
    return lambda ctx: es256(ctx, claims(ctx), header(ctx, kid=kid), ATTACKER)


def attacker_jwk() -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ATTACKER.public_key()))
    return jwk


def embedded_jwk(ours: bool) -> Builder:
    def build(ctx: Ctx) -> str:
        head = header(ctx, jwk=attacker_jwk())
        if not ours:
            head["kid"] = attacker_jwk().get("kid", "attacker")
        return es256(ctx, claims(ctx), head, ATTACKER)

    return build


def remote_key(member: str, sign_with_ours: bool) -> Builder:
    def build(ctx: Ctx) -> str:
        head = header(ctx, **{member: f"{ctx.key_server.url}/{member}/keys.json"})
        if sign_with_ours:
            return es256(ctx, claims(ctx), head)
        head["kid"] = "attacker"
        return es256(ctx, claims(ctx), head, ATTACKER)

    return build


def pem(ctx: Ctx) -> bytes:
    return ctx.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def der(ctx: Ctx) -> bytes:
    return ctx.public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def x962(ctx: Ctx) -> bytes:
    return ctx.public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def jwk_json(ctx: Ctx) -> bytes:
    return jwt.algorithms.ECAlgorithm.to_jwk(ctx.public).encode()


def standard_alphabet(token: str) -> str:
    """``token`` in base64's standard alphabet; a token with neither ``-`` nor ``_`` gets a
    ``+`` appended, so the case always differs from a valid token."""
    converted = token.replace("-", "+").replace("_", "/")
    return converted if converted != token else token + "+"


def replace_segment(index: int, change: Callable[[str], str]) -> Builder:
    def build(ctx: Ctx) -> str:
        parts = valid(ctx).split(".")
        parts[index] = change(parts[index])
        return ".".join(parts)

    return build


def json_serialisation(general: bool) -> Builder:
    def build(ctx: Ctx) -> str:
        head_seg, payload_seg, signature = valid(ctx).split(".")
        signature_member = {"protected": head_seg, "signature": signature}
        body: dict[str, Any] = {"payload": payload_seg}
        if general:
            body["signatures"] = [signature_member]
        else:
            body.update(signature_member)
        return json.dumps(body, separators=(",", ":"))

    return build


def jwe(ctx: Ctx) -> str:
    head = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "typ": "at+jwt", "kid": ctx.kid}
    return ".".join(
        [segment(head), b64(b"k" * 256), b64(b"i" * 12), b64(b"c" * 100), b64(b"t" * 16)]
    )


async def refresh_token(ctx: Ctx) -> str:
    token: str = (await ctx.authority.login("alice"))["refresh_token"]
    return token


async def malleated_after_logout(ctx: Ctx) -> str:
    """A real access token whose session was logged out, with its signature turned into
    (r, n - s): still a valid ECDSA signature, so only the denylist can reject it."""
    authority = ctx.authority
    access: str = (await authority.login("alice"))["access_token"]
    assert (await authority.whoami(access)).status_code == 200
    response = await authority.http.post("/v1/logout", headers=bearer(access))
    assert response.status_code in (200, 202, 204), response.text
    signing_input, _, signature_seg = access.rpartition(".")
    raw = base64.urlsafe_b64decode(signature_seg + "=" * (-len(signature_seg) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    malleated_s = P256_N - s
    assert malleated_s != s
    token = f"{signing_input}.{b64(r.to_bytes(32, 'big') + malleated_s.to_bytes(32, 'big'))}"
    assert token != access
    # The malleated signature verifies cryptographically, with the raw primitive...
    try:
        ctx.public.verify(
            encode_dss_signature(r, malleated_s), signing_input.encode(), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:  # pragma: no cover - would make the case meaningless
        pytest.fail("the malleated signature does not verify")
    # ...and through the JWT library the service uses, with our issuer and audience.
    settings = authority.runtime.settings
    decoded = jwt.decode(
        token,
        ctx.public,
        algorithms=["ES256"],
        audience=settings.audience,
        issuer=settings.issuer,
    )
    assert decoded["sub"] == "alice"
    return token


def oversized(ctx: Ctx) -> str:
    cap = ctx.authority.runtime.settings.max_token_bytes
    token = es256(ctx, claims(ctx, padding="x" * cap))
    assert cap < len(token) < 16384
    return token


def _bad_utf8_payload(ctx: Ctx) -> bytes:
    body = json.dumps(claims(ctx), separators=(",", ":")).encode()
    return body.replace(b'"mallory"', b'"mall\xc3\x28ry"')


# --------------------------------------------------------------------------- the corpus

CLAIM_VALUES: dict[str, dict[str, Any]] = {
    "iss": {"string": "https://evil.example", "number": 1, "array": ["sessiond"]},
    "aud": {"string": "another-service", "number": 1, "array": ["sessiond"]},
    "sub": {"string": "", "number": 42, "array": ["alice"]},
    "sid": {"string": "", "number": 42, "array": ["0" * 32]},
    "jti": {"string": "", "number": 42, "array": ["forged-jti"]},
    "iat": {"string": str(int(time.time())), "number": time.time() + 0.5, "array": [0]},
    "exp": {"string": str(int(time.time()) + 60), "number": time.time() + 60.5, "array": [0]},
}

CASES: list[tuple[str, Builder]] = [
    ("payload-edited-sub", edited_payload(sub="admin")),
    ("payload-edited-exp", edited_payload(exp=int(time.time()) + 10**6)),
    *[(f"alg-{alg}", unsigned(alg)) for alg in ("none", "None", "NONE", "nOnE")],
    (
        "alg-none-with-real-signature",
        lambda ctx: (
            f"{segment(header(ctx, alg='none'))}.{segment(claims(ctx))}."
            + valid(ctx).rsplit(".", 1)[1]
        ),
    ),
    ("signature-empty", lambda ctx: valid(ctx).rsplit(".", 1)[0] + "."),
    ("signature-truncated-chars", lambda ctx: valid(ctx)[:-10]),
    ("signature-truncated-32-bytes", replace_segment(2, lambda sig: sig[:43])),
    ("signature-der-encoded", replace_segment(2, lambda _: b64(DER_SIGNATURE))),
    ("hs256-empty-key", lambda ctx: hs256(ctx, b"")),
    *[
        (f"hs256-weak-{weak}", (lambda w: lambda ctx: hs256(ctx, w.encode()))(weak))
        for weak in ("secret", "password", "changeme", "sessiond")
    ],
    ("hs256-key-is-kid", lambda ctx: hs256(ctx, ctx.kid.encode())),
    ("hs256-public-key-pem", lambda ctx: hs256(ctx, pem(ctx))),
    ("hs256-public-key-pem-stripped", lambda ctx: hs256(ctx, pem(ctx).strip())),
    ("hs256-public-key-der", lambda ctx: hs256(ctx, der(ctx))),
    ("hs256-public-key-x962", lambda ctx: hs256(ctx, x962(ctx))),
    ("hs256-public-key-jwk", lambda ctx: hs256(ctx, jwk_json(ctx))),
    ("embedded-jwk-our-kid", embedded_jwk(ours=True)),
    ("embedded-jwk-attacker-kid", embedded_jwk(ours=False)),
    ("jku-attacker-key", remote_key("jku", sign_with_ours=False)),
    ("jku-signed-by-us", remote_key("jku", sign_with_ours=True)),
    ("x5u-attacker-key", remote_key("x5u", sign_with_ours=False)),
    ("x5u-signed-by-us", remote_key("x5u", sign_with_ours=True)),
    ("kid-path-traversal", with_kid("../../etc/passwd")),
    ("kid-path-traversal-null", with_kid("../../../../dev/null")),
    ("kid-sql", with_kid("' OR 1=1 --")),
    ("kid-shell", with_kid("$(id)")),
    ("kid-shell-backticks", with_kid("`id`; sleep 5")),
    ("kid-empty", with_kid("")),
    ("kid-null", with_kid(None)),
    ("kid-number", with_kid(1)),
    ("kid-7kb", with_kid("A" * 7 * 1024)),
    ("kid-10kb", with_kid("A" * 10 * 1024)),
    *[
        (f"psychic-r{rn}-s{sn}", psychic(r, s))
        for rn, r in (("0", 0), ("1", 1), ("n-1", P256_N - 1), ("n", P256_N))
        for sn, s in (("0", 0), ("1", 1), ("n-1", P256_N - 1), ("n", P256_N))
    ],
    ("malleated-signature-revoked-session", malleated_after_logout),
    (
        "crit-unknown",
        lambda ctx: es256(ctx, claims(ctx), header(ctx, crit=["x-unknown"], **{"x-unknown": 1})),
    ),
    ("segments-2", lambda ctx: valid(ctx).rsplit(".", 1)[0]),
    ("segments-4", lambda ctx: valid(ctx) + "." + b64(b"extra")),
    ("segments-5", lambda ctx: valid(ctx) + "." + b64(b"extra") + "." + b64(b"more")),
    ("jws-json-flattened", json_serialisation(general=False)),
    ("jws-json-general", json_serialisation(general=True)),
    ("jwe-compact-5-parts", jwe),
    ("b64-plus-in-header", replace_segment(0, lambda seg: "+" + seg[1:])),
    ("b64-slash-in-payload", replace_segment(1, lambda seg: seg[:5] + "/" + seg[6:])),
    ("b64-star-in-signature", replace_segment(2, lambda seg: seg[:-1] + "*")),
    ("b64-padding-header", replace_segment(0, lambda seg: seg + "=" * (-len(seg) % 4 or 2))),
    ("b64-padding-signature", replace_segment(2, lambda seg: seg + "==")),
    ("b64-standard-alphabet", lambda ctx: standard_alphabet(valid(ctx))),
    (
        "utf8-bad-header",
        lambda ctx: es256(ctx, claims(ctx), b'{"alg":"ES256","typ":"at+jwt","kid":"\xff\xfe"}'),
    ),
    (
        "utf8-bad-payload-signed-by-us",
        lambda ctx: es256(ctx, _bad_utf8_payload(ctx)),
    ),
    *[
        (f"claim-{name}-{kind}", with_claim(name, value))
        for name, wrong in CLAIM_VALUES.items()
        for kind, value in (("null", None), ("true", True), *wrong.items())
    ],
    ("iss-prefix", with_issuer(lambda iss: iss[:-1])),
    ("iss-superstring", with_issuer(lambda iss: iss + "-evil")),
    ("iss-url-superstring", with_issuer(lambda iss: f"https://{iss}.evil.example")),
    ("iss-upper-case", with_issuer(lambda iss: iss.upper())),
    ("iss-capitalised", with_issuer(lambda iss: iss.capitalize())),
    ("refresh-token-as-access-token", refresh_token),
    ("over-size-cap", oversized),
]


# --------------------------------------------------------------------------- a backend


class PublishedKeysOf:
    """A :class:`~sessiond.verifier.keys.KeySource` holding the authority's JWKS, as a backend
    that fetched it would."""

    loaded = True

    def __init__(self, authority: Authority) -> None:
        runtime = authority.runtime
        self.keys = PublishedKeys.from_jwks(runtime.keyset.jwks(time.time(), runtime.key_retention))

    def current(self) -> PublishedKeys:
        return self.keys

    async def refresh(self) -> bool:
        return False

    fetched_at = float("inf")  # these keys are the whole truth

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def resource_backend(authority: Authority) -> AsyncTestClient[Litestar]:
    """A Litestar app behind the verifier plugin, sharing the authority's denylist."""
    runtime, keys = authority.runtime, PublishedKeysOf(authority)
    decoder = AccessTokenDecoder(
        keys.current,
        issuer=runtime.settings.issuer,
        audience=runtime.settings.audience,
        leeway=runtime.settings.leeway,
        max_bytes=runtime.settings.max_token_bytes,
        retain=runtime.key_retention,
    )
    verifier = Verifier(decoder, keys, runtime.denylist, staleness=runtime.bus.staleness)

    @get("/balance")
    async def balance(request: AuthRequest) -> dict[str, str]:
        return {"owner": request.user.sub}

    app = Litestar([balance], plugins=[SessiondPlugin(verifier=verifier)], logging_config=None)
    return AsyncTestClient(app)


# --------------------------------------------------------------------------- the tests


async def within(request: Awaitable[httpx.Response]) -> httpx.Response:
    """The response, or a failure if the authority stalls."""
    try:
        return await asyncio.wait_for(request, REQUEST_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"no answer within {REQUEST_TIMEOUT} s")


async def test_a_well_formed_token_is_accepted(
    authority: Authority, key_server: JsonServer
) -> None:
    """The control: the builders sign correctly, so each case fails for its own reason."""
    ctx = Ctx(authority, key_server)
    token = valid(ctx)
    response = await within(authority.whoami(token))
    assert response.status_code == 200, response.text
    async with resource_backend(authority) as backend:
        response = await within(backend.get("/balance", headers=bearer(token)))
    assert response.json() == {"owner": "mallory"}, response.text


@pytest.mark.parametrize("build", [build for _, build in CASES], ids=[name for name, _ in CASES])
async def test_hostile_token_is_rejected(
    authority: Authority, key_server: JsonServer, build: Builder
) -> None:
    ctx = Ctx(authority, key_server)
    built = build(ctx)
    token = built if isinstance(built, str) else await built
    is_refresh = build is refresh_token

    response = await within(
        authority.http.get("/v1/whoami", headers=bearer(token), timeout=REQUEST_TIMEOUT)
    )
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers

    response = await within(
        authority.http.post(
            "/v1/introspect",
            data={"token": token},
            headers=authority.service,
            timeout=REQUEST_TIMEOUT,
        )
    )
    assert response.status_code == 200, response.text
    body = response.json()
    if is_refresh:
        # RFC 7662 lets the endpoint describe a refresh token; never as an access token.
        assert body.get("token_type") in (None, "refresh_token"), body
    else:
        assert body == {"active": False}, body

    async with resource_backend(authority) as backend:
        response = await within(backend.get("/balance", headers=bearer(token)))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers

    assert key_server.hits == [], "the authority or the backend fetched a key named by a token"


def test_the_corpus_does_not_shrink() -> None:
    names = [name for name, _ in CASES]
    assert len(names) == len(set(names)), "duplicate case ids"
    assert len(CASES) >= MIN_CASES, len(CASES)
