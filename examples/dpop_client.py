"""A DPoP client (RFC 9449) in a few lines of PyJWT: a key that never leaves the client, and a
proof signed with it for each request.

::

    python examples/dpop_client.py METHOD URL [ACCESS_TOKEN]

prints a proof for ``METHOD URL`` (with an access token: bound to it by ``ath``), signed with
the P-256 key in the file ``$DPOP_KEY`` (default ``dpop-key.pem``), which is made on first use.
The README's walk-through sends these proofs with curl.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The client's key in ``path``, made (readable by its owner only) if there is none."""
    if not path.exists():
        new = ec.generate_private_key(ec.SECP256R1())
        pem = new.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SystemExit(f"{path}: not an EC private key")
    return key


def proof(
    key: ec.EllipticCurvePrivateKey, method: str, url: str, access_token: str | None = None
) -> str:
    """A DPoP proof for one request: ``typ: dpop+jwt``, the public key as ``jwk``, a fresh
    ``jti``, the method and URL, the time, and the access token's hash as ``ath``."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
    if access_token is not None:
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk})


if __name__ == "__main__":
    method, url, *token = sys.argv[1:]
    key = load_key(Path(os.environ.get("DPOP_KEY", "dpop-key.pem")))
    print(proof(key, method, url, *token))
