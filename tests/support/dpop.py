"""A DPoP client (RFC 9449) made with joserfc, an implementation sessiond does not use: its
proofs are what an outside client sends, and its hostile variants what an attacker would."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from support.jws import b64, segment

Key = ECKey | OKPKey | RSAKey


class DpopClient:
    """A client's key pair and the proofs it signs (ES256 by default)."""

    def __init__(self, key: Key | None = None, alg: str = "ES256") -> None:
        self.key: Key = key or ECKey.generate_key("P-256")
        self.alg = alg

    @property
    def jkt(self) -> str:
        """The RFC 7638 thumbprint of the public key, as joserfc computes it."""
        return str(self.key.thumbprint())

    @property
    def jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    def proof(
        self,
        method: str,
        url: str,
        access_token: str | None = None,
        *,
        iat: float | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A proof for ``method`` and ``url`` (and ``access_token``: its ``ath``) made at
        ``iat``; ``header`` and ``claims`` override or add members."""
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
            **({"ath": ath(access_token)} if access_token is not None else {}),
            **(claims or {}),
        }
        head = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk, **(header or {})}
        return str(jwt.encode(head, body, self.key, algorithms=[self.alg]))

    def headers(
        self, method: str, url: str, access_token: str | None = None, **kwargs: Any
    ) -> dict[str, str]:
        """The request headers: the proof, and ``Authorization: DPoP`` with a token."""
        headers = {"DPoP": self.proof(method, url, access_token, **kwargs)}
        if access_token is not None:
            headers["Authorization"] = f"DPoP {access_token}"
        return headers


def ath(access_token: str) -> str:
    return b64(hashlib.sha256(access_token.encode()).digest())


def handmade_proof(
    header: dict[str, Any],
    method: str,
    url: str,
    signature: bytes = b"",
    sign: Callable[[bytes], bytes] | None = None,
) -> str:
    """A proof with ``header`` and a fresh payload for ``method`` and ``url``, assembled by
    hand (``alg: none`` and such) with ``signature``, or what ``sign`` makes of the signing
    input, as its signature."""
    claims = {"jti": secrets.token_urlsafe(8), "htm": method, "htu": url, "iat": int(time.time())}
    signing_input = f"{segment(header)}.{segment(claims)}"
    if sign is not None:
        signature = sign(signing_input.encode())
    return f"{signing_input}.{b64(signature)}"


def curve_mismatch_proof(method: str, url: str) -> str:
    """An ``ES256`` proof whose ``jwk`` is a P-384 key, which signed it (SHA-256, raw r || s):
    the key is not the algorithm's."""
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = dict(ECKey.import_key(key).as_dict(private=False))

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(48, "big") + s.to_bytes(48, "big")

    return handmade_proof({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}, method, url, sign=sign)


def hmac_proof(method: str, url: str) -> str:
    """An HS256 proof whose ``jwk`` is the symmetric key that signed it."""
    return DpopClient(OctKey.generate_key(256), "HS256").proof(method, url)  # type: ignore[arg-type]


def private_jwk_proof(method: str, url: str) -> str:
    """A proof whose ``jwk`` header carries the private key (``d``) too."""
    client = DpopClient()
    return client.proof(method, url, header={"jwk": dict(client.key.as_dict(private=True))})
