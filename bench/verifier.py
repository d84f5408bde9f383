"""Verifier throughput: sessiond's plugin and middleware against no auth and Litestar's own.

Six tiny Litestar apps (``bench/apps/``), identical apart from authentication, each serve the
same protected ``GET /balance`` (a small JSON body made from the caller's subject):

(a) no authentication at all: the ceiling;
(b) the sessiond Litestar plugin (``SessiondPlugin``, settings from ``SESSIOND_*``);
(c) the sessiond pure ASGI middleware (``SessiondMiddleware``) around the app of (a);
(d) Litestar's ``JWTAuth`` (HS256, one secret, the user made from the token without I/O);
(e) the same plus a ``revoked_token_handler`` asking a Redis denylist (``EXISTS``) per request,
    the usual way to make such tokens revocable;
(f) Litestar's ``SessionAuth`` with server-side sessions in a ``RedisStore`` (its session
    middleware reads the session and writes it back on every request).

The token of (b) and (c) comes from a real authority: a
:class:`~sessiond.cluster.LocalCluster` with one ``sessiond serve`` in distributed mode
(``redis-server`` with AOF, ``nats-server`` with JetStream, no relay) and access tokens of one
hour, so one token outlives the run. The sessiond apps fetch the authority's JWKS and follow its
revocation stream like any resource server; before it is measured, each of (b), (c) and (e)
must reject a token revoked through its own mechanism (so none of them is measured with its
revocation check switched off), and every app must answer 200 with the right subject. The
cookie of (f) comes from one ``POST /login`` on that app.

Each app runs under granian with one worker (the way ``sessiond serve`` runs; one worker so
that the figure is the cost per core of each kind of authentication, and so that on the 2-core
development machine the load generator keeps the other core). All six are started, checked and
warmed up first, then measured one at a time in interleaved rounds: round 1 measures (a) to (f)
for ``--seconds`` each, round 2 does it again, and so on. The throughput of a shared or virtual
machine drifts by 10-25 % over a minute; apps measured in a single block each would be
compared across that drift, while interleaved rounds spread it over every app alike. An app's
req/s is its requests over its measured seconds in all rounds, its p50 and p99 the median of
its rounds'; the table also shows the range of its rounds' req/s, and each target the range of
the ratio within each round.

Load generator: ``wrk`` (a separate C process, one thread, keep-alive connections, the same
settings for every app). It costs far less CPU per request than the apps do, unlike a Python
client (see ``bench/authority.py``, where httpx was the bottleneck), so the ratios compare the
apps and not the client; the CPU footer shows how busy each side was. Latencies are wrk's
(``--latency``: its p50 and p99 over every response). A response other than 2xx/3xx or a socket
error marks the whole run invalid: the errors are listed under the table and the command exits
with status 1.

Targets (the issue's): (b) at least 0.9x (a), 3x (d), 4x (e) and 4x (f).

First-sight cost, in this process: the time to verify a token never seen before (a fresh token
each time, so no cache can hit) through the sessiond verification path, against the bare
signature check of the same algorithm (``jwt.get_algorithm_by_name(alg).verify``), for ES256
(the authority's default), EdDSA and RS256. Target: at most 1.2x. The sessiond path is the
verifier SDK's ``Verifier.verify`` given a local keyset (its token cache misses every fresh
token). Both are timed in alternating rounds and each figure is its best round: the one least
disturbed by other work on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
import redis
from litestar.security.jwt import Token

from bench._args import count, count_or_zero
from bench._processes import NO_RATE_LIMITS, BenchError
from bench._report import (
    cores,
    cpu_seconds,
    cpu_used,
    machine_lines,
    ms,
    progress,
    server_version,
    table,
)
from bench.apps import REDIS_ENV, SECRET_ENV
from bench.apps.jwt_denylist import DENYLIST_PREFIX
from sessiond.cluster import LocalCluster, ManagedProcess, ProcessFailed, ProcessSpec
from sessiond.cluster.processes import tcp_probe, which
from sessiond.cluster.specs import asgi_app
from sessiond.denylist.denylist import Denylist
from sessiond.errors import SessiondError
from sessiond.settings import PREFIX, Algorithm, Settings
from sessiond.tokens.access import AccessTokenDecoder, sign_access_token
from sessiond.tokens.keys import Keyset
from sessiond.verifier.engine import Verifier
from sessiond.verifier.keys import LocalKeys

DEFAULT_SECONDS = 3
DEFAULT_ROUNDS = 3
DEFAULT_CONNECTIONS = 32
DEFAULT_WARMUP = 1
DEFAULT_TOKENS = 2000
ACCESS_TTL = 3600
REQUEST_TIMEOUT = 10.0
REVOCATION_DEADLINE = 5.0
WRK_TIMEOUT = "5s"
ROOT = Path(__file__).resolve().parent.parent
PATH = "/balance"
SUBJECT = "bench-alice"
FIRST_SIGHT_ALGORITHMS: Final[tuple[Algorithm, ...]] = ("ES256", "EdDSA", "RS256")
TARGET_FIRST_SIGHT = 1.2
FIRST_SIGHT_ROUNDS = 5
#: (b) must reach this multiple of each app's req/s.
TARGETS: Final = {"a": 0.9, "d": 3.0, "e": 4.0, "f": 4.0}


# --- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What to run: whole seconds measured per app and round and warmed up per app (wrk takes
    whole seconds), rounds, wrk's connections, tokens timed per algorithm for the first-sight
    cost."""

    seconds: int
    rounds: int
    connections: int
    warmup: int
    tokens: int


def parse_options(argv: Sequence[str]) -> Options:
    """Parse the command line of ``python -m bench verifier``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench verifier",
        description="GET /balance throughput behind sessiond's verifier and Litestar's auth.",
    )
    parser.add_argument(
        "--seconds",
        type=count,
        default=DEFAULT_SECONDS,
        help="whole seconds measured per app in each round (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=count,
        default=DEFAULT_ROUNDS,
        help="rounds, each measuring every app once (default: %(default)s)",
    )
    parser.add_argument(
        "--connections",
        type=count,
        default=DEFAULT_CONNECTIONS,
        help="wrk's keep-alive connections, one thread (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=count_or_zero,
        default=DEFAULT_WARMUP,
        help="whole unmeasured seconds of load per app before the rounds (default: %(default)s)",
    )
    parser.add_argument(
        "--tokens",
        type=count,
        default=DEFAULT_TOKENS,
        help="fresh tokens verified per algorithm for the first-sight cost (default: %(default)s)",
    )
    args = parser.parse_args(list(argv))
    return Options(
        seconds=args.seconds,
        rounds=args.rounds,
        connections=args.connections,
        warmup=args.warmup,
        tokens=args.tokens,
    )


# --- wrk -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """What one ``wrk --latency`` run printed."""

    requests: int
    seconds: float
    rate: float
    p50: float
    p99: float
    non_2xx: int = 0
    socket_errors: Mapping[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        """Every kind of error, e.g. ``12 non-2xx/3xx responses``; empty if none."""
        found = [f"{n} socket {kind} errors" for kind, n in self.socket_errors.items() if n]
        if self.non_2xx:
            found.insert(0, f"{self.non_2xx} non-2xx/3xx responses")
        return found


_UNITS: Final = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"
_REQUESTS = re.compile(r"^\s*(\d+) requests in " + _DURATION + ",", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s*([\d.]+)", re.MULTILINE)
_PERCENTILE = r"^\s*{p}%\s+" + _DURATION + r"\s*$"
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses: (\d+)", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures of ``wrk --latency`` output; :class:`BenchError` if one is missing."""
    requests, rate = _REQUESTS.search(output), _RATE.search(output)
    p50 = re.search(_PERCENTILE.format(p=50), output, re.MULTILINE)
    p99 = re.search(_PERCENTILE.format(p=99), output, re.MULTILINE)
    if requests is None or rate is None or p50 is None or p99 is None:
        raise BenchError(f"cannot read wrk's output (was --latency given?):\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET.search(output)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {}
    )
    return WrkResult(
        requests=int(requests.group(1)),
        seconds=_seconds(requests.group(2), requests.group(3)),
        rate=float(rate.group(1)),
        p50=_seconds(*p50.groups()),
        p99=_seconds(*p99.groups()),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def combine(results: Sequence[WrkResult]) -> WrkResult:
    """Several runs as one: requests and seconds added up, the rate their quotient, p50 and
    p99 the median of the runs', errors added up."""
    requests = sum(r.requests for r in results)
    seconds = sum(r.seconds for r in results)
    sockets: dict[str, int] = {}
    for result in results:
        for kind, n in result.socket_errors.items():
            sockets[kind] = sockets.get(kind, 0) + n
    return WrkResult(
        requests=requests,
        seconds=seconds,
        rate=requests / seconds if seconds > 0 else 0.0,
        p50=statistics.median(r.p50 for r in results),
        p99=statistics.median(r.p99 for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sockets,
    )


def wrk_command(url: str, headers: Mapping[str, str], seconds: int, connections: int) -> list[str]:
    """The one wrk command line every app is measured with."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["--timeout", WRK_TIMEOUT]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    return [*argv, url]


def run_wrk(argv: Sequence[str], seconds: int) -> WrkResult:
    """Run wrk to the end; its parsed figures."""
    try:
        done = subprocess.run(
            [which(argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + 30} s") from None
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children (wrk, once it has ended)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_reading(servers: Mapping[str, ManagedProcess]) -> dict[str, float]:
    """:func:`bench._report.cpu_seconds` with wrk apart: ``bench`` is this process (idle while
    wrk runs), ``wrk`` the load generator, ``other`` the rest of the machine."""
    used = cpu_seconds(servers)
    reading = {"bench": used.pop("client")}
    reading.update(used)
    reading["wrk"] = _children_cpu()
    if "other" in reading:
        reading["other"] -= reading["wrk"]
        reading["other"] = reading.pop("other")  # last
    return reading


# --- the apps --------------------------------------------------------------------------------


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
            f"{PREFIX}NATS_URL": self.cluster.nats.url,
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


def create_session(url: str, credential: str, subject: str) -> dict[str, Any]:
    """``POST /v1/sessions`` with the service credential; the token response."""
    response = httpx.post(
        f"{url}/v1/sessions",
        json={"subject": subject, "device": {"label": "bench"}},
        headers={"Authorization": f"Bearer {credential}"},
        timeout=REQUEST_TIMEOUT,
    )
    if response.status_code != 201:
        raise BenchError(f"session create: {response.status_code} {response.text}")
    tokens: dict[str, Any] = response.json()
    return tokens


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


# --- measurement -----------------------------------------------------------------------------


@dataclass
class Row:
    """One app's measurement: one wrk run per round, and the CPU used while they ran."""

    app: App
    rounds: list[WrkResult] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def result(self) -> WrkResult:
        """All rounds as one (:func:`combine`)."""
        return combine(self.rounds)

    def add(self, result: WrkResult, cpu: Mapping[str, float], elapsed: float) -> None:
        """Record one round."""
        self.rounds.append(result)
        for name, seconds in cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds
        self.elapsed += elapsed


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
    stack: contextlib.ExitStack, app: App, authority: Authority, options: Options, work_dir: Path
) -> Running:
    """Start ``app`` (stopped when ``stack`` closes), check it, warm it up."""
    progress(f"{app.label}: starting, checking, warm-up {options.warmup} s")
    base = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    process = stack.enter_context(
        ManagedProcess(
            app.spec(), directory=work_dir / f"app-{app.letter}", base_env=base, env=authority.env()
        )
    )
    with httpx.Client(base_url=process.url, timeout=REQUEST_TIMEOUT) as http:
        headers = Checks(authority).headers(app, http)
    running = Running(app, process, headers)
    if options.warmup > 0:
        run_wrk(wrk_command(running.url, headers, options.warmup, options.connections), 0)
    return running


def measure(authority: Authority, options: Options, work_dir: Path) -> list[Row]:
    """Start every app, then measure each once per round (see the module doc)."""
    with contextlib.ExitStack() as stack:
        apps = [start_app(stack, app, authority, options, work_dir) for app in APPS]
        cluster = authority.cluster
        servers = {f"app {a.app.letter}": a.process for a in apps}
        servers.update(sessiond=cluster.replicas[0], nats=cluster.nats, redis=cluster.redis)
        rows = [Row(a.app) for a in apps]
        for round_ in range(1, options.rounds + 1):
            progress(f"round {round_} of {options.rounds}: {options.seconds} s per app")
            for running, row in zip(apps, rows, strict=True):
                argv = wrk_command(
                    running.url, running.headers, options.seconds, options.connections
                )
                before, started = cpu_reading(servers), time.perf_counter()
                result = run_wrk(argv, options.seconds)
                elapsed = time.perf_counter() - started
                used = cpu_used(before, cpu_reading(servers))
                row.add(result, _idle_apps_together(used, running.app), elapsed)
            for running in apps:
                running.process.check_alive()
            cluster.replicas[0].check_alive()
    return rows


def _idle_apps_together(used: Mapping[str, float], measured: App) -> dict[str, float]:
    """``used`` with the apps not being measured added up as ``idle apps``."""
    folded: dict[str, float] = {}
    for name, seconds in used.items():
        idle = name.startswith("app ") and name != f"app {measured.letter}"
        key = "idle apps" if idle else name
        folded[key] = folded.get(key, 0.0) + seconds
    return folded


# --- first-sight cost ------------------------------------------------------------------------


@dataclass(frozen=True)
class FirstSight:
    """Microseconds per fresh token: the whole verification, and the bare signature check."""

    alg: str
    verify: float
    bare: float

    @property
    def ratio(self) -> float:
        """How many times the bare signature check the whole verification costs."""
        return self.verify / self.bare if self.bare > 0 else float("inf")


def first_sight(alg: Algorithm, tokens: int) -> FirstSight:
    """Time the sessiond verification of ``tokens`` never-seen tokens against the bare
    signature check of the same tokens, in ``FIRST_SIGHT_ROUNDS`` alternating rounds (tokens
    minted beforehand, outside the timings); each figure is its best round, the one least
    disturbed by other work on the machine."""
    settings = Settings()
    keyset = Keyset.generate(alg)
    key = keyset.active
    verify = first_sight_verifier(keyset, settings)
    algorithm = jwt.get_algorithm_by_name(alg)
    per_round = max(1, tokens // FIRST_SIGHT_ROUNDS)
    verify_us, bare_us = [], []
    for round_ in range(FIRST_SIGHT_ROUNDS):
        minted = [
            sign_access_token(
                key,
                issuer=settings.issuer,
                audience=settings.audience,
                sub=f"user-{round_}-{n}",
                sid=f"sid-{round_}-{n}",
                scope="balance:read",
                ttl=ACCESS_TTL,
                now=time.time(),
            )[0]
            for n in range(per_round)
        ]
        verify_us.append(_per_token_us(minted, verify))
        split = [_signing_input_and_signature(token) for token in minted]
        started = time.perf_counter()
        for signing_input, signature in split:
            if not algorithm.verify(signing_input, key.public, signature):
                raise BenchError(f"{alg}: the bare check rejected a valid token")
        bare_us.append((time.perf_counter() - started) / len(split) * 1e6)
    return FirstSight(alg=alg, verify=min(verify_us), bare=min(bare_us))


def first_sight_verifier(keyset: Keyset, settings: Settings) -> Callable[[str], Awaitable[Any]]:
    """The verifier SDK's ``Verifier.verify`` on a local keyset, with an empty denylist; every
    fresh token misses its cache."""
    keys = LocalKeys(keyset)
    decoder = AccessTokenDecoder.from_settings(settings, keys.current)
    return Verifier(decoder, keys, Denylist()).verify


def _per_token_us(tokens: Sequence[str], verify: Callable[[str], Awaitable[Any]]) -> float:
    """Mean microseconds of ``await verify(token)`` over ``tokens``."""

    async def run() -> float:
        started = time.perf_counter()
        for token in tokens:
            await verify(token)
        return time.perf_counter() - started

    return asyncio.run(run()) / len(tokens) * 1e6


def _signing_input_and_signature(token: str) -> tuple[bytes, bytes]:
    signing_input, _, signature = token.rpartition(".")
    return signing_input.encode(), base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))


# --- report ----------------------------------------------------------------------------------


def settings_lines(options: Options) -> list[str]:
    """What the table was measured with."""
    wrk_version = subprocess.run(
        [which("wrk"), "-v"], capture_output=True, text=True, check=False
    ).stdout.split()
    return [
        "sessiond verifier benchmark: GET /balance, six Litestar apps, granian 1 worker each, "
        "measured one at a time in interleaved rounds",
        f"  load         wrk {wrk_version[1] if len(wrk_version) > 1 else '?'}, 1 thread, "
        f"{options.connections} keep-alive connections",
        f"  duration     {options.rounds} rounds of {options.seconds} s per app, after "
        f"{options.warmup} s warm-up per app",
        f"  first sight  {options.tokens} fresh tokens per algorithm",
        *machine_lines(),
        f"  redis        {server_version('redis-server')}",
        f"  nats         {server_version('nats-server')}",
    ]


def _ratio(row: Row, ceiling: Row | None) -> str:
    if ceiling is None or ceiling.result.rate <= 0:
        return "-"
    return f"{row.result.rate / ceiling.result.rate:.2f}x"


@dataclass(frozen=True)
class Verdict:
    """One target of a sessiond app: ``got`` is the ratio of the combined rates, ``per_round``
    the ratio within each round (both apps measured a few seconds apart)."""

    peer: str
    wanted: float
    got: float
    per_round: tuple[float, ...]

    @property
    def met(self) -> bool:
        return self.got >= self.wanted

    def __str__(self) -> str:
        spread = f"rounds {min(self.per_round):.2f}-{max(self.per_round):.2f}; "
        mark = "" if self.met else ": MISSED"
        return f"{self.got:.2f}x {self.peer} ({spread}>= {self.wanted:g}x{mark})"


def verdicts(rows: Sequence[Row]) -> dict[str, list[Verdict]]:
    """Per sessiond app (b, c): a verdict on each target of the issue."""
    by_letter = {row.app.letter: row for row in rows}
    found: dict[str, list[Verdict]] = {}
    for letter in "bc":
        row = by_letter.get(letter)
        if row is None:
            continue
        for other, wanted in TARGETS.items():
            peer = by_letter.get(other)
            if peer is None or peer.result.rate <= 0:
                continue
            per_round = tuple(
                mine.rate / theirs.rate
                for mine, theirs in zip(row.rounds, peer.rounds, strict=True)
                if theirs.rate > 0
            )
            got = row.result.rate / peer.result.rate
            found.setdefault(letter, []).append(Verdict(other, wanted, got, per_round))
    return found


def _verdict(marks: Sequence[Verdict]) -> str:
    missed = [mark.peer for mark in marks if not mark.met]
    if not marks:
        return ""
    return f"missed vs {','.join(missed)}" if missed else "all met"


def table_lines(rows: Sequence[Row]) -> list[str]:
    """The results table, targets, errors and CPU use."""
    ceiling = next((row for row in rows if row.app.letter == "a"), None)
    marks = verdicts(rows)
    body = []
    for row in rows:
        r = row.result
        rates = [result.rate for result in row.rounds]
        body.append(
            (
                row.app.label,
                str(r.requests),
                f"{r.rate:.0f}",
                f"{min(rates):.0f}-{max(rates):.0f}",
                ms(r.p50),
                ms(r.p99),
                _ratio(row, ceiling),
                _verdict(marks.get(row.app.letter, [])),
            )
        )
    header = ("app", "requests", "req/s", "rounds", "p50 ms", "p99 ms", "vs (a)", "targets")
    lines = table(header, body, left=1)
    for letter, found in marks.items():
        lines.append(f"  targets of ({letter}): {', '.join(map(str, found))}")
    errors = [(row, e) for row in rows for e in row.result.errors]
    for row, error in errors:
        lines.append(f"  ERROR in {row.app.label}: {error}")
    if errors:
        lines.append("  INVALID RUN: an app answered errors; its figures are not comparable.")
    lines.append("CPU used while measuring, in cores (1.00: one core busy all the time):")
    for row in rows:
        lines.append(f"  {row.app.letter}  {cores(row.cpu, row.elapsed)}")
    return lines


def first_sight_lines(results: Sequence[FirstSight]) -> list[str]:
    """The first-sight table."""
    header = (
        "algorithm",
        "sessiond us",
        "bare verify us",
        "ratio",
        f"target <={TARGET_FIRST_SIGHT}x",
    )
    rows = [
        (
            f"{r.alg} (Verifier.verify)",
            f"{r.verify:.1f}",
            f"{r.bare:.1f}",
            f"{r.ratio:.2f}x",
            "ok" if r.ratio <= TARGET_FIRST_SIGHT else "MISSED",
        )
        for r in results
    ]
    return [
        "First sight of a token (never seen before, so no cache hit), per token:",
        *table(header, rows),
    ]


# --- entry point -----------------------------------------------------------------------------


def main(args: Sequence[str]) -> int:
    """Run the benchmark and print the settings, the results table and the first-sight cost."""
    options = parse_options(args)
    try:
        print("\n".join(settings_lines(options)), flush=True)
        progress("starting redis-server, nats-server and sessiond serve (distributed mode)")
        with running_authority() as authority:
            rows = measure(authority, options, authority.cluster.directory / "apps")
        progress("first-sight cost")
        sights = [first_sight(alg, options.tokens) for alg in FIRST_SIGHT_ALGORITHMS]
    except ProcessFailed as exc:
        raise BenchError(f"{exc.detail}; its output:\n{exc.output}") from None
    except SessiondError as exc:  # a missing binary
        raise BenchError(exc.detail) from None
    print()
    print("\n".join(table_lines(rows)))
    print()
    print("\n".join(first_sight_lines(sights)))
    invalid = any(row.result.errors for row in rows)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
