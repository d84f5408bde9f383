"""Issue 3's acceptance with real processes on loopback: nats-server (JetStream, fsync always),
redis-server, sessiond replicas and the outbox relay, started by :class:`LocalCluster`.

Most tests share one 3-replica cluster (module scope); a test that stops or kills a process
brings it back, and the ``cluster`` fixture restores whatever a failed test left stopped.
Every test uses subjects of its own. A revocation of kind ``all`` rejects every token issued
up to its second, so the test that makes them waits for the next second before it returns.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import pytest

from sessiond.cluster import LocalCluster, ManagedProcess
from support.authority import bearer
from support.cluster import (
    REVOKED,
    ROOT,
    STALE,
    Api,
    Session,
    Tries,
    cluster_command,
    mentioning,
    problem_type,
    unique,
)

#: How long a replica may take to reject a revoked token when its first answer was not yet 401.
PROPAGATION_DEADLINE = 0.050


# --- helpers ---------------------------------------------------------------------------------


def wait_readyz(api: Api, replica: int, status: int, within: float) -> None:
    """Poll a replica's ``/readyz`` until it answers ``status``; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while (answer := api.readyz(replica)).status_code != status:
        if time.monotonic() > deadline:
            pytest.fail(f"replica {replica + 1}: /readyz {answer.status_code}, not {status}")
        time.sleep(0.05)


def next_second() -> None:
    """Sleep until the clock's whole second changes: tokens issued from then on have an
    ``iat`` above any not-before set until now."""
    now = time.time()
    time.sleep(math.floor(now) + 1 - now + 0.01)


@dataclass
class FirstTries:
    """How often the first whoami after a revoke was already 401, per replica check."""

    checks: int = 0
    late: list[str] = field(default_factory=list)

    def record(self, label: str, tries: Tries, since_ack: float) -> None:
        self.checks += 1
        if tries.first != 401:
            self.late.append(
                f"{label}: first answer {tries.first} {since_ack * 1000:.1f} ms after the "
                f"revoke returned, {tries.last.status_code} "
                f"{(since_ack - tries.first_after + tries.elapsed) * 1000:.1f} ms after it"
            )

    def summary(self, kind: str) -> str:
        return (
            f"{kind}: first whoami already 401 on {self.checks - len(self.late)}/{self.checks} "
            f"replica checks; late: {self.late or 'none'}"
        )


#: NATS is down in these tests, not electing a leader: a revocation answers 202 after 2 s.
OUTAGE_BUDGET = {"SESSIOND_PUBLISH_BUDGET": "2"}


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(replicas=3, env=OUTAGE_BUDGET) as cluster:
        yield cluster


# --- instant revocation across replicas ------------------------------------------------------


def _revoke_session(api: Api, victim: Session) -> httpx.Response:
    return api.revoke_session(1, victim.sid)


def _revoke_subject(api: Api, victim: Session) -> httpx.Response:
    return api.revoke_subject(1, victim.sub)


def _revoke_all(api: Api, victim: Session) -> httpx.Response:
    return api.revoke(1, kind="all", reason="test: global not-before")


@pytest.mark.parametrize(
    ("kind", "revoke", "status", "rounds"),
    [
        pytest.param("session", _revoke_session, 204, 10, id="session"),
        pytest.param("subject", _revoke_subject, 204, 10, id="subject"),
        pytest.param("all", _revoke_all, 200, 3, id="all"),
    ],
)
def test_a_revocation_through_one_replica_is_rejected_by_every_replica_right_after_it(
    api: Api,
    kind: str,
    revoke: Callable[[Api, Session], httpx.Response],
    status: int,
    rounds: int,
) -> None:
    """Created through replica 1, revoked through replica 2, checked on 1, 2 and 3 at once.

    The first whoami on each replica is sent as soon as the revoke call returns (on a warm
    connection), the replica that did not take part first, alternating with replica 1. A
    first answer that is not yet 401 is counted and polled for up to 50 ms.
    """
    first_tries = FirstTries()
    try:
        for n in range(rounds):
            victim = api.login(0)
            for replica in range(3):  # accepted everywhere before, and connections warm
                assert api.whoami(replica, victim.access).status_code == 200
            revoked = revoke(api, victim)
            after = time.monotonic()
            assert revoked.status_code == status, revoked.text
            for replica in (2, 0, 1) if n % 2 == 0 else (0, 2, 1):
                tries = api.eventually(replica, victim.access, 401, PROPAGATION_DEADLINE)
                answered = time.monotonic() - after - tries.elapsed + tries.first_after
                first_tries.record(f"replica {replica + 1}", tries, answered)
                assert tries.last.status_code == 401, f"replica {replica + 1}: {tries.last.text}"
                assert problem_type(tries.last) == REVOKED
            if kind == "all":
                next_second()  # the next round's token must be issued after this not-before
    finally:
        print(first_tries.summary(kind))
        if kind == "all":
            next_second()


def run_walkthrough(cluster: LocalCluster) -> str:
    """The output of docs/deployment.md's cluster walk-through against ``cluster``."""
    guide = (ROOT / "docs" / "deployment.md").read_text()
    block = re.search(r"<!-- cluster-walkthrough.*?-->\n```sh\n(.*?)```", guide, re.DOTALL)
    assert block is not None, "docs/deployment.md lost its cluster walk-through block"
    r1, r2, r3 = cluster.urls
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)],
        env={"PATH": os.environ["PATH"], "R1": r1, "R2": r2, "R3": r3, "CRED": cluster.credential},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count('{"sub":"alice"') == 3, run.stdout
    assert "revoke via replica 2: 204" in run.stdout
    assert REVOKED in run.stdout
    assert run.stdout.rstrip().endswith("whoami on replica 3: 401"), run.stdout
    return run.stdout


def test_the_docs_cluster_walkthrough_works_as_printed(cluster: LocalCluster) -> None:
    run_walkthrough(cluster)


def test_the_walkthrough_works_on_the_production_topology() -> None:
    """Three NATS nodes (stream R3) and Redis with a replica and three Sentinels, every
    process with its role's own NATS and Redis user."""
    with LocalCluster(replicas=3, nats_nodes=3, redis_sentinel=True) as cluster:
        run_walkthrough(cluster)


# --- a replica crash -------------------------------------------------------------------------


def test_a_replica_killed_and_restarted_is_not_ready_until_it_rejects_what_it_missed(
    cluster: LocalCluster, api: Api
) -> None:
    down = cluster.replicas[2]
    # An ordinary restart: from its start on, no missed revocation is ever accepted, and at
    # its first 200 on /readyz it rejects every one of them. (Catching up a few events takes
    # milliseconds, usually over before it answers HTTP at all.)
    missed = _revoke_while_down(api, down)
    down.start(wait=False)
    seen = _watch_readiness(api, 2, missed, down, until=200, within=30.0)
    print(f"restarted replica, answers before /readyz 200: {seen}")
    _assert_rejected_by(api, 2, missed)

    # The same while NATS hangs (SIGSTOP), so that catching up lasts as long as we wish:
    # the replica serves, /readyz says 503 until NATS answers and it has caught up.
    missed += _revoke_while_down(api, down)
    cluster.nats.pause()
    try:
        down.start(wait=False)
        seen = _watch_readiness(api, 2, missed, down, until=503, within=30.0)
        print(f"restarted replica while NATS hangs, answers before /readyz 503: {seen}")
        _watch_readiness(api, 2, missed, down, until=503, within=30.0, at_least=0.5)
    finally:
        cluster.nats.resume()
    _watch_readiness(api, 2, missed, down, until=200, within=30.0)
    _assert_rejected_by(api, 2, missed)


def _revoke_while_down(api: Api, down: ManagedProcess) -> list[Session]:
    """Sessions made while every replica runs, revoked in every way through replicas 1 and 2
    (each acknowledged by the stream) while ``down`` is SIGKILLed."""
    sessions = [api.login(0) for _ in range(4)]
    subject = unique("everywhere")
    signed_in = [api.login(1, subject) for _ in range(2)]
    token = api.login(0)
    down.kill()  # its whole process group, at once
    for victim in sessions[:2]:
        assert api.revoke_session(0, victim.sid).status_code == 204
    for victim in sessions[2:]:
        assert api.revoke(1, kind="session", session_id=victim.sid).status_code == 200
    assert api.revoke_subject(1, subject).status_code == 204
    assert api.revoke(0, kind="token", jti=token.jti).status_code == 200
    return [*sessions, *signed_in, token]


def _assert_rejected_by(api: Api, replica: int, sessions: list[Session]) -> None:
    for session in sessions:
        response = api.whoami(replica, session.access)
        assert response.status_code == 401, response.text
        assert problem_type(response) == REVOKED


def _watch_readiness(
    api: Api,
    replica: int,
    revoked: list[Session],
    process: ManagedProcess,
    *,
    until: int,
    within: float,
    at_least: float = 0.0,
) -> dict[str, int]:
    """Poll a starting replica's ``/readyz`` until it answers ``until`` (for ``at_least``
    seconds, if given); any other answer must be 503 denylist-stale.

    Meanwhile no revoked token may be accepted: whoami must say 401 (already denied) or 503
    (not caught up; fail_closed). Returns how many answers of each kind came before.
    """
    seen: dict[str, int] = {}
    started = time.monotonic()
    while time.monotonic() - started < within:
        process.check_alive()
        try:
            ready = api.readyz(replica)
            for session in revoked:
                answer = api.whoami(replica, session.access).status_code
                assert answer in (401, 503), f"a revoked token got {answer} while catching up"
        except httpx.TransportError as exc:
            seen[type(exc).__name__] = seen.get(type(exc).__name__, 0) + 1
            time.sleep(0.005)
            continue
        if ready.status_code == until and time.monotonic() - started >= at_least:
            return seen
        if ready.status_code != until:
            assert ready.status_code == 503, ready.text
            assert problem_type(ready) == STALE
        key = f"{ready.status_code} {ready.json().get('detail', '')}"
        seen[key] = seen.get(key, 0) + 1
    pytest.fail(f"replica {replica + 1}: /readyz not {until} within {within} s; saw {seen}")


# --- a NATS crash ----------------------------------------------------------------------------


def test_a_nats_crash_loses_no_acknowledged_revocation_and_fails_closed_meanwhile(
    cluster: LocalCluster, api: Api
) -> None:
    victims = [api.login(0) for _ in range(8)]
    live = api.login(0)
    for victim in victims:  # each one acknowledged by the stream (204), the last just before
        assert api.revoke_session(1, victim.sid).status_code == 204

    cluster.nats.kill()  # SIGKILL right after the last acknowledgement
    for replica in range(3):  # after the staleness budget: not ready, and fail_closed
        wait_readyz(api, replica, 503, within=5.0)
        assert problem_type(api.readyz(replica)) == STALE
        refused = api.whoami(replica, live.access)
        assert refused.status_code == 503, refused.text
        assert problem_type(refused) == STALE

    cluster.nats.start()  # same port, same JetStream directory
    restarted = cluster.replicas[2]
    restarted.kill()
    restarted.start()  # waits for /readyz 200: its denylist comes from the stream alone
    for victim in victims:
        response = api.whoami(2, victim.access)
        assert response.status_code == 401, response.text
        assert problem_type(response) == REVOKED
    for replica in range(3):  # the others came back too
        wait_readyz(api, replica, 200, within=10.0)
        assert api.whoami(replica, live.access).status_code == 200


def test_with_the_fallback_policy_redis_decides_during_a_nats_outage() -> None:
    env = {"SESSIOND_STALE_POLICY": "fallback", **OUTAGE_BUDGET}
    with LocalCluster(2, relay=False, env=env) as cluster:
        api = Api(cluster)
        try:
            victim, live = api.login(0), api.login(0)
            cluster.nats.kill()
            wait_readyz(api, 1, 503, within=5.0)

            pending = api.revoke_session(0, victim.sid)
            assert pending.status_code == 202, pending.text
            assert pending.json()["status"] == "pending"
            for replica in (1, 0):  # replica 2 never heard of it: Redis says it is gone
                rejected = api.whoami(replica, victim.access)
                assert rejected.status_code == 401, rejected.text
                assert problem_type(rejected) == REVOKED
                accepted = api.whoami(replica, live.access)
                assert accepted.status_code == 200, accepted.text
            assert api.readyz(1).status_code == 503  # the policy does not make it ready
        finally:
            api.close()


# --- NATS down at revocation time: the relay --------------------------------------------------


def test_a_revocation_made_while_nats_is_down_reaches_every_replica_through_the_relay(
    cluster: LocalCluster, api: Api
) -> None:
    assert cluster.relay is not None
    relay_log = len(cluster.relay.output(limit=None))
    victim = api.login(0)
    subject = unique("relayed")
    signed_in = api.login(2, subject)
    cluster.nats.kill()

    for response in (api.revoke_session(1, victim.sid), api.revoke_subject(1, subject)):
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "pending"
    cluster.nats.start()

    # The relay publishes outbox events older than its grace (2 s), every second.
    for replica in range(3):
        for session in (victim, signed_in):
            response = api.eventually(replica, session.access, 401, within=15.0, every=0.05).last
            assert response.status_code == 401, f"replica {replica + 1}: {response.text}"
            assert problem_type(response) == REVOKED
    relayed = re.findall(r"relayed (\d+) of", cluster.relay.output(limit=None)[relay_log:])
    assert sum(map(int, relayed)) >= 2, cluster.relay.output()


def test_nats_lets_in_one_user_per_role_over_tls_and_nobody_else(tmp_path: Path) -> None:
    with LocalCluster(1, directory=tmp_path, tls=True) as cluster:  # ready: followed over TLS
        assert cluster.nats.url.startswith("tls://")
        config = cluster.nats.config_file.read_text()
        assert all(
            f"user: {role}" in config for role in ("authority", "relay", "verifier", "audit")
        )
        assert cluster.replicas[0].env["SESSIOND_NATS_USER"] == "authority"
        assert cluster.relay is not None
        assert cluster.relay.env["SESSIOND_NATS_USER"] == "relay"
        assert cluster.pki is not None
        context = cluster.pki.client_context()

        async def anonymous() -> None:
            await nats.connect(cluster.nats.url, tls=context, allow_reconnect=False)

        with pytest.raises(nats.errors.Error, match="Authorization"):
            asyncio.run(anonymous())
        cluster.relay.check_alive()


# --- the command -----------------------------------------------------------------------------


def test_sessiond_cluster_runs_until_ctrl_c_and_leaves_nothing_behind() -> None:
    with cluster_command("--replicas", "2") as cli:
        exported = re.search(r"export (R1=\S+) (R2=\S+) (CRED=\S+)", cli.printed)
        assert exported is not None, cli.printed
        values = dict(item.split("=", 1) for item in exported.groups())
        assert f"replica 1   {values['R1']}" in cli.printed
        assert re.search(r"nats +nats://127\.0\.0\.1:\d+", cli.printed), cli.printed
        assert re.search(r"redis +redis://127\.0\.0\.1:\d+/0", cli.printed), cli.printed
        directory = re.search(r"replica\(s\) in (\S+)", cli.printed)
        assert directory is not None, cli.printed
        names = sorted(name for _, name in cli.children)
        assert names.count("nats-server") == 1, names
        assert names.count("redis-server") == 1, names

        created = httpx.post(
            f"{values['R1']}/v1/sessions", json={"subject": "cli"}, headers=bearer(values["CRED"])
        )
        assert created.status_code == 201, created.text
        me = httpx.get(f"{values['R2']}/v1/whoami", headers=bearer(created.json()["access_token"]))
        assert me.status_code == 200, me.text
    assert not mentioning(directory.group(1)), "a process still uses the cluster's directory"
    assert not Path(directory.group(1)).exists()
