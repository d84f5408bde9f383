"""Delivery lag: revocation requested -> a receiver outside sessiond has it, per kind.

Starts ``nats-server`` (JetStream, file storage, ``sync_interval: always``), ``redis-server``
(AOF), one ``sessiond serve`` and one ``sessiond-delivery`` on free loopback ports, and three
receivers in this process (``http.server`` threads that answer at once): an OIDC back-channel
logout endpoint, a Shared Signals push endpoint and a webhook, each registered through the API.
Sessions are signed in up front; then, one revocation at a time, each session is revoked with
``POST /v1/revocations`` (``kind: session``) and the time from sending that request to each
receiver's arrival recorded. The receiver finds the session in the logout token's ``sid``, the
SET's ``sub_id`` or the webhook's ``data.sid``; tokens are decoded, not verified (that is the
receiver's cost, not the delivery's).

The lag counts the revocation's own path (the session store, the stream's acknowledgement) and
then the worker's: the stream's delivery to the receiver's consumer (a pull, one message at a
time), the event's signature check, signing a token (ES256) or the webhook's HMAC, and the
POST. The worker follows the stream, not the API, so a receiver often has the revocation
before the revoke call has answered (the ack row: it also waits for every replica's receipt).
Revocations go one at a time, so no sample waits behind another: this is the latency, not a
throughput under load.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import httpx

from bench._args import add_revocation_options
from bench._processes import NO_RATE_LIMITS, BenchError
from bench._report import machine_lines, ms, percentile, progress, server_version, table
from sessiond.cluster.processes import (
    ManagedProcess,
    ProcessFailed,
    ProcessSpec,
    free_port,
    output_probe,
)
from sessiond.cluster.specs import NATS, REDIS, SESSIOND
from sessiond.credentials.store import ALL_SCOPES, CredentialSet
from sessiond.errors import SessiondError
from sessiond.tokens.keys import Keyset

DEFAULT_REVOCATIONS = 300
DEFAULT_WARMUP = 20
#: A receiver that has not got a revocation by then is a failure, not a slow sample.
DEADLINE = 10.0
DELIVERY = ProcessSpec(
    name="sessiond-delivery",
    binary="sessiond-delivery",
    probe=output_probe("delivery started"),
)
KINDS = ("backchannel_logout", "ssf", "webhook")


@dataclass(frozen=True)
class Options:
    revocations: int
    warmup: int


def parse_options(argv: Sequence[str]) -> Options:
    """Parse the command line of ``python -m bench delivery``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench delivery",
        description="Revocation requested -> received by OIDC, SSF and webhook receivers.",
    )
    add_revocation_options(parser, DEFAULT_REVOCATIONS, DEFAULT_WARMUP)
    args = parser.parse_args(list(argv))
    return Options(revocations=args.revocations, warmup=args.warmup)


# --- receivers -------------------------------------------------------------------------------


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def session_of(kind: str, body: bytes) -> str:
    """The session a receiver of ``kind`` was told about, from the request body."""
    if kind == "backchannel_logout":
        return str(_claims(parse_qs(body.decode())["logout_token"][0])["sid"])
    if kind == "ssf":
        subject = _claims(body.decode())["sub_id"]
        assert isinstance(subject, dict)
        return str(subject["id"])
    return str(json.loads(body)["data"]["sid"])


@dataclass
class Receiver:
    """One receiver: the arrival time (``time.perf_counter``) of each session it was told of."""

    kind: str
    port: int = field(default_factory=free_port)
    arrived: dict[str, float] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.kind}"

    def record(self, body: bytes) -> None:
        at = time.perf_counter()
        with self.changed:
            self.arrived.setdefault(session_of(self.kind, body), at)
            self.changed.notify_all()

    def wait_for(self, sid: str, deadline: float) -> float | None:
        with self.changed:
            self.changed.wait_for(lambda: sid in self.arrived, deadline - time.perf_counter())
            return self.arrived.get(sid)


@contextmanager
def serving(receiver: Receiver) -> Iterator[None]:
    status = 202 if receiver.kind == "ssf" else 200

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            receiver.record(body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


# --- measurement -----------------------------------------------------------------------------


@dataclass
class Results:
    lags: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    acks: list[float] = field(default_factory=list)
    missing: int = 0


def measure(api: httpx.Client, receivers: Sequence[Receiver], options: Options) -> Results:
    progress(f"signing in {options.warmup + options.revocations} sessions")
    sessions = [_session(api, n) for n in range(options.warmup + options.revocations)]
    progress(f"{options.warmup} warm-up revocations, then {options.revocations} measured")
    results = Results()
    for n, sid in enumerate(sessions):
        sent = time.perf_counter()
        response = api.post("/v1/revocations", json={"kind": "session", "session_id": sid})
        t_ack = time.perf_counter()
        if response.status_code != 200:
            raise BenchError(f"revoke answered {response.status_code}: {response.text}")
        arrivals = [r.wait_for(sid, sent + DEADLINE) for r in receivers]
        if n < options.warmup:
            continue
        results.acks.append(t_ack - sent)
        for receiver, arrived in zip(receivers, arrivals, strict=True):
            if arrived is None:
                results.missing += 1
            else:
                results.lags[receiver.kind].append(arrived - sent)
    return results


def _session(api: httpx.Client, n: int) -> str:
    response = api.post("/v1/sessions", json={"subject": f"bench-{n:06d}"})
    if response.status_code != 201:
        raise BenchError(f"session create: {response.status_code} {response.text}")
    sid: str = response.json()["session_id"]
    return sid


def register(api: httpx.Client, receiver: Receiver) -> None:
    body = {"id": receiver.kind.replace("_", "-"), "kind": receiver.kind, "endpoint": receiver.url}
    if receiver.kind != "webhook":
        body["audience"] = "bench"
    response = api.post("/v1/receivers", json=body)
    if response.status_code != 201:
        raise BenchError(f"receiver create: {response.status_code} {response.text}")


# --- processes -------------------------------------------------------------------------------


@contextmanager
def deployment(directory: Path) -> Iterator[tuple[httpx.Client, ManagedProcess]]:
    """NATS, Redis, one replica and the delivery worker; the API client and the worker."""
    keyset, credentials = directory / "keyset.json", directory / "credentials.json"
    Keyset.generate("ES256").save(keyset)
    secret, issued = CredentialSet().issue("bench", ALL_SCOPES, now=time.time())
    issued.save(credentials)
    nats, redis = ManagedProcess(NATS), ManagedProcess(REDIS)
    started: list[ManagedProcess] = []
    try:
        for server in (nats, redis):
            server.start()
            started.append(server)
        name = f"delivery{uuid.uuid4().hex[:8]}"
        env = {
            "SESSIOND_REDIS_URL": redis.url,
            "SESSIOND_NATS_URL": nats.url,
            "SESSIOND_NATS_STREAM": name,
            "SESSIOND_NATS_SUBJECT": name,
            "SESSIOND_KEYSET_FILE": str(keyset),
            "SESSIOND_CREDENTIALS_FILE": str(credentials),
            "SESSIOND_LOG_LEVEL": "warning",
            **NO_RATE_LIMITS,
        }
        service = ManagedProcess(SESSIOND, env=env)
        worker = ManagedProcess(DELIVERY, env={**env, "SESSIOND_LOG_LEVEL": "info"})
        for process in (service, worker):
            process.start()
            started.append(process)
        with httpx.Client(
            base_url=service.url, headers={"Authorization": f"Bearer {secret}"}
        ) as api:
            yield api, worker
    finally:
        for process in reversed(started):
            process.stop()


# --- report ----------------------------------------------------------------------------------


def settings_lines(options: Options) -> list[str]:
    return [
        "sessiond delivery benchmark: revocation requested -> received by each receiver",
        "  servers      1 x `sessiond serve`, 1 x `sessiond-delivery` (defaults), ES256 keys",
        f"  revocations  {options.revocations} measured, one at a time (session revocations), "
        f"after {options.warmup} warm-up",
        "  receivers    OIDC back-channel logout, SSF push, webhook: http.server threads here",
        *machine_lines(),
        f"  nats-server  {server_version('nats-server')} (JetStream, file storage, "
        "sync_interval: always)",
        f"  redis        {server_version('redis-server')} (AOF)",
    ]


def table_lines(results: Results) -> list[str]:
    rows = [
        [
            f"revoke sent -> {kind} receiver",
            str(len(lags)),
            ms(percentile(lags, 50)),
            ms(percentile(lags, 99)),
            ms(max(lags, default=None)),
        ]
        for kind, lags in results.lags.items()
    ]
    rows.append(
        [
            "revoke: POST -> 200 (the ack)",
            str(len(results.acks)),
            ms(percentile(results.acks, 50)),
            ms(percentile(results.acks, 99)),
            ms(max(results.acks, default=None)),
        ]
    )
    lines = table(("measured", "samples", "p50 ms", "p99 ms", "max ms"), rows)
    if results.missing:
        lines.append(f"  error: {results.missing} deliveries missing after {DEADLINE:g} s")
    return lines


def main(args: Sequence[str]) -> int:
    """Run the benchmark and print the settings and the results; 1 if a delivery was missing."""
    options = parse_options(args)
    print("\n".join(settings_lines(options)), flush=True)
    receivers = [Receiver(kind) for kind in KINDS]
    try:
        with tempfile.TemporaryDirectory(prefix="sessiond-bench-delivery-") as directory:
            progress("starting nats-server, redis-server, sessiond and sessiond-delivery")
            with deployment(Path(directory)) as (api, worker), _all_serving(receivers):
                for receiver in receivers:
                    register(api, receiver)
                time.sleep(1.5)  # the worker looks at the receivers every second
                results = measure(api, receivers, options)
                worker.check_alive()
    except ProcessFailed as exc:
        raise BenchError(f"{exc.detail}; its output:\n{exc.output}") from None
    except SessiondError as exc:
        raise BenchError(exc.detail) from None
    print()
    print("\n".join(table_lines(results)))
    return 1 if results.missing else 0


@contextmanager
def _all_serving(receivers: Sequence[Receiver]) -> Iterator[None]:
    with serving(receivers[0]), serving(receivers[1]), serving(receivers[2]):
        yield
