"""The floor of ``python -m bench authority``: session create and refresh as a user could write
them by hand in an afternoon, with the same wire format as sessiond's ``POST /v1/sessions`` and
``POST /v1/tokens/refresh`` but none of its other work (no rate limits, audit trail, metrics,
session limit, reuse detection, custom claims or cookie mode).

- create: the service credential's SHA-256 compared in constant time with the configured hash;
  a session id and a 256-bit refresh secret, kept as its SHA-256; one MULTI/EXEC of HSET and
  EXPIRE of the session hash, ZADD to the subject's index and EXPIRE of the index; an ES256
  access token signed with PyJWT;
- refresh: WATCH the session, HMGET it, compare the presented secret's hash, then one
  MULTI/EXEC of HSET (the new hash) and EXPIRE; a new ES256 access token.

Settings from the environment: :data:`~bench.apps.REDIS_ENV` (keys under ``floor:``) and
:data:`CREDENTIAL_HASH_ENV`, the hex SHA-256 of the service credential. The signing key is made
at start-up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from typing import Any, cast

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar, Request, get, post
from litestar.exceptions import NotAuthorizedException, ValidationException
from redis.asyncio import Redis
from redis.exceptions import WatchError

from bench.apps import REDIS_ENV
from sessiond.redis_client import blocking_client

__all__ = ("CREDENTIAL_HASH_ENV", "create_app")

#: The hex SHA-256 of the one service credential that may create sessions.
CREDENTIAL_HASH_ENV = "BENCH_FLOOR_CREDENTIAL_HASH"
ACCESS_TTL = 300
SESSION_TTL = 86400
PREFIX = "floor:"
ISSUER = "floor"


class Device(msgspec.Struct):
    label: str | None = None


class CreateBody(msgspec.Struct):
    subject: str
    device: Device | None = None


class RefreshBody(msgspec.Struct):
    refresh_token: str


class Tokens(msgspec.Struct):
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, no secret


def _digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


class Floor:
    """The two handlers' state: Redis, the signing key, the credential's hash."""

    def __init__(self, redis: Redis, credential_hash: str) -> None:
        self.redis = redis
        self.credential_hash = credential_hash
        self.key = ec.generate_private_key(ec.SECP256R1())

    def authenticate(self, authorization: str | None) -> None:
        _, _, secret = (authorization or "").partition(" ")
        if not hmac.compare_digest(_digest(secret.encode()), self.credential_hash):
            raise NotAuthorizedException("unknown credential")

    def tokens(self, sid: str, sub: str, secret: bytes, now: float) -> Tokens:
        iat = int(now)
        claims = {
            "iss": ISSUER,
            "aud": ISSUER,
            "sub": sub,
            "sid": sid,
            "jti": secrets.token_urlsafe(16),
            "iat": iat,
            "exp": iat + ACCESS_TTL,
        }
        access = jwt.encode(claims, self.key, algorithm="ES256")
        refresh = f"{sid}.{base64.urlsafe_b64encode(secret).rstrip(b'=').decode()}"
        return Tokens(access, ACCESS_TTL, refresh, SESSION_TTL, sid)

    async def create(self, body: CreateBody) -> Tokens:
        sid, secret, now = secrets.token_hex(16), secrets.token_bytes(32), time.time()
        session, index = f"{PREFIX}s:{sid}", f"{PREFIX}u:{body.subject}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(session, mapping={"sub": body.subject, "hash": _digest(secret)})
            pipe.expire(session, SESSION_TTL)
            pipe.zadd(index, {sid: now + SESSION_TTL})
            pipe.expire(index, SESSION_TTL)
            await pipe.execute()
        return self.tokens(sid, body.subject, secret, now)

    async def refresh(self, body: RefreshBody) -> Tokens:
        sid, _, encoded = body.refresh_token.partition(".")
        try:
            presented = base64.urlsafe_b64decode(encoded + "=")
        except ValueError:
            raise ValidationException("malformed refresh token") from None
        session, secret = f"{PREFIX}s:{sid}", secrets.token_bytes(32)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(session)
                fields = await pipe.hmget(session, ["sub", "hash"])
                sub, stored = cast(list[bytes | None], fields)
                if sub is None or stored is None:
                    raise ValidationException("session expired or unknown")
                if not hmac.compare_digest(_digest(presented).encode(), stored):
                    raise ValidationException("invalid refresh token")
                pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py 8.1
                pipe.hset(session, "hash", _digest(secret))
                pipe.expire(session, SESSION_TTL)
                await pipe.execute()
        except WatchError:
            raise ValidationException("refreshed concurrently") from None
        return self.tokens(sid, sub.decode(), secret, time.time())


def create_app() -> Litestar:
    """The floor app (``granian --factory bench.apps.floor:create_app``)."""
    redis = blocking_client(os.environ[REDIS_ENV], max_connections=64, timeout=5.0)
    floor = Floor(redis, os.environ[CREDENTIAL_HASH_ENV])

    @post("/v1/sessions", status_code=201)
    async def create_session(data: CreateBody, request: Request[Any, Any, Any]) -> Tokens:
        floor.authenticate(request.headers.get("authorization"))
        return await floor.create(data)

    @post("/v1/tokens/refresh", status_code=200)
    async def refresh(data: RefreshBody) -> Tokens:
        return await floor.refresh(data)

    @get("/readyz", sync_to_thread=False)
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[create_session, refresh, ready])
