"""Redis with automatic failover on this machine: a primary, a replica and three Sentinels.

    topology = SentinelTopology(path, users=[acl_user("sessiond", password)])
    topology.start()             # every Sentinel knows the replica and its two peers
    topology.url                 # redis+sentinel://127.0.0.1:P1,...,127.0.0.1:P3/sessiond/0
    topology.primary.kill()      # the Sentinels promote the replica within a few seconds

The Sentinels (``redis-server --sentinel``) agree with a quorum of 2, call the master down
after :data:`DOWN_AFTER_MS` without an answer and require :data:`SENTINEL_PASSWORD_VARIABLE`'s
password from their clients. They and the replica reach the data nodes as ACL users of their
own, with only the commands they need (:data:`SENTINEL_RULE`, :data:`REPLICATION_RULE`).

Each start writes a process's configuration from its template again, so a data node that is
restarted comes back in its first role, and the Sentinels turn a former primary into a
replica of the promoted one.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import redis

from sessiond.cluster.processes import LOOPBACK, ManagedProcess, ProcessSpec
from sessiond.cluster.specs import redis_spec
from sessiond.settings import SENTINEL_SCHEME

__all__ = (
    "DOWN_AFTER_MS",
    "MASTER_NAME",
    "REPLICATION_RULE",
    "SENTINEL_RULE",
    "SentinelTopology",
)

#: The name the Sentinels monitor the primary under (``sentinel monitor <name> ...``).
MASTER_NAME = "sessiond"
#: Milliseconds without an answer before a Sentinel calls the master down.
DOWN_AFTER_MS = 1000
#: Milliseconds before a failed failover is tried again by another Sentinel.
FAILOVER_TIMEOUT_MS = 3000
#: How many Sentinels must agree that the master is down.
QUORUM = 2
SENTINELS = 3

#: The Sentinels' ACL user on the data nodes and what it may do (Redis's Sentinel docs).
SENTINEL_USER = "sentinel"
SENTINEL_RULE = (
    "reset on allchannels -@all +multi +exec +slaveof +replicaof +ping +subscribe +publish "
    "+config|rewrite +role +info +client|setname +client|kill +script|kill"
)
#: The replica's ACL user on the primary (and on whichever data node is master).
REPLICATION_USER = "replication"
REPLICATION_RULE = "reset on -@all +psync +replconf +ping"


class SentinelTopology:
    """The processes (:attr:`primary`, :attr:`replica`, :attr:`sentinels`, all in
    :attr:`nodes`) under ``directory``; ``users`` are ACL users of the data nodes besides the
    Sentinels' and the replica's (the arguments of a ``user`` directive)."""

    def __init__(
        self,
        directory: Path,
        *,
        users: Sequence[Sequence[str]],
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.sentinel_password = secrets.token_hex(24)
        self._passwords = {user: secrets.token_hex(24) for user in (SENTINEL_USER, "replica")}
        self._users = [
            *users,
            [SENTINEL_USER, *SENTINEL_RULE.split(), f">{self._passwords[SENTINEL_USER]}"],
            [REPLICATION_USER, *REPLICATION_RULE.split(), f">{self._passwords['replica']}"],
        ]
        self.primary = ManagedProcess(
            self._data_spec(None), directory=directory / "redis", base_env=base_env
        )
        self.replica = ManagedProcess(
            self._data_spec(self.primary.port),
            directory=directory / "redis-replica",
            base_env=base_env,
            name="redis-server replica",
        )
        self.sentinels = [
            ManagedProcess(
                self._sentinel_spec(self.primary.port),
                directory=directory / f"redis-sentinel-{n}",
                base_env=base_env,
                name=f"redis sentinel {n}",
            )
            for n in range(1, SENTINELS + 1)
        ]

    @property
    def nodes(self) -> list[ManagedProcess]:
        """Every process, in start order: the primary, the replica, the Sentinels."""
        return [self.primary, self.replica, *self.sentinels]

    @property
    def url(self) -> str:
        """``SESSIOND_REDIS_URL``: the Sentinels and the master's name, database 0."""
        hosts = ",".join(f"{LOOPBACK}:{sentinel.port}" for sentinel in self.sentinels)
        return f"{SENTINEL_SCHEME}://{hosts}/{MASTER_NAME}/0"

    def start(self) -> None:
        """Start what is not running: the data nodes one after the other, then the Sentinels
        together, until each Sentinel sees a master with a replica and its two peers."""
        if not self.primary.running:
            self.primary.start()
        followers = [self.replica, *self.sentinels]
        if not any(process.running for process in followers):
            # The primary's first start may have moved it to another port.
            self.replica.spec = self._data_spec(self.primary.port)
            for sentinel in self.sentinels:
                sentinel.spec = self._sentinel_spec(self.primary.port)
        if not self.replica.running:
            self.replica.start()
        waiting = [sentinel for sentinel in self.sentinels if not sentinel.running]
        for sentinel in waiting:
            sentinel.start(wait=False)
        for sentinel in waiting:
            sentinel.wait_ready()

    def _data_spec(self, primary_port: int | None) -> ProcessSpec:
        # No delay before a full synchronisation: a replica is in sync as soon as it can be.
        directives = ["repl-diskless-sync-delay 0", f"masteruser {REPLICATION_USER}"]
        directives.append(f"masterauth {self._passwords['replica']}")
        if primary_port is None:
            return redis_spec(users=self._users, directives=directives)
        directives.append(f"replicaof {LOOPBACK} {primary_port}")
        return replace(redis_spec(users=self._users, directives=directives), probe=_replica_in_sync)

    def _sentinel_spec(self, primary_port: int) -> ProcessSpec:
        config = [
            "port {port}",
            f"bind {LOOPBACK}",
            'dir "{dir}"',
            f"sentinel monitor {MASTER_NAME} {LOOPBACK} {primary_port} {QUORUM}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel auth-user {MASTER_NAME} {SENTINEL_USER}",
            f"sentinel auth-pass {MASTER_NAME} {self._passwords[SENTINEL_USER]}",
            f"requirepass {self.sentinel_password}",
            f"sentinel sentinel-pass {self.sentinel_password}",
        ]
        return ProcessSpec(
            name="redis-sentinel",
            binary="redis-server",
            args=("{config}", "--sentinel"),
            scheme="redis",
            config="".join(f"{line}\n" for line in config),
            probe=self._sentinel_ready,
        )

    def _sentinel_ready(self, process: ManagedProcess) -> bool:
        """Ready once it knows the master, a replica and every other Sentinel: before that a
        failover could find no quorum or no replica to promote."""
        client = redis.Redis(
            host=LOOPBACK, port=process.port, password=self.sentinel_password, socket_timeout=1
        )
        with contextlib.closing(client), contextlib.suppress(redis.RedisError):
            state = cast(dict[str, Any], client.sentinel_master(MASTER_NAME))
            return bool(state["num-slaves"] >= 1 and state["num-other-sentinels"] >= SENTINELS - 1)
        return False


def _replica_in_sync(process: ManagedProcess) -> bool:
    """Ready once its link to the primary is up, the first full synchronisation done."""
    client = redis.Redis(host=LOOPBACK, port=process.port, socket_timeout=1)
    with contextlib.closing(client), contextlib.suppress(redis.RedisError):
        return client.info("replication").get("master_link_status") == "up"
    return False
