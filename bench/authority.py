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

Load generator: a closed loop of N workers (default 32) sharing one ``httpx.AsyncClient`` with
a pool of N keep-alive connections, in this benchmark's own process. That process is already
separate from the server's, so the client and the server are scheduled on their own; a further
load process would only add a layer of start-up and result passing, since one asyncio loop is
enough to saturate one granian worker. On a 2-core machine the client, the server and Redis
still share the cores, so the numbers are a baseline to compare runs of this benchmark on the
same machine, not a capacity figure: the client's CPU use is printed under the table to show
how much of a core it took.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._processes import ServerProcess, free_port, which

DEFAULT_SECONDS = 5.0
DEFAULT_CONCURRENCY = 32
DEFAULT_WARMUP = 1.0
WHOAMI_POOL = 64
SCOPES = "sessions:create,sessions:read,sessions:revoke,tokens:introspect"
READY_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0


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
        "--seconds", type=_positive(float), default=DEFAULT_SECONDS, help="measured per operation"
    )
    parser.add_argument(
        "--concurrency", type=_positive(int), default=DEFAULT_CONCURRENCY, help="client workers"
    )
    parser.add_argument(
        "--warmup", type=float, default=DEFAULT_WARMUP, help="unmeasured seconds before each"
    )
    args = parser.parse_args(list(argv))
    return Options(seconds=args.seconds, concurrency=args.concurrency, warmup=max(0, args.warmup))


def _positive(kind: type[int] | type[float]) -> Any:
    def convert(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its error messages
    return convert


# --- servers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A running authority: its base URL, a service credential and its process."""

    url: str
    credential: str
    process: ServerProcess


def clean_env() -> dict[str, str]:
    """This process's environment without any ``SESSIOND_*`` setting of the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}


@contextlib.contextmanager
def running_authority() -> Iterator[Target]:
    """Redis and one ``sessiond serve`` in a temporary directory; both stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="sessiond-bench-") as tmp:
        directory = Path(tmp)
        with running_redis(directory) as redis_url:
            keyset, credentials, secret = make_files(directory)
            port = free_port()
            env = clean_env() | {
                "SESSIOND_REDIS_URL": redis_url,
                "SESSIOND_KEYSET_FILE": str(keyset),
                "SESSIOND_CREDENTIALS_FILE": str(credentials),
                "SESSIOND_PORT": str(port),
                "SESSIOND_LOG_LEVEL": "warning",
            }
            argv = [which("sessiond"), "serve"]
            with ServerProcess("sessiond serve", argv, directory / "sessiond.log", env) as proc:
                url = f"http://127.0.0.1:{port}"
                proc.wait_ready(lambda: _answers_ready(url), READY_TIMEOUT)
                yield Target(url=url, credential=secret, process=proc)


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port; yields its URL."""
    data = directory / "redis"
    data.mkdir()
    port = free_port()
    argv = [which("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--dir", str(data), "--save", "", "--appendonly", "yes"]
    with ServerProcess("redis-server", argv, directory / "redis.log") as proc:
        proc.wait_ready(lambda: _redis_pong(port), READY_TIMEOUT)
        yield f"redis://127.0.0.1:{port}/0"


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
        raise RuntimeError(f"{' '.join(argv[1:3])} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def _redis_pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(b"PING\r\n")
        return bool(sock.recv(16).startswith(b"+PONG"))


def _answers_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


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
            raise RuntimeError(f"session create: {response.status_code} {response.text}")
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
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
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
    cpu: float = 0.0

    @property
    def rate(self) -> float:
        """Correct answers per second."""
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, p: float) -> float | None:
        """The nearest-rank ``p``-th percentile of the latencies, in milliseconds."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


async def measure(http: httpx.AsyncClient, op: Operation, workers: int, seconds: float) -> Stats:
    """Run ``workers`` closed-loop workers for ``seconds``; wall and client CPU time too."""
    stats = Stats(op.name)
    started, cpu = time.perf_counter(), time.process_time()
    deadline = started + seconds
    async with asyncio.TaskGroup() as group:
        for worker in range(workers):
            group.create_task(_work(http, op, worker, deadline, stats))
    stats.elapsed = time.perf_counter() - started
    stats.cpu = time.process_time() - cpu
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
    """Prepare, warm up and measure each operation in turn on one connection pool."""
    workers = options.concurrency
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    sessions = Sessions(target.credential)
    operations = [CreateSession(sessions), Refresh(sessions), WhoAmI(sessions)]
    results = []
    async with httpx.AsyncClient(
        base_url=target.url, limits=limits, timeout=REQUEST_TIMEOUT
    ) as http:
        for op in operations:
            _progress(
                f"{op.name.split()[0]}: warm-up {options.warmup:g} s, "
                f"then {options.seconds:g} s measured"
            )
            await op.prepare(http, workers)
            if options.warmup > 0:
                await measure(http, op, workers, options.warmup)
            results.append(await measure(http, op, workers, options.seconds))
            target.process.check_alive()
    return results


# --- report ----------------------------------------------------------------------------------


def settings_lines(options: Options) -> list[str]:
    """What the table was measured with."""
    return [
        "sessiond authority benchmark: Redis store, one `sessiond serve` (granian, 1 worker)",
        f"  concurrency  {options.concurrency} closed-loop workers, one httpx connection pool",
        f"  duration     {options.seconds:g} s measured per operation, "
        f"after {options.warmup:g} s warm-up",
        f"  python       {platform.python_version()} ({platform.python_implementation()})",
        f"  cpus         {os.cpu_count()}",
        f"  redis        {_redis_version()}",
    ]


def _redis_version() -> str:
    out = subprocess.run(
        [which("redis-server"), "--version"], capture_output=True, text=True, check=False
    ).stdout
    fields = dict(part.split("=", 1) for part in out.split() if "=" in part)
    return fields.get("v", out.strip() or "unknown")


def table_lines(results: Sequence[Stats]) -> list[str]:
    """The results table, with error details and client CPU use under it."""
    header = ("operation", "requests", "errors", "req/s", "p50 ms", "p99 ms")
    rows = [header] + [_row(stats) for stats in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for stats in results:
        for label, count in stats.errors.most_common():
            lines.append(f"  error in {stats.name.split()[0]}: {count} x {label}")
    cpu = ", ".join(f"{s.name.split()[0]} {s.cpu / s.elapsed:.0%}" for s in results if s.elapsed)
    lines.append(f"client CPU (this process, share of one core): {cpu}")
    return lines


def _row(stats: Stats) -> tuple[str, ...]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return (
        stats.name,
        str(len(stats.latencies)),
        str(sum(stats.errors.values())),
        f"{stats.rate:.0f}",
        ms(stats.percentile_ms(50)),
        ms(stats.percentile_ms(99)),
    )


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- entry point -----------------------------------------------------------------------------


def main(args: Sequence[str]) -> int:
    """Run the benchmark and print the settings and the results table."""
    options = parse_options(args)
    print("\n".join(settings_lines(options)), flush=True)
    _progress("starting redis-server and sessiond serve")
    with running_authority() as target:
        results = asyncio.run(run_all(target, options))
    print()
    print("\n".join(table_lines(results)))
    return 0
