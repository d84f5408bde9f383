"""Session create and refresh throughput: sessiond against a hand-written floor, with wrk.

Apps (:mod:`bench._authority_apps`), each under granian, all on one ``redis-server`` with AOF
(``appendfsync everysec``) and, for sessiond, one ``nats-server`` with JetStream:

- **sessiond as shipped**: ``sessiond serve``, one worker, every default: the rate limits on
  (30 sessions per subject and 30 refreshes per session a minute, 60,000 sessions per
  credential a minute) and the audit trail written at log level ``info``;
- **sessiond, rate limits off**: the same with every ``SESSIOND_RATE_*`` set to 0;
- **floor**: :mod:`bench.apps.floor`, one worker: the same two requests and answers, written by
  hand with the same libraries (Litestar, redis-py, PyJWT ES256) and none of sessiond's other
  work: the figure a user could reach in an afternoon;
- **sessiond as shipped, N workers** (``--workers``, default 2; 0 leaves it out): ``sessiond
  serve --workers N``, each worker a full follower of the revocation stream.

Operations, each driven by wrk (:mod:`bench._wrk`, one thread, ``--connections`` keep-alive
connections) with the Lua script ``bench/wrk/sessions.lua``:

- **create**: ``POST /v1/sessions`` with the service credential, a new subject per request
  (one subject per session: the per-subject limit and index are not what is measured);
- **refresh**: ``POST /v1/tokens/refresh`` over a pool of refresh-token chains: each request
  presents the oldest token of the pool and the answer's successor goes to the back, so every
  request rotates a live token. The pool is the sessions of that app's create runs (topped up
  to ``4 x --connections`` if short), carried from run to run in a file: thousands of
  sessions, each refreshed about once per run, within the shipped limit of 30 a minute (a
  client refreshes once per access token lifetime, not in a tight loop).

All apps are started and checked (one create and one refresh each), then warmed up
(``--warmup`` seconds of each operation), then measured one at a time in interleaved rounds
(:mod:`bench._rounds`): each round measures create on every app, then refresh on every app,
``--seconds`` each. req/s are answers over measured seconds in all rounds, p99 the median of
the rounds' (wrk's ``--latency``), ratios are against the floor's figure of the same operation,
and each target also shows its range within the rounds. Any answer but 201/200, or a socket
error, makes the run invalid (listed under the table, exit status 1).

With ``--profile DIR``, after the rounds, sessiond as shipped and the floor are each sampled
by py-spy (installed into the venv by ``./dev bench``) under the same load for ``--seconds``
per operation, into ``DIR/<app>-<operation>.txt`` (collapsed stacks).

Targets (the issue's): sessiond as shipped at least 0.7x the floor's req/s for create and for
refresh, with a p99 at most 4x the floor's. The machine's other load shows in the CPU footer
as ``other``; on a shared machine, read the ranges.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._args import add_round_options, count_or_zero
from bench._authority_apps import FLOOR, OPERATIONS, App, Operation, running_apps
from bench._authority_report import SHIPPED, Row, table_lines
from bench._processes import BenchError
from bench._profile import profile
from bench._report import machine_lines, progress, server_version
from bench._rounds import Rounds, measure_once
from bench._wrk import run_wrk, wrk_version
from sessiond.cluster import LocalCluster, ProcessFailed
from sessiond.errors import SessiondError

DEFAULT_WORKERS = 2
#: A refresh run starts with at least this many tokens per connection in its pool.
POOL_PER_CONNECTION = 4


@dataclass(frozen=True)
class Options:
    """What to run: whole seconds per app, operation and round, rounds, wrk's connections,
    whole seconds of warm-up per app and operation, workers of the multi-worker sessiond."""

    seconds: int
    rounds: int
    connections: int
    warmup: int
    workers: int
    profile: Path | None = None


def parse_options(argv: Sequence[str]) -> Options:
    """Parse the command line of ``python -m bench authority``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench authority",
        description="Session create and refresh: sessiond against a hand-written floor, wrk.",
    )
    add_round_options(parser, "app and operation")
    parser.add_argument(
        "--workers",
        type=count_or_zero,
        default=DEFAULT_WORKERS,
        help="granian workers of the extra sessiond row; 0 or 1: no such row "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after the rounds, py-spy samples of sessiond as shipped and the floor into DIR",
    )
    args = parser.parse_args(list(argv))
    return Options(
        seconds=args.seconds,
        rounds=args.rounds,
        connections=args.connections,
        warmup=args.warmup,
        workers=args.workers,
        profile=args.profile,
    )


def settings_lines(options: Options) -> list[str]:
    """What the table was measured with."""
    return [
        "sessiond authority benchmark: POST /v1/sessions and /v1/tokens/refresh, granian, "
        "one Redis (AOF), apps measured one at a time in interleaved rounds",
        f"  load         wrk {wrk_version()}, 1 thread, {options.connections} keep-alive "
        "connections, Lua script bench/wrk/sessions.lua",
        f"  duration     {options.rounds} rounds of {options.seconds} s per app and operation, "
        f"after {options.warmup} s warm-up each",
        *machine_lines(),
        f"  redis        {server_version('redis-server')}",
        f"  nats         {server_version('nats-server')}",
    ]


def measure(cluster: LocalCluster, apps: Sequence[App], options: Options) -> list[Row]:
    """Warm every app up, then measure each operation of each once per round."""
    servers = {app.key: app.process for app in apps}
    names = list(servers)
    servers.update(nats=cluster.nats, redis=cluster.redis)
    batch = secrets.token_hex(3)
    least = POOL_PER_CONNECTION * options.connections

    def run(app: App, operation: Operation, seconds: int, round_: str, into: Rounds | None) -> None:
        if operation == "refresh":
            app.top_up(least)
        argv = app.command(operation, seconds, options.connections, f"{batch}{round_}")
        if into is None:
            run_wrk(argv, seconds)
        else:
            measure_once(argv, seconds, into, measured=app.key, apps=names, servers=servers)

    if options.warmup > 0:
        progress(f"warm-up: {options.warmup} s per app and operation")
        for app in apps:
            for operation in OPERATIONS:
                run(app, operation, options.warmup, "w", None)
    rows = [Row(app) for app in apps]
    for round_ in range(1, options.rounds + 1):
        progress(f"round {round_} of {options.rounds}: {options.seconds} s per app and operation")
        for operation in OPERATIONS:
            for row in rows:
                run(row.app, operation, options.seconds, f"r{round_}", row.runs[operation])
        for app in apps:
            app.process.check_alive()
    if options.profile is not None:
        profile_apps(apps, options, options.profile, f"{batch}p")
    return rows


def profile_apps(apps: Sequence[App], options: Options, directory: Path, run: str) -> None:
    """py-spy samples of sessiond as shipped and the floor, each operation under wrk's load."""
    directory.mkdir(parents=True, exist_ok=True)
    for app in apps:
        if app.key not in (SHIPPED, FLOOR):
            continue
        for operation in OPERATIONS:
            output = directory / f"{app.key}-{operation}.txt"
            progress(f"profiling {app.label}, {operation}: {output}")
            app.top_up(POOL_PER_CONNECTION * options.connections)
            argv = app.command(operation, options.seconds, options.connections, run)
            profile(app.process.pid, argv, options.seconds, output)


def main(args: Sequence[str]) -> int:
    """Run the benchmark and print the settings and the results table."""
    options = parse_options(args)
    try:
        print("\n".join(settings_lines(options)), flush=True)
        with running_apps(options.workers) as (cluster, apps):
            rows = measure(cluster, apps, options)
    except ProcessFailed as exc:
        raise BenchError(f"{exc.detail}; its output:\n{exc.output}") from None
    except SessiondError as exc:  # a missing binary
        raise BenchError(exc.detail) from None
    print()
    print("\n".join(table_lines(rows)))
    invalid = any(runs.result.errors for row in rows for runs in row.runs.values())
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
