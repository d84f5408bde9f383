"""Shared fixtures: real servers (``support/servers.py``: sessiond's own process supervisor),
clean state per test, and the ``slow``, ``redis`` and ``nats`` markers, set from what a test
uses (``docs/testing.md``)."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.aio.client
import pytest
import redis
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.broadcast.stream import StreamSpec
from sessiond.cluster import LocalCluster
from sessiond.runtime import Runtime
from sessiond.sessions.base import SessionStore
from sessiond.sessions.memory import MemorySessionStore
from sessiond.sessions.redis import RedisSessionStore
from sessiond.settings import Settings
from support.authority import Authority, MakeAuthority, distributed_settings
from support.cluster import Api
from support.polling import eventually
from support.servers import NATS, REDIS, ServerProcess
from support.tools import restrict_path

_TOOL_DIR = Path(tempfile.mkdtemp(prefix="sessiond-test-tools-"))


def pytest_configure(config: pytest.Config) -> None:
    missing = restrict_path(_TOOL_DIR)
    if missing:
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"not installed: {', '.join(missing)} (./dev test installs them)"
            ),
            stacklevel=2,
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_TOOL_DIR, ignore_errors=True)


#: The fixtures that start a real server, by the marker of the tests that use them.
_SERVER_FIXTURES = {"redis": {"redis_server", "own_redis"}, "nats": {"nats_server", "own_nats"}}
#: Folders whose every test runs processes of its own (clusters, ``sessiond serve``, kubectl).
_SLOW_FOLDERS = {"e2e", "deploy"}
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test ``redis``/``nats`` if it uses that real server and ``slow`` if it runs
    processes of its own, so that ``-m "not slow and not redis and not nats"`` is the fast
    subset. A test that starts a server without these fixtures carries the marker itself."""
    for item in items:
        for name in _markers(item):
            item.add_marker(name)


def _markers(item: pytest.Item) -> set[str]:
    fixtures = set(getattr(item, "fixturenames", ()))
    # A fixture parametrized by backend ("memory", "redis", "redis+nats") fetches its server
    # with getfixturevalue, which the fixture closure does not show: the param names it.
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    backends = {part for value in params if isinstance(value, str) for part in value.split("+")}
    found = {name for name, names in _SERVER_FIXTURES.items() if fixtures & names}
    found |= backends & _SERVER_FIXTURES.keys()
    if item.path.relative_to(_TESTS).parts[0] in _SLOW_FOLDERS:
        found.add("slow")
    return found


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ServerProcess]:
    """One redis-server for the whole test session; tests must not stop it (use ``own_redis``)."""
    with ServerProcess(REDIS) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: ServerProcess) -> str:
    """The shared Redis, emptied (FLUSHALL) before the test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[ServerProcess]:
    """A private redis-server that the test may stop, kill and start again."""
    with ServerProcess(REDIS) as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, str] | None:
    """``None`` for the embedded in-memory mode, else the distributed-mode settings (a clean real
    Redis; a test module may override this fixture to add NATS)."""
    if request.param == "memory":
        return None
    return {"redis_url": request.getfixturevalue("redis_url")}


@pytest.fixture
async def make_authority(
    backend: dict[str, str] | None, tmp_path: Path
) -> AsyncIterator[MakeAuthority]:
    """Start authorities with setting overrides, on the test's backend; stop them after."""
    clients: list[AsyncTestClient[Any]] = []

    async def make(**overrides: Any) -> Authority:
        if backend is None:
            settings, secret = Settings.load({}, overrides), None
        else:
            urls = dict(backend)
            redis_url = urls.pop("redis_url")
            settings, secret = distributed_settings(redis_url, tmp_path, **urls, **overrides)
        runtime = Runtime(settings)
        client: AsyncTestClient[Any] = AsyncTestClient(create_app(runtime))
        await client.__aenter__()
        clients.append(client)
        credential = secret or runtime.one_time_credential
        assert credential is not None
        await _until_current(runtime)
        return Authority(client, runtime, credential)

    yield make
    for client in reversed(clients):
        await client.__aexit__(None, None, None)


async def _until_current(runtime: Runtime) -> None:
    """Wait until the replica's denylist is current, as its readiness probe would."""
    budget = runtime.settings.staleness_budget
    await eventually(
        lambda: runtime.bus.staleness(time.time()) <= budget, 10.0, "the stream caught up"
    )


@pytest.fixture
async def authority(make_authority: MakeAuthority) -> Authority:
    """An authority with default settings."""
    return await make_authority()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[ServerProcess]:
    """One nats-server (JetStream, ``sync_interval: always``) for the whole test session.

    Tests must not stop it (use ``own_nats``) and should use stream names of their own.
    """
    with ServerProcess(NATS) as server:
        yield server


@pytest.fixture
def own_nats() -> Iterator[ServerProcess]:
    """A private nats-server that the test may stop, kill, pause and start again."""
    with ServerProcess(NATS) as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    """Each session store: in memory, and on a clean real Redis."""
    if request.param == "memory":
        backend: SessionStore = MemorySessionStore()
    else:
        backend = RedisSessionStore.from_url(request.getfixturevalue("redis_url"))
    yield backend
    await backend.aclose()


@pytest.fixture
def spec() -> StreamSpec:
    """A revocation stream of this test's own, on whichever NATS server the test uses."""
    tag = uuid.uuid4().hex[:12]
    return StreamSpec(
        name=f"T_{tag}", subject_prefix=f"t{tag}.revocations", max_age=600, duplicate_window=30
    )


@pytest.fixture
def stream_backend(redis_url: str, nats_server: ServerProcess, spec: StreamSpec) -> dict[str, str]:
    """The distributed mode (a clean Redis, the shared NATS) on this test's own stream; a module
    whose authorities need it overrides ``backend`` with it."""
    return {
        "redis_url": redis_url,
        "nats_url": nats_server.url,
        "nats_stream": spec.name,
        "nats_subject": spec.subject_prefix,
    }


@pytest.fixture
async def client(nats_server: ServerProcess) -> AsyncIterator[nats.aio.client.Client]:
    """A plain NATS client on the shared server, to look at streams directly."""
    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


@pytest.fixture(scope="session", autouse=True)
def secret_scan() -> Iterator[None]:
    """Fail the run if a registered secret shows up in ANY log record of the test session.

    Every record of every logger reaches the handler (the root logger is set to DEBUG for the
    session); ``support/secrets.py`` lists the credentials and tokens the fixtures handed out.
    Not vacuous: the scanner is checked on a canary first, and when tokens were issued the
    audit trail must have been captured at least once per token (each login and refresh is
    one ``sessiond.audit`` line), so capture at INFO provably worked.
    """
    import logging

    from support.secrets import REGISTRY, CaptureAll, Registry

    canary = Registry()
    canary.register("refresh token", "sid.canary-secret-part")
    canary.texts.append(("canary", "refresh failed for canary-secret-part"))
    assert canary.leaks(), "the secret scan does not detect a planted secret"

    root = logging.getLogger()
    handler, level = CaptureAll(level=logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    tokens = REGISTRY.count("access token")
    if tokens:
        assert REGISTRY.count("service credential") >= 1, "no credential registered"
        assert REGISTRY.audit_lines >= tokens, (
            f"{tokens} access tokens issued but only {REGISTRY.audit_lines} audit lines captured"
        )
    leaks = REGISTRY.leaks()
    assert not leaks, f"{len(leaks)} secret(s) in the log output:\n" + "\n".join(leaks[:20])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How much the secret scan looked at, so that a vacuous pass shows."""
    from support.secrets import REGISTRY

    terminalreporter.write_line(
        f"secret scan: {len(REGISTRY.secrets)} secrets checked against "
        f"{len(REGISTRY.texts)} log records ({REGISTRY.audit_lines} audit lines)"
    )


@pytest.fixture
def cluster(shared_cluster: LocalCluster) -> LocalCluster:
    """An end-to-end module's ``shared_cluster`` (its own fixture) with every process running
    and every replica and app ready: restores whatever an earlier test left stopped."""
    shared_cluster.restore()
    return shared_cluster


@pytest.fixture
def api(cluster: LocalCluster) -> Iterator[Api]:
    """HTTP to the cluster's sessiond replicas."""
    client = Api(cluster)
    yield client
    client.close()
