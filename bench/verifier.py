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
client, so the ratios compare the
apps and not the client; the CPU footer shows how busy each side was. Latencies are wrk's
(``--latency``: its p50 and p99 over every response). A response other than 2xx/3xx or a socket
error marks the whole run invalid: the errors are listed under the table and the command exits
with status 1.

Targets (the issue's): (b) at least 0.9x (a), 3x (d), 4x (e) and 4x (f).

First-sight cost, in this process (:mod:`bench._first_sight`): the time to verify a token
never seen before through the sessiond verification path, against the bare signature check of
the same algorithm, for ES256 (the authority's default), EdDSA and RS256. Target: at most 1.2x.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._args import add_round_options, count
from bench._first_sight import ALGORITHMS, first_sight, first_sight_lines
from bench._processes import BenchError
from bench._report import machine_lines, progress, server_version
from bench._rounds import measure_once
from bench._verifier_apps import APPS, Authority, running_authority, start_app
from bench._verifier_report import Row, table_lines
from bench._wrk import wrk_command, wrk_version
from sessiond.cluster import ProcessFailed
from sessiond.errors import SessiondError

DEFAULT_TOKENS = 2000


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
    add_round_options(parser, "app")
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


def measure(authority: Authority, options: Options, work_dir: Path) -> list[Row]:
    """Start every app, then measure each once per round (see the module doc)."""
    with contextlib.ExitStack() as stack:
        apps = [
            start_app(
                stack,
                app,
                authority,
                work_dir,
                warmup=options.warmup,
                connections=options.connections,
            )
            for app in APPS
        ]
        cluster = authority.cluster
        servers = {f"app {a.app.letter}": a.process for a in apps}
        names = list(servers)
        servers.update(sessiond=cluster.replicas[0], nats=cluster.nats, redis=cluster.redis)
        rows = [Row(a.app) for a in apps]
        for round_ in range(1, options.rounds + 1):
            progress(f"round {round_} of {options.rounds}: {options.seconds} s per app")
            for running, row, name in zip(apps, rows, names, strict=True):
                argv = wrk_command(
                    running.url, running.headers, options.seconds, options.connections
                )
                measure_once(
                    argv, options.seconds, row.runs, measured=name, apps=names, servers=servers
                )
            for running in apps:
                running.process.check_alive()
            cluster.replicas[0].check_alive()
    return rows


def settings_lines(options: Options) -> list[str]:
    """What the table was measured with."""
    return [
        "sessiond verifier benchmark: GET /balance, six Litestar apps, granian 1 worker each, "
        "measured one at a time in interleaved rounds",
        f"  load         wrk {wrk_version()}, 1 thread, "
        f"{options.connections} keep-alive connections",
        f"  duration     {options.rounds} rounds of {options.seconds} s per app, after "
        f"{options.warmup} s warm-up per app",
        f"  first sight  {options.tokens} fresh tokens per algorithm",
        *machine_lines(),
        f"  redis        {server_version('redis-server')}",
        f"  nats         {server_version('nats-server')}",
    ]


def main(args: Sequence[str]) -> int:
    """Run the benchmark and print the settings, the results table and the first-sight cost."""
    options = parse_options(args)
    try:
        print("\n".join(settings_lines(options)), flush=True)
        progress("starting redis-server, nats-server and sessiond serve (distributed mode)")
        with running_authority() as authority:
            rows = measure(authority, options, authority.cluster.directory / "apps")
        progress("first-sight cost")
        sights = [first_sight(alg, options.tokens) for alg in ALGORITHMS]
    except ProcessFailed as exc:
        raise BenchError(f"{exc.detail}; its output:\n{exc.output}") from None
    except SessiondError as exc:  # a missing binary
        raise BenchError(exc.detail) from None
    print()
    print("\n".join(table_lines(rows)))
    print()
    print("\n".join(first_sight_lines(sights)))
    invalid = any(row.runs.result.errors for row in rows)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
