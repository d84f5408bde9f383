"""The six apps of the verifier benchmark (``bench/apps/``), the authority whose tokens (b)
and (c) verify, and the checks each app passes before it is measured: it authenticates, and
rejects a revoked token through its own mechanism (so none is measured with its revocation
check switched off)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import httpx
import jwt
import redis
from litestar.security.jwt import Token

from bench._processes import NO_RATE_LIMITS, BenchError
from bench._report import progress
from bench._sessions import create_session
from bench._wrk import run_wrk, wrk_command
from bench.apps import REDIS_ENV, SECRET_ENV
from bench.apps.jwt_denylist import DENYLIST_PREFIX
from sessiond.cluster import LocalCluster, ManagedProcess, ProcessSpec
from sessiond.cluster.processes import tcp_probe
from sessiond.cluster.specs import asgi_app
from sessiond.settings import PREFIX

__all__ = ("APPS", "App", "Authority", "Running", "running_authority", "start_app")

ACCESS_TTL = 3600
REQUEST_TIMEOUT = 10.0
REVOCATION_DEADLINE = 5.0
ROOT = Path(__file__).resolve().parent.parent
PATH = "/balance"
SUBJECT = "bench-alice"


@dataclass(frozen=True)
class App:
    """One of the six apps: its letter, label and module in ``bench/apps``."""

    letter: str
    label: str
    module: str

    def spec(self) -> ProcessSpec:
        """granian, one worker, the app's factory; ready once it answers HTTP at all."""
        spec = asgi_app(f"bench.apps.{self.module}:create_app", working_dir=ROOT, factory=True)
        probe = tcp_probe(
            f"GET {PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
            b"HTTP/1.1 ",
        )
        return dataclasses.replace(spec, name=f"app {self.letter}", probe=probe)


APPS: Final = (
    App("a", "(a) no auth (ceiling)", "none"),
    App("b", "(b) sessiond plugin", "plugin"),
    App("c", "(c) sessiond ASGI middleware", "middleware"),
    App("d", "(d) Litestar JWTAuth", "jwt_auth"),
    App("e", "(e) JWTAuth + Redis denylist", "jwt_denylist"),
    App("f", "(f) SessionAuth + RedisStore", "sessions"),
)


@dataclass(frozen=True)
class Authority:
    """The running authority and what the apps need from it."""

    cluster: LocalCluster
    url: str
    access_token: str
    app_redis_url: str
    jwt_secret: str

    def env(self) -> dict[str, str]:
        """The environment every app gets on top of this process's (less ``SESSIOND_*``)."""
        return {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            f"{PREFIX}JWKS_URL": f"{self.url}/.well-known/jwks.json",
            **self.cluster.nats_login("verifier"),
            f"{PREFIX}ACCESS_TTL": str(ACCESS_TTL),
            SECRET_ENV: self.jwt_secret,
            REDIS_ENV: self.app_redis_url,
        }


@contextlib.contextmanager
def running_authority() -> Iterator[Authority]:
    """Redis, NATS and one ``sessiond serve`` (distributed mode, one-hour access tokens) and
    an access token of a fresh session."""
    env = {f"{PREFIX}ACCESS_TTL": str(ACCESS_TTL), f"{PREFIX}LOG_LEVEL": "warning"}
    with LocalCluster(replicas=1, relay=False, env={**env, **NO_RATE_LIMITS}) as cluster:
        url = cluster.urls[0]
        tokens = create_session(url, cluster.credential, SUBJECT)
        yield Authority(
            cluster=cluster,
            url=url,
            access_token=tokens["access_token"],
            # The apps' own keys go to database 1, apart from the authority's.
            app_redis_url=cluster.redis.url.rsplit("/", 1)[0] + "/1",
            jwt_secret=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        )


def litestar_token(secret: str, subject: str) -> str:
    """An HS256 token for (d) and (e), made the way Litestar's ``JWTAuth`` makes them."""
    expires = datetime.now(UTC) + timedelta(seconds=ACCESS_TTL)
    return Token(sub=subject, exp=expires, jti=os.urandom(16).hex()).encode(secret, "HS256")


class Checks:
    """Per app: the headers to measure with, after checking that the app authenticates, and
    rejects a revoked token, for real."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def headers(self, app: App, http: httpx.Client) -> dict[str, str]:
        """Check ``app`` (running at ``http``'s base URL); the headers wrk is to send."""
        auth = self.authority
        if app.letter != "a":
            _expect(app, http.get(PATH), 401)  # no credentials: rejected
        if app.letter == "a":
            headers: dict[str, str] = {}
        elif app.letter in "bc":
            headers = _bearer(auth.access_token)
            self._sessiond_revocation(http)
        elif app.letter in "de":
            headers = _bearer(litestar_token(auth.jwt_secret, SUBJECT))
            if app.letter == "e":
                self._redis_revocation(http)
        else:
            response = http.post("/login", json={"sub": SUBJECT})
            _expect(app, response, 204)
            cookie = response.cookies.get("session")
            if not cookie:
                raise BenchError(f"{app.label}: POST /login set no session cookie")
            headers = {"Cookie": f"session={cookie}"}
            http.cookies.clear()  # wrk sends it, not this client
        response = http.get(PATH, headers=headers)
        _expect(app, response, 200)
        subject = "anonymous" if app.letter == "a" else SUBJECT
        if response.json().get("subject") != subject:
            raise BenchError(f"{app.label}: expected subject {subject!r}, got {response.text}")
        return headers

    def _sessiond_revocation(self, http: httpx.Client) -> None:
        """A second session, accepted, revoked at the authority: must be rejected here."""
        auth = self.authority
        tokens = create_session(auth.url, auth.cluster.credential, f"{SUBJECT}-revoked")
        headers = _bearer(tokens["access_token"])
        _expect_status(http, headers, 200, "a valid sessiond token")
        response = httpx.delete(
            f"{auth.url}/v1/sessions/{tokens['session_id']}",
            headers={"Authorization": f"Bearer {auth.cluster.credential}"},
            timeout=REQUEST_TIMEOUT,
        )
        if response.status_code != 204:
            raise BenchError(f"revoke: {response.status_code} {response.text}")
        _expect_status(http, headers, 401, "a revoked sessiond token", REVOCATION_DEADLINE)

    def _redis_revocation(self, http: httpx.Client) -> None:
        """A second token, accepted, then its ``jti`` in the Redis denylist: rejected."""
        token = litestar_token(self.authority.jwt_secret, f"{SUBJECT}-revoked")
        headers = _bearer(token)
        _expect_status(http, headers, 200, "a valid JWTAuth token")
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        _redis_set(self.authority.app_redis_url, f"{DENYLIST_PREFIX}{jti}")
        _expect_status(http, headers, 401, "a JWTAuth token in the Redis denylist")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _expect(app: App, response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise BenchError(
            f"{app.label}: GET {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {response.text[:300]}"
        )


def _expect_status(
    http: httpx.Client, headers: Mapping[str, str], status: int, what: str, within: float = 0.0
) -> None:
    """``GET /balance`` with ``headers`` answers ``status`` (polled for ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        got = http.get(PATH, headers=headers).status_code
        if got == status:
            return
        if time.monotonic() >= deadline:
            raise BenchError(f"{what}: GET {PATH} answered {got}, expected {status}")
        time.sleep(0.01)


def _redis_set(url: str, key: str) -> None:
    """``SET key 1`` in the apps' Redis (synchronous: no event loop runs here)."""
    with redis.Redis.from_url(url) as client:
        client.set(key, b"1")


@dataclass(frozen=True)
class Running:
    """A started app, checked, and the headers wrk sends to it."""

    app: App
    process: ManagedProcess
    headers: dict[str, str]

    @property
    def url(self) -> str:
        return f"{self.process.url}{PATH}"


def start_app(
    stack: contextlib.ExitStack,
    app: App,
    authority: Authority,
    work_dir: Path,
    *,
    warmup: int,
    connections: int,
) -> Running:
    """Start ``app`` (stopped when ``stack`` closes), check it, warm it up for ``warmup``
    seconds on ``connections`` connections."""
    progress(f"{app.label}: starting, checking, warm-up {warmup} s")
    base = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    process = stack.enter_context(
        ManagedProcess(
            app.spec(), directory=work_dir / f"app-{app.letter}", base_env=base, env=authority.env()
        )
    )
    with httpx.Client(base_url=process.url, timeout=REQUEST_TIMEOUT) as http:
        headers = Checks(authority).headers(app, http)
    running = Running(app, process, headers)
    if warmup > 0:
        run_wrk(wrk_command(running.url, headers, warmup, connections), warmup)
    return running
