"""A whole sessiond deployment on this machine: NATS JetStream, Redis, N replicas, the relay.

    with LocalCluster(replicas=3) as cluster:      # every replica's /readyz answers 200
        cluster.urls                               # ["http://127.0.0.1:PORT", ...]
        cluster.credential                         # a service credential with every scope
        cluster.replicas[2].kill()                 # SIGKILL one replica ...
        cluster.replicas[2].start()                # ... and bring it back, same port
        cluster.nats.kill(); cluster.nats.start()  # same port, same JetStream directory

    with LocalCluster(2, nats_nodes=3) as cluster: # NATS as a 3-node JetStream cluster, R3
        cluster.nats_nodes[1].kill()               # one node down: the stream elects a leader
    # everything stopped; the temporary directory removed

    with LocalCluster(1, app="examples.bank.app:app", app_replicas=2) as cluster:
        cluster.app_urls                           # two replicas of a resource backend

Everything listens on 127.0.0.1 only, on free ports. The replicas share one keyset and one
credentials file written into the cluster's directory (reused if the directory already has
them; a new credential is issued on every start, since only hashes are stored). They get this
process's environment without its ``SESSIOND_*`` variables, the cluster's wiring, then
``env`` (e.g. ``{"SESSIOND_STALE_POLICY": "fallback"}``); the relay gets the same.

With ``app`` (an ASGI ``module:attribute`` that verifies tokens with
:mod:`sessiond.verifier`, such as ``examples/bank``), ``app_replicas`` copies of it run under
granian (one worker each), started once the sessiond replicas are ready and ready once their
``/readyz`` answers 200. Each one gets this process's environment without its ``SESSIOND_*``
variables, ``SESSIOND_JWKS_URL`` (replica 1's JWKS) and ``SESSIOND_NATS_URL``, the settings of
``env`` that a verifier shares with the authority (:data:`SHARED_WITH_APPS`: issuer, audience,
stream, staleness budget and policy, ...), then ``app_env`` (e.g.
``{"SESSIOND_STALE_POLICY": "fail_open"}``).

No process is left behind: the cluster stops everything when its ``with`` block ends, by an
exception, Ctrl-C included (further Ctrl-Cs are deferred until everything has stopped), or at
interpreter exit; see :mod:`sessiond.cluster.processes` for the rest.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from sessiond.broadcast.stream import StreamSpec
from sessiond.cluster.nats_auth import (
    ROLE_USERS,
    NatsNode,
    Role,
    cluster_nodes,
    nats_spec,
    new_password,
    password_variable,
)
from sessiond.cluster.processes import Lifecycle, ManagedProcess
from sessiond.cluster.sentinel import SentinelTopology
from sessiond.cluster.specs import RELAY, SESSIOND, asgi_app, redis_spec
from sessiond.cluster.tls import make_test_pki
from sessiond.credentials.store import ALL_SCOPES, CredentialSet
from sessiond.errors import ConfigError
from sessiond.redis_client import acl_user
from sessiond.settings import PREFIX, NatsClientSettings, Settings, env_name
from sessiond.tokens.keys import Keyset
from sessiond.verifier.settings import VerifierSettings

__all__ = ("APP_OWNED_SETTINGS", "OWNED_SETTINGS", "SHARED_WITH_APPS", "LocalCluster")

#: The NATS settings the cluster sets for each process: where, as whom, over which TLS.
NATS_LOGIN = tuple(("nats_url", *NatsClientSettings.__struct_fields__))
#: The NATS users: one per role (``cluster/nats_auth.py``), named after it.
NATS_USERS: tuple[tuple[str, Role], ...] = ROLE_USERS

#: Settings the cluster sets itself on every replica; ``env`` may not override them.
OWNED_SETTINGS = frozenset(
    env_name(name)
    for name in (
        "host",
        "port",
        "redis_url",
        "redis_username",
        "redis_password",
        "redis_tls_ca",
        "redis_tls_cert",
        "redis_tls_key",
        "redis_sentinel_password",
        *NATS_LOGIN,
        "keyset_file",
        "credentials_file",
    )
)

#: Settings the cluster sets itself on every app replica; ``app_env`` may not override them.
APP_OWNED_SETTINGS = frozenset(env_name(name) for name in ("jwks_url", "keyset_file", *NATS_LOGIN))

#: Settings of ``env`` that the app replicas get too: the ones a verifier has with the same
#: meaning as the authority (its wiring aside), so that both agree on tokens and the stream.
SHARED_WITH_APPS = (
    frozenset(
        env_name(name)
        for name in set(Settings.__struct_fields__) & set(VerifierSettings.__struct_fields__)
    )
    - APP_OWNED_SETTINGS
    - OWNED_SETTINGS
)

CREDENTIAL_NAME = "local-cluster"
#: The replicas' and the relay's Redis ACL user (:func:`sessiond.redis_client.acl_rule`).
REDIS_USER = "sessiond"


class LocalCluster(Lifecycle):
    """NATS, Redis, ``replicas`` sessiond replicas, (``relay``) the outbox relay and
    (``app``) ``app_replicas`` replicas of a resource backend.

    ``directory`` keeps the keyset, the credentials, the Redis and JetStream data and every
    process's ``output.log``; without one a temporary directory is used and removed at the
    end. Process handles: :attr:`nats`, :attr:`redis`, :attr:`replicas`, :attr:`relay`,
    :attr:`apps`. ``app_dir`` is where ``app`` is imported from (default: the current
    directory).

    The replicas and the relay use Redis as the ACL user :data:`REDIS_USER`, whose password is
    new for every cluster; the ``default`` user stays open on loopback for tools and benches.
    NATS lets in only the users of :data:`NATS_USERS`, one per role with that role's least
    privilege (:mod:`sessiond.cluster.nats_auth`), passwords new for every cluster: the
    replicas connect as ``authority``, the relay as ``relay``, the apps as ``verifier``
    (:meth:`nats_login` gives a client's settings for a user).

    With ``tls``, Redis and NATS serve TLS only, with a test CA made in the directory
    (:attr:`pki`), and every process presents its certificate as its client certificate.

    With ``nats_nodes`` > 1, NATS is a cluster of that many nodes (:attr:`nats_nodes`;
    :attr:`nats` is the first) routed on loopback (with ``tls``, the routes use mutual TLS
    too), the stream has as many replicas unless ``env`` sets ``SESSIOND_NATS_REPLICAS``, and
    every process gets every node's URL (:attr:`nats_url`).

    With ``redis_sentinel``, Redis is a primary, a replica and three Sentinels
    (:class:`~sessiond.cluster.sentinel.SentinelTopology`, :attr:`sentinel`, every process in
    :attr:`redis_nodes`; :attr:`redis` is the primary at start) and the replicas and the relay
    find the master through the Sentinels (:attr:`redis_url`).
    """

    def __init__(
        self,
        replicas: int = 3,
        *,
        directory: Path | str | None = None,
        relay: bool = True,
        env: Mapping[str, str] | None = None,
        app: str | None = None,
        app_replicas: int = 2,
        app_env: Mapping[str, str] | None = None,
        app_dir: Path | str | None = None,
        tls: bool = False,
        nats_nodes: int = 1,
        redis_sentinel: bool = False,
    ) -> None:
        if replicas < 1:
            raise ConfigError(f"a cluster needs at least one replica, not {replicas}")
        if app is not None and app_replicas < 1:
            raise ConfigError(f"an app needs at least one app replica, not {app_replicas}")
        overrides = dict(env or {})
        owned = sorted(OWNED_SETTINGS.intersection(overrides))
        if owned:
            raise ConfigError(f"{owned[0]}: set by the local cluster itself")
        app_overrides = dict(app_env or {})
        owned = sorted(APP_OWNED_SETTINGS.intersection(app_overrides))
        if owned:
            raise ConfigError(f"{owned[0]}: set for the app replicas by the local cluster itself")
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
        self.pki = make_test_pki(self.directory / "tls") if tls else None
        redis_password = secrets.token_hex(24)
        redis_users = [acl_user(REDIS_USER, redis_password)]
        if redis_sentinel and tls:
            raise ConfigError("a Sentinel topology over TLS is not supported yet")
        self.sentinel = (
            SentinelTopology(self.directory, users=redis_users, base_env=base)
            if redis_sentinel
            else None
        )
        self.redis_nodes = (
            self.sentinel.nodes
            if self.sentinel
            else [
                ManagedProcess(
                    redis_spec(users=redis_users, pki=self.pki),
                    directory=self.directory / "redis",
                    base_env=base,
                )
            ]
        )
        self.redis = self.redis_nodes[0]
        self._nats_passwords = {user: new_password() for user, _ in NATS_USERS}
        if nats_nodes < 1:
            raise ConfigError(f"NATS needs at least one node, not {nats_nodes}")
        stream = StreamSpec.from_settings(Settings.load(overrides))
        nodes: list[NatsNode | None] = [*cluster_nodes(nats_nodes)] or [None]
        self.nats_nodes = [
            ManagedProcess(
                nats_spec(stream, NATS_USERS, self.pki, node),
                directory=self.directory / (node.name if node else "nats"),
                base_env=base,
                env={password_variable(u): p for u, p in self._nats_passwords.items()},
                name=node.name if node else None,
            )
            for node in nodes
        ]
        self.nats = self.nats_nodes[0]
        if nats_nodes > 1:  # replicated on every node, unless env says otherwise
            overrides.setdefault(env_name("nats_replicas"), str(nats_nodes))
        self.env: dict[str, str] = {
            env_name("redis_url"): self.redis_url,
            env_name("redis_username"): REDIS_USER,
            env_name("redis_password"): redis_password,
            **self._sentinel_login(),
            **self._client_tls("redis"),
            env_name("nats_url"): self.nats_url,
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
                env={**self.env, **self.nats_login("authority")},
                name=f"sessiond replica {n}",
            )
            for n in range(1, replicas + 1)
        ]
        self.relay = (
            ManagedProcess(
                RELAY,
                directory=self.directory / "relay",
                base_env=base,
                env={**self.env, **self.nats_login("relay")},
            )
            if relay
            else None
        )
        self.app_env = app_overrides
        self.apps: list[ManagedProcess] = []
        if app is not None:
            if ":" not in app:
                raise ConfigError(f"{app!r}: an ASGI app is given as module:attribute")
            spec = asgi_app(app, working_dir=Path(app_dir or Path.cwd()).resolve())
            self.apps = [
                ManagedProcess(
                    spec,
                    directory=self.directory / f"app-{n}",
                    base_env=base,
                    env=self._app_wiring(),
                    name=f"app replica {n}",
                )
                for n in range(1, app_replicas + 1)
            ]
            # As for the replicas: a wrong setting is one line now, not N crashed apps.
            if VerifierSettings.load(self.apps[0].env).stale_policy == "fallback":
                raise ConfigError(
                    "SESSIOND_STALE_POLICY=fallback: an app replica has no session store to "
                    "ask; give the apps fail_closed or fail_open (app_env, --app-env)"
                )

    # --- what it is ------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """The base URL of every replica, replica 1 first."""
        return [replica.url for replica in self.replicas]

    @property
    def app_urls(self) -> list[str]:
        """The base URL of every app replica, app replica 1 first (none without ``app``)."""
        return [app.url for app in self.apps]

    @property
    def nats_url(self) -> str:
        """``SESSIOND_NATS_URL``: every NATS node's URL, comma-separated."""
        return ",".join(node.url for node in self.nats_nodes)

    @property
    def redis_url(self) -> str:
        """``SESSIOND_REDIS_URL``: Redis's, or with ``redis_sentinel`` the Sentinels'."""
        return self.sentinel.url if self.sentinel else self.redis.url

    @property
    def credential(self) -> str:
        """A service credential with every scope, issued by :meth:`start`."""
        if self._credential is None:
            raise RuntimeError("the cluster is not started")
        return self._credential

    @property
    def processes(self) -> list[ManagedProcess]:
        """Every process, in start order: Redis, NATS, the replicas, the relay, the apps."""
        relay = [self.relay] if self.relay is not None else []
        return [*self.redis_nodes, *self.nats_nodes, *self.replicas, *relay, *self.apps]

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
        parallel, then the apps in parallel) and wait until every replica and app is ready
        (``timeout``: the spec's)."""
        if self.sentinel is not None:
            self.sentinel.start()
        for server in (*self.redis_nodes, *self.nats_nodes):
            if not server.running:
                server.start()
        # A first start may have moved a server to another port (its own was taken).
        wiring = {env_name("redis_url"): self.redis_url, env_name("nats_url"): self.nats_url}
        self.env.update(wiring)
        for process in [*self.replicas, *([self.relay] if self.relay else [])]:
            process.env.update(wiring)
            if not process.running:
                process.start(wait=False)
        for replica in self.replicas:
            replica.wait_ready(timeout)
        if self.relay is not None:
            self.relay.check_alive()
        wiring = self._app_wiring()
        for app in self.apps:
            app.env.update(wiring)
            if not app.running:
                app.start(wait=False)
        for app in self.apps:
            app.wait_ready(timeout)

    def stop(self) -> None:
        """Stop everything (the apps first, then the replicas and the relay, then NATS and
        Redis); Ctrl-C and SIGTERM wait until it is done."""
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
        _stop_together(self.apps)
        _stop_together([*relay, *self.replicas])
        _stop_together([*self.nats_nodes, *self.redis_nodes])

    def nats_login(self, user: str) -> dict[str, str]:
        """The ``SESSIOND_NATS_*`` settings of a client of this cluster's NATS as ``user`` (one
        of :data:`NATS_USERS`): its URL, user, password and, with TLS, the CA and certificate."""
        return {
            env_name("nats_url"): self.nats_url,
            env_name("nats_user"): user,
            env_name("nats_password"): self._nats_passwords[user],
            **self._client_tls("nats"),
        }

    def _sentinel_login(self) -> dict[str, str]:
        """With ``redis_sentinel``: the Sentinels' password."""
        if self.sentinel is None:
            return {}
        return {env_name("redis_sentinel_password"): self.sentinel.sentinel_password}

    def _client_tls(self, server: str) -> dict[str, str]:
        """With TLS: the test CA, and its certificate as the client certificate, in the
        settings of ``server`` (``redis`` or ``nats``)."""
        if self.pki is None:
            return {}
        return {
            env_name(f"{server}_tls_ca"): str(self.pki.ca_file),
            env_name(f"{server}_tls_cert"): str(self.pki.cert_file),
            env_name(f"{server}_tls_key"): str(self.pki.key_file),
        }

    def _app_wiring(self) -> dict[str, str]:
        """What an app replica gets on top of this environment: the authority's JWKS, the
        stream, the settings it shares with the replicas, then ``app_env``."""
        shared = {name: value for name, value in self.env.items() if name in SHARED_WITH_APPS}
        return {
            **shared,
            env_name("jwks_url"): f"{self.replicas[0].url}/.well-known/jwks.json",
            **self.nats_login("verifier"),
            **self.app_env,
        }

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
