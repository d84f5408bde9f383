"""A DPoP client (RFC 9449) made with joserfc, an implementation sessiond does not use: its
proofs are what an outside client sends, and its hostile variants what an attacker would."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

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


def handmade_proof(header: dict[str, Any], method: str, url: str, signature: bytes = b"") -> str:
    """A proof with ``header`` and a fresh payload for ``method`` and ``url``, assembled by
    hand (``alg: none`` and such) with ``signature`` as its signature."""
    claims = {"jti": secrets.token_urlsafe(8), "htm": method, "htu": url, "iat": int(time.time())}
    return f"{segment(header)}.{segment(claims)}.{b64(signature)}"


def hmac_proof(method: str, url: str) -> str:
    """An HS256 proof whose ``jwk`` is the symmetric key that signed it."""
    return DpopClient(OctKey.generate_key(256), "HS256").proof(method, url)  # type: ignore[arg-type]


def private_jwk_proof(method: str, url: str) -> str:
    """A proof whose ``jwk`` header carries the private key (``d``) too."""
    client = DpopClient()
    return client.proof(method, url, header={"jwk": dict(client.key.as_dict(private=True))})
