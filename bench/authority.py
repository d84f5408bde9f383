"""Baseline throughput of the session authority on the Redis store.

Starts a private ``redis-server`` (free loopback port, temporary directory, AOF on, no RDB
snapshots) and one ``sessiond serve`` (the real CLI: granian, one worker) in distributed mode,
with a keyset and a service credential made by the CLI. It then measures, one after another,
after a short warm-up each:

1. ``POST /v1/sessions``: session create, a new subject per request (one subject per session
   avoids every request WATCHing the same subject index, which would measure contention);
2. ``POST /v1/tokens/refresh``: every worker rotates the refresh-token chain of its own session;
3. ``GET /v1/whoami``: local verification of access tokens taken from a pool of valid ones.

Only the expected answer (201, 200, 200) counts as a request; anything else, including a
transport error, counts as an error and is listed under the table. Latencies are those of the
correct answers, measured around the whole request (body read included).

Load generator (the choice asked for): N closed-loop workers (default 32) on one asyncio loop
in this benchmark's own process, which is already a process of its own, apart from the
server's; no further load process is started. On a 2-core machine one is all there is room for:
the granian worker takes up to a core, the client most of the other, Redis a little; a second
load process would only compete with the server. The CPU footer below the table shows how
busy each side was (client, sessiond's process group, redis, and the rest of the machine as
``other``), so a run disturbed by other work, or limited by the client rather than the server,
is visible as such. Nothing is pinned to a CPU: the scheduler already gives the client and the
server a core each, and pinning would make any other load on the machine hurt more.

Each worker has its own ``httpx.AsyncClient`` with a pool of one keep-alive connection, so
there are N connections as with one shared pool of N. A shared pool was measured 3 to 4 times
slower at 32 workers because httpcore 1.0's pool re-examines every connection on each request
and release (``_assign_requests_to_connections``; encode/httpcore#1035), which made the client,
not the server, the bottleneck. httpx still costs the client about as much CPU per request as
``GET /v1/whoami`` costs the server, so the whoami figure is bounded by the client too: read it
with the CPU footer.

The numbers are a baseline to compare runs of this benchmark on the same machine, not a
capacity figure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._args import count, positive, seconds
from bench._processes import NO_RATE_LIMITS, BenchError
from bench._report import (
    cores,
    cpu_seconds,
    cpu_used,
    machine_lines,
    ms,
    percentile,
    progress,
    server_version,
    table,
)
from sessiond.cluster.processes import ManagedProcess, ProcessFailed, which
from sessiond.cluster.specs import REDIS, SESSIOND
from sessiond.errors import SessiondError

DEFAULT_SECONDS = 5.0
DEFAULT_CONCURRENCY = 32
DEFAULT_WARMUP = 1.0
WHOAMI_POOL = 64
SCOPES = "sessions:create,sessions:read,sessions:revoke,tokens:introspect"
READY_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0

Servers = Mapping[str, ManagedProcess]


# --- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What to run: seconds measured and warm-up per operation, concurrent workers."""

    seconds: float
    concurrency: int
    warmup: float


def parse_options(argv: Sequence[str]) -> Options:
    """Parse the command line of ``python -m bench authority``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench authority",
        description="Session create, refresh and whoami throughput on the Redis store.",
    )
    parser.add_argument(
        "--seconds",
        type=positive,
        default=DEFAULT_SECONDS,
        help="measured per operation (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=count,
        default=DEFAULT_CONCURRENCY,
        help="closed-loop client workers (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=seconds,
        default=DEFAULT_WARMUP,
        help="unmeasured seconds before each (default: %(default)s)",
    )
    args = parser.parse_args(list(argv))
    return Options(seconds=args.seconds, concurrency=args.concurrency, warmup=args.warmup)


# --- servers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A running authority: its base URL, a service credential and its process."""

    url: str
    credential: str
    process: ManagedProcess
    redis: ManagedProcess


def clean_env() -> dict[str, str]:
    """This process's environment without any ``SESSIOND_*`` setting of the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}


@contextlib.contextmanager
def running_authority() -> Iterator[Target]:
    """Redis and one ``sessiond serve`` in a temporary directory; both stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="sessiond-bench-") as tmp:
        directory = Path(tmp)
        with running_redis(directory) as redis:
            keyset, credentials, secret = make_files(directory)
            env = {
                "SESSIOND_REDIS_URL": redis.url,
                "SESSIOND_KEYSET_FILE": str(keyset),
                "SESSIOND_CREDENTIALS_FILE": str(credentials),
                "SESSIOND_LOG_LEVEL": "warning",
                **NO_RATE_LIMITS,
            }
            with ManagedProcess(
                SESSIOND,
                directory=directory / "sessiond",
                base_env=clean_env(),
                env=env,
                name="sessiond serve",
            ) as proc:
                yield Target(url=proc.url, credential=secret, process=proc, redis=redis)


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[ManagedProcess]:
    """A private ``redis-server`` on a free loopback port, AOF on, no RDB snapshots, ready."""
    with ManagedProcess(REDIS, directory=directory / "redis") as proc:
        yield proc


def make_files(directory: Path) -> tuple[Path, Path, str]:
    """A keyset and a credentials file made with the CLI; returns both and the secret."""
    keyset, credentials = directory / "keyset.json", directory / "credentials.json"
    sessiond = which("sessiond")
    _cli([sessiond, "keys", "new", "--file", str(keyset)])
    issue = ["credentials", "new", "--file", str(credentials), "--name", "bench"]
    secret = _cli([sessiond, *issue, "--scopes", SCOPES]).strip()
    return keyset, credentials, secret


def _cli(argv: list[str]) -> str:
    """Run a CLI command; its stdout, or an error carrying its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), check=False)
    if done.returncode != 0:
        raise BenchError(
            f"sessiond {' '.join(argv[1:3])} failed ({done.returncode}): {done.stderr}"
        )
    return done.stdout


# --- operations ------------------------------------------------------------------------------


class Operation:
    """One benchmarked request; ``prepare`` runs unmeasured, ``settle`` after each answer."""

    name = ""
    expected = 200

    async def prepare(self, http: httpx.AsyncClient, workers: int) -> None:
        """Set up what the workers need (sessions, tokens) before the warm-up."""

    async def request(self, http: httpx.AsyncClient, worker: int) -> httpx.Response:
        """Send one request for ``worker``."""
        raise NotImplementedError

    async def settle(
        self, http: httpx.AsyncClient, worker: int, response: httpx.Response | None
    ) -> None:
        """Update the worker's state from the answer (``None``: a transport error)."""


class Sessions:
    """Creates sessions with the service credential, one new subject each."""

    def __init__(self, credential: str) -> None:
        self.headers = {"Authorization": f"Bearer {credential}"}
        self._subjects = (f"user-{n:08d}" for n in range(sys.maxsize))

    async def post(self, http: httpx.AsyncClient) -> httpx.Response:
        """``POST /v1/sessions`` for the next subject."""
        body = {
            "subject": next(self._subjects),
            "device": {"label": "bench", "user_agent": "sessiond-bench"},
        }
        return await http.post("/v1/sessions", json=body, headers=self.headers)

    async def login(self, http: httpx.AsyncClient) -> dict[str, Any]:
        """A new session's token response; fails unless the authority answers 201."""
        response = await self.post(http)
        if response.status_code != 201:
            raise BenchError(f"session create: {response.status_code} {response.text}")
        tokens: dict[str, Any] = response.json()
        return tokens


class CreateSession(Operation):
    """``POST /v1/sessions``: a login backend signing users in."""

    name = "create   POST /v1/sessions"
    expected = 201

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def request(self, http: httpx.AsyncClient, worker: int) -> httpx.Response:
        """Create one session."""
        return await self.sessions.post(http)


class Refresh(Operation):
    """``POST /v1/tokens/refresh``: every worker rotates its own session's token chain."""

    name = "refresh  POST /v1/tokens/refresh"

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.tokens: list[str] = []

    async def prepare(self, http: httpx.AsyncClient, workers: int) -> None:
        """One session per worker."""
        self.tokens = [(await self.sessions.login(http))["refresh_token"] for _ in range(workers)]

    async def request(self, http: httpx.AsyncClient, worker: int) -> httpx.Response:
        """Rotate the worker's current refresh token."""
        body = {"refresh_token": self.tokens[worker]}
        return await http.post("/v1/tokens/refresh", json=body)

    async def settle(
        self, http: httpx.AsyncClient, worker: int, response: httpx.Response | None
    ) -> None:
        """Keep the successor; after a failure the chain may be broken, so sign in again."""
        if response is not None and response.status_code == 200:
            self.tokens[worker] = response.json()["refresh_token"]
            return
        with contextlib.suppress(httpx.HTTPError, BenchError):
            self.tokens[worker] = (await self.sessions.login(http))["refresh_token"]


class WhoAmI(Operation):
    """``GET /v1/whoami``: local verification, taking turns over a pool of access tokens."""

    name = "whoami   GET /v1/whoami"

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.headers: list[dict[str, str]] = []
        self._turn = 0

    async def prepare(self, http: httpx.AsyncClient, workers: int) -> None:
        """A pool of valid access tokens, from as many sessions."""
        for _ in range(max(WHOAMI_POOL, workers)):
            token = (await self.sessions.login(http))["access_token"]
            self.headers.append({"Authorization": f"Bearer {token}"})

    async def request(self, http: httpx.AsyncClient, worker: int) -> httpx.Response:
        """Present the pool's next access token."""
        self._turn = (self._turn + 1) % len(self.headers)
        return await http.get("/v1/whoami", headers=self.headers[self._turn])


# --- load ------------------------------------------------------------------------------------


@dataclass
class Stats:
    """What one measured run of one operation gave."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Correct answers per second."""
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float | None:
        """The nearest-rank ``p``-th percentile of the latencies, in seconds."""
        return percentile(self.latencies, p)


async def measure(
    clients: Sequence[httpx.AsyncClient], op: Operation, seconds: float, servers: Servers
) -> Stats:
    """One closed-loop worker per client for ``seconds``; also the CPU time each side used."""
    stats = Stats(op.name)
    cpu = cpu_seconds(servers)
    started = time.perf_counter()
    deadline = started + seconds
    async with asyncio.TaskGroup() as group:
        for worker, http in enumerate(clients):
            group.create_task(_work(http, op, worker, deadline, stats))
    stats.elapsed = time.perf_counter() - started
    stats.cpu = cpu_used(cpu, cpu_seconds(servers))
    return stats


async def _work(
    http: httpx.AsyncClient, op: Operation, worker: int, deadline: float, stats: Stats
) -> None:
    """One worker: send, wait for the answer, record it, until the deadline."""
    while time.perf_counter() < deadline:
        sent = time.perf_counter()
        response: httpx.Response | None = None
        try:
            response = await op.request(http, worker)
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
        else:
            if response.status_code == op.expected:
                stats.latencies.append(time.perf_counter() - sent)
            else:
                stats.errors[_error_label(response)] += 1
        await op.settle(http, worker, response)


def _error_label(response: httpx.Response) -> str:
    """The status and, for problem details, the problem's short name."""
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        with contextlib.suppress(ValueError, AttributeError):
            kind = str(response.json().get("type", "")).rsplit(":", 1)[-1]
            return f"{response.status_code} {kind}"
    return str(response.status_code)


async def run_all(target: Target, options: Options) -> list[Stats]:
    """Prepare, warm up and measure each operation in turn, on one connection per worker."""
    sessions = Sessions(target.credential)
    operations = [CreateSession(sessions), Refresh(sessions), WhoAmI(sessions)]
    results = []
    servers = {"sessiond": target.process, "redis": target.redis}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(_client(target.url)) for _ in range(options.concurrency)
        ]
        for op in operations:
            progress(
                f"{op.name.split()[0]}: warm-up {options.warmup:g} s, "
                f"then {options.seconds:g} s measured"
            )
            await op.prepare(clients[0], len(clients))
            if options.warmup > 0:
                await measure(clients, op, options.warmup, servers)
            results.append(await measure(clients, op, options.seconds, servers))
            target.process.check_alive()
    return results


def _client(url: str) -> httpx.AsyncClient:
    """A client with one keep-alive connection (see the module docstring for why)."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT)


# --- report ----------------------------------------------------------------------------------


def settings_lines(options: Options) -> list[str]:
    """What the table was measured with."""
    return [
        "sessiond authority benchmark: Redis store, one `sessiond serve` (granian, 1 worker)",
        f"  concurrency  {options.concurrency} closed-loop workers, "
        "one httpx.AsyncClient and keep-alive connection each",
        f"  duration     {options.seconds:g} s measured per operation, "
        f"after {options.warmup:g} s warm-up",
        *machine_lines(),
        f"  redis        {server_version('redis-server')}",
    ]


def table_lines(results: Sequence[Stats]) -> list[str]:
    """The results table, with error details and client CPU use under it."""
    header = ("operation", "requests", "errors", "req/s", "p50 ms", "p99 ms")
    lines = table(header, [_row(stats) for stats in results])
    for stats in results:
        for label, times in stats.errors.most_common():
            lines.append(f"  error in {stats.name.split()[0]}: {times} x {label}")
    lines.append("CPU used while measuring, in cores (1.00: one core busy all the time):")
    for s in results:
        lines.append(f"  {s.name.split()[0]:<8} {cores(s.cpu, s.elapsed)}")
    return lines


def _row(stats: Stats) -> tuple[str, ...]:
    return (
        stats.name,
        str(len(stats.latencies)),
        str(sum(stats.errors.values())),
        f"{stats.rate:.0f}",
        ms(stats.percentile(50)),
        ms(stats.percentile(99)),
    )


# --- entry point -----------------------------------------------------------------------------


def main(args: Sequence[str]) -> int:
    """Run the benchmark and print the settings and the results table."""
    options = parse_options(args)
    try:
        print("\n".join(settings_lines(options)), flush=True)
        progress("starting redis-server and sessiond serve")
        with running_authority() as target:
            results = asyncio.run(run_all(target, options))
    except ProcessFailed as exc:
        raise BenchError(f"{exc.detail}; its output:\n{exc.output}") from None
    except SessiondError as exc:  # a missing binary
        raise BenchError(exc.detail) from None
    print()
    print("\n".join(table_lines(results)))
    return 0
