"""sessiond on a Redis that serves TLS only (the test CA, the ACL user, a client certificate):
sessions work end to end, and a wrong CA or a plain ``redis://`` URL fails in one log line
naming the setting to fix, with ``/readyz`` at 503."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.cluster.specs import redis_spec
from sessiond.cluster.tls import TestPki, make_test_pki
from sessiond.redis_client import acl_user
from sessiond.runtime import Runtime
from support.authority import Authority, distributed_settings
from support.secrets import register
from support.servers import ServerProcess

USER = "sessiond"
PASSWORD = secrets.token_hex(16)
register("redis password", PASSWORD)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_redis(pki: TestPki) -> Iterator[ServerProcess]:
    with ServerProcess(redis_spec(users=[acl_user(USER, PASSWORD)], pki=pki)) as server:
        yield server


def settings_for(url: str, tmp_path: Path, **tls: str) -> tuple[Any, str]:
    return distributed_settings(url, tmp_path, redis_username=USER, redis_password=PASSWORD, **tls)


async def test_sessions_work_over_tls_with_a_client_certificate(
    tls_redis: ServerProcess, pki: TestPki, tmp_path: Path
) -> None:
    assert tls_redis.url.startswith("rediss://")
    settings, secret = settings_for(
        tls_redis.url,
        tmp_path,
        redis_tls_ca=str(pki.ca_file),
        redis_tls_cert=str(pki.cert_file),
        redis_tls_key=str(pki.key_file),
    )
    runtime = Runtime(settings)
    async with AsyncTestClient(create_app(runtime)) as http:
        authority = Authority(http, runtime, secret)
        tokens = await authority.login()
        assert (await authority.refresh(tokens["refresh_token"])).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


@pytest.mark.parametrize(
    ("scheme", "other_ca", "needle"),
    [
        ("rediss", True, "SESSIOND_REDIS_TLS_CA: the Redis server's certificate is not trusted"),
        ("redis", False, "SESSIOND_REDIS_URL must be rediss://"),
    ],
)
async def test_a_wrong_ca_or_no_tls_is_one_line_naming_the_setting(
    tls_redis: ServerProcess,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    scheme: str,
    other_ca: bool,
    needle: str,
) -> None:
    url = tls_redis.url.replace("rediss://", f"{scheme}://")
    tls = {"redis_tls_ca": str(make_test_pki(tmp_path / "other").ca_file)} if other_ca else {}
    settings, _ = settings_for(url, tmp_path, **tls)
    runtime = Runtime(settings)
    with caplog.at_level(logging.ERROR, logger="sessiond.redis"):
        async with AsyncTestClient(create_app(runtime)) as http:
            assert (await http.get("/readyz")).status_code == 503
    lines = [r.getMessage() for r in caplog.records if r.name == "sessiond.redis"]
    assert len(lines) == 1, lines
    assert needle in lines[0]
    assert "\n" not in lines[0]
