"""The apps of the authority benchmark, all on one Redis (AOF on): sessiond as shipped, sessiond
with its rate limits off, the hand-written floor (:mod:`bench.apps.floor`) and sessiond with
several granian workers; and the wrk command line of each operation.

The sessiond apps are replicas of one :class:`~sessiond.cluster.LocalCluster` (Redis, NATS
JetStream, one keyset and credentials file): the shipped one is the cluster's own replica with
every default (the rate limits, and the audit trail at log level ``info``); the others are
``sessiond serve`` processes with the cluster's wiring plus their difference.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import httpx

from bench._processes import NO_RATE_LIMITS, BenchError
from bench._report import progress
from bench._sessions import create_session
from bench._wrk import wrk_command
from bench.apps import REDIS_ENV
from bench.apps.floor import CREDENTIAL_HASH_ENV
from sessiond.cluster import LocalCluster, ManagedProcess
from sessiond.cluster.specs import SESSIOND, asgi_app
from sessiond.settings import PREFIX

__all__ = ("FLOOR", "OPERATIONS", "App", "Operation", "running_apps")

Operation = Literal["create", "refresh"]
OPERATIONS: Final[tuple[Operation, ...]] = ("create", "refresh")
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve().parent / "wrk" / "sessions.lua"
FLOOR = "floor"
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class App:
    """A running app: its key, label, process and refresh-token pool (a file, one a line)."""

    key: str
    label: str
    process: ManagedProcess
    credential: str
    pool: Path

    def command(self, operation: Operation, seconds: int, connections: int, run: str) -> list[str]:
        """wrk's command line for ``operation``; ``run`` makes the subjects of a create run
        unique (``<key>-<run>-<n>``)."""
        if operation == "create":
            headers = {"Authorization": f"Bearer {self.credential}", **JSON}
            args = ["create", f"{self.key}-{run}", str(self.pool)]
        else:
            headers, args = JSON, ["refresh", str(self.pool)]
        return wrk_command(
            self.process.url, headers, seconds, connections, script=SCRIPT, script_args=args
        )

    def pool_size(self) -> int:
        """How many refresh tokens the pool holds."""
        if not self.pool.exists():
            return 0
        with self.pool.open() as tokens:
            return sum(1 for _ in tokens)

    def top_up(self, least: int) -> None:
        """Sign in sessions until the pool holds at least ``least`` refresh tokens."""
        missing = least - self.pool_size()
        if missing <= 0:
            return
        batch = secrets.token_hex(4)
        with httpx.Client() as http, self.pool.open("a") as pool:
            for n in range(missing):
                subject = f"{self.key}-pool-{batch}-{n}"
                tokens = create_session(self.process.url, self.credential, subject, http)
                pool.write(f"{tokens['refresh_token']}\n")


def _sessiond(
    cluster: LocalCluster, key: str, env: Mapping[str, str], workers: int = 1
) -> ManagedProcess:
    """Another ``sessiond serve`` of ``cluster``, with ``env`` on top of its wiring."""
    spec = SESSIOND
    if workers > 1:
        spec = dataclasses.replace(SESSIOND, args=(*SESSIOND.args, "--workers", str(workers)))
    return ManagedProcess(
        spec,
        directory=cluster.directory / key,
        base_env=_clean_env(),
        env={**cluster.env, **cluster.nats_login("authority"), **env},
        name=f"sessiond {key}",
    )


def _floor(cluster: LocalCluster) -> ManagedProcess:
    spec = asgi_app(
        "bench.apps.floor:create_app", working_dir=ROOT, readiness_path="/readyz", factory=True
    )
    credential_hash = hashlib.sha256(cluster.credential.encode()).hexdigest()
    return ManagedProcess(
        dataclasses.replace(spec, name=FLOOR),
        directory=cluster.directory / FLOOR,
        base_env=_clean_env(),
        env={REDIS_ENV: cluster.redis.url, CREDENTIAL_HASH_ENV: credential_hash},
    )


def _clean_env() -> dict[str, str]:
    """This process's environment without ``SESSIOND_*``, with the repository on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def running_apps(workers: int) -> Iterator[tuple[LocalCluster, list[App]]]:
    """Redis, NATS and every app, started and answering; all stopped on exit. With
    ``workers`` > 1, the last app is sessiond as shipped with that many workers."""
    progress("starting redis-server, nats-server and sessiond as shipped")
    with LocalCluster(replicas=1, relay=False) as cluster, contextlib.ExitStack() as stack:
        plan: list[tuple[str, str, ManagedProcess]] = [
            ("shipped", "sessiond as shipped", cluster.replicas[0]),
            (
                "no-limits",
                "sessiond, rate limits off",
                _sessiond(cluster, "no-limits", NO_RATE_LIMITS),
            ),
            (FLOOR, "floor (hand-written)", _floor(cluster)),
        ]
        if workers > 1:
            process = _sessiond(cluster, f"workers-{workers}", {}, workers)
            plan.append((f"workers-{workers}", f"sessiond as shipped, {workers} workers", process))
        apps = []
        for key, label, process in plan:
            if process is not cluster.replicas[0]:
                progress(f"starting {label}")
                stack.enter_context(process)
            apps.append(
                App(key, label, process, cluster.credential, cluster.directory / f"{key}.tokens")
            )
        for app in apps:
            _check(app)
        yield cluster, apps


def _check(app: App) -> None:
    """One create and one refresh answer as they should, before anything is measured."""
    with httpx.Client() as http:
        tokens = create_session(app.process.url, app.credential, f"{app.key}-check", http)
        response = http.post(
            f"{app.process.url}/v1/tokens/refresh",
            json={"refresh_token": tokens["refresh_token"]},
        )
    if response.status_code != 200 or "refresh_token" not in response.json():
        raise BenchError(f"{app.label}: refresh answered {response.status_code}: {response.text}")
