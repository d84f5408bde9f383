"""A whole sessiond deployment on this machine: NATS JetStream, Redis, N replicas, the relay.

    with LocalCluster(replicas=3) as cluster:      # every replica's /readyz answers 200
        cluster.urls                               # ["http://127.0.0.1:PORT", ...]
        cluster.credential                         # a service credential with every scope
        cluster.replicas[2].kill()                 # SIGKILL one replica ...
        cluster.replicas[2].start()                # ... and bring it back, same port
        cluster.nats.kill(); cluster.nats.start()  # same port, same JetStream directory
    # everything stopped; the temporary directory removed

Everything listens on 127.0.0.1 only, on free ports. The replicas share one keyset and one
credentials file written into the cluster's directory (reused if the directory already has
them; a new credential is issued on every start, since only hashes are stored). They get this
process's environment without its ``SESSIOND_*`` variables, the cluster's wiring, then
``env`` (e.g. ``{"SESSIOND_STALE_POLICY": "fallback"}``); the relay gets the same.

No process is left behind: the cluster stops everything when its ``with`` block ends, by an
exception, Ctrl-C included (further Ctrl-Cs are deferred until everything has stopped), or at
interpreter exit; see :mod:`sessiond.cluster.processes` for the rest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from sessiond.cluster.processes import Lifecycle, ManagedProcess
from sessiond.cluster.specs import NATS, REDIS, RELAY, SESSIOND
from sessiond.credentials.store import ALL_SCOPES, CredentialSet
from sessiond.errors import ConfigError
from sessiond.settings import PREFIX, Settings, env_name
from sessiond.tokens.keys import Keyset

__all__ = ("OWNED_SETTINGS", "LocalCluster")

#: Settings the cluster sets itself on every replica; ``env`` may not override them.
OWNED_SETTINGS = frozenset(
    env_name(name)
    for name in ("host", "port", "redis_url", "nats_url", "keyset_file", "credentials_file")
)

CREDENTIAL_NAME = "local-cluster"


class LocalCluster(Lifecycle):
    """NATS, Redis, ``replicas`` sessiond replicas and (``relay``) the outbox relay.

    ``directory`` keeps the keyset, the credentials, the Redis and JetStream data and every
    process's ``output.log``; without one a temporary directory is used and removed at the
    end. Process handles: :attr:`nats`, :attr:`redis`, :attr:`replicas`, :attr:`relay`.
    """

    def __init__(
        self,
        replicas: int = 3,
        *,
        directory: Path | str | None = None,
        relay: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if replicas < 1:
            raise ConfigError(f"a cluster needs at least one replica, not {replicas}")
        overrides = dict(env or {})
        owned = sorted(OWNED_SETTINGS.intersection(overrides))
        if owned:
            raise ConfigError(f"{owned[0]}: set by the local cluster itself")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(
                prefix="sessiond-cluster-", ignore_cleanup_errors=True
            )
            directory = self._tmp.name
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keyset_file = self.directory / "keyset.json"
        self.credentials_file = self.directory / "credentials.json"
        self._credential: str | None = None

        base = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        self.redis = ManagedProcess(REDIS, directory=self.directory / "redis", base_env=base)
        self.nats = ManagedProcess(NATS, directory=self.directory / "nats", base_env=base)
        self.env: dict[str, str] = {
            env_name("redis_url"): self.redis.url,
            env_name("nats_url"): self.nats.url,
            env_name("keyset_file"): str(self.keyset_file),
            env_name("credentials_file"): str(self.credentials_file),
            **overrides,
        }
        Settings.load(self.env)  # a wrong setting is one line now, not N crashed replicas
        self.replicas = [
            ManagedProcess(
                SESSIOND,
                directory=self.directory / f"replica-{n}",
                base_env=base,
                env=self.env,
                name=f"sessiond replica {n}",
            )
            for n in range(1, replicas + 1)
        ]
        self.relay = (
            ManagedProcess(RELAY, directory=self.directory / "relay", base_env=base, env=self.env)
            if relay
            else None
        )

    # --- what it is ------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """The base URL of every replica, replica 1 first."""
        return [replica.url for replica in self.replicas]

    @property
    def credential(self) -> str:
        """A service credential with every scope, issued by :meth:`start`."""
        if self._credential is None:
            raise RuntimeError("the cluster is not started")
        return self._credential

    @property
    def processes(self) -> list[ManagedProcess]:
        """Every process, in start order: Redis, NATS, the replicas, the relay."""
        relay = [self.relay] if self.relay is not None else []
        return [self.redis, self.nats, *self.replicas, *relay]

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Write the keys and a credential, start everything, wait until every replica is
        ready; on any failure (or Ctrl-C) stop what was started and raise."""
        try:
            self._write_files()
            self.restore()
        except BaseException:
            self.stop()
            raise

    def restore(self, timeout: float | None = None) -> None:
        """Start every process that is not running (servers first, then the replicas in
        parallel) and wait until every replica is ready (``timeout``: the spec's)."""
        for server in (self.redis, self.nats):
            if not server.running:
                server.start()
        # A first start may have moved a server to another port (its own was taken).
        wiring = {env_name("redis_url"): self.redis.url, env_name("nats_url"): self.nats.url}
        self.env.update(wiring)
        for process in [*self.replicas, *([self.relay] if self.relay else [])]:
            process.env.update(wiring)
            if not process.running:
                process.start(wait=False)
        for replica in self.replicas:
            replica.wait_ready(timeout)
        if self.relay is not None:
            self.relay.check_alive()

    def stop(self) -> None:
        """Stop everything (replicas and relay first, then NATS and Redis); Ctrl-C and
        SIGTERM wait until it is done."""
        with _signals_deferred():
            self._stop()

    def close(self) -> None:
        """:meth:`stop`, and remove the directory if it is a temporary one."""
        with _signals_deferred():
            self._stop()
            if self._tmp is not None:
                self._tmp.cleanup()

    def _stop(self) -> None:
        relay = [self.relay] if self.relay is not None else []
        _stop_together([*relay, *self.replicas])
        _stop_together([self.nats, self.redis])

    def _write_files(self) -> None:
        if not self.keyset_file.exists():
            Keyset.generate().save(self.keyset_file)
        current = (
            CredentialSet.load(self.credentials_file)
            if self.credentials_file.exists()
            else CredentialSet()
        )
        secret, updated = current.issue(CREDENTIAL_NAME, ALL_SCOPES)
        updated.save(self.credentials_file)
        self._credential = secret


def _stop_together(processes: Iterable[ManagedProcess]) -> None:
    """SIGTERM them all at once, then wait for each (SIGKILL after its grace period)."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    for process in processes:
        process.stop()


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (main thread only) and deliver them afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
