"""The receivers API (scope ``receivers:manage``) on both backends: a webhook's secret is
shown once, the receivers file's entries are read-only, errors are problem details."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from sessiond.api.app import create_app
from sessiond.credentials.store import CredentialSet
from sessiond.runtime import Runtime
from support.authority import Authority, MakeAuthority, assert_problem, bearer, distributed_settings
from support.secrets import register


async def create(authority: Authority, **body: Any) -> dict[str, Any]:
    response = await authority.http.post("/v1/receivers", json=body, headers=authority.service)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    register("webhook secret", created.get("secret"))
    return created


async def test_registering_and_removing_are_audited_without_the_secret(
    authority: Authority, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "sessiond.audit")
    created = await create(authority, id="crm", kind="webhook", endpoint="https://crm.test/hook")
    await authority.http.delete("/v1/receivers/crm", headers=authority.service)
    audited = [r.audit for r in caplog.records if r.name == "sessiond.audit"]  # type: ignore[attr-defined]
    assert [(a["action"], a["receiver"], a["actor"]["type"]) for a in audited] == [
        ("receiver.created", "crm", "service"),
        ("receiver.deleted", "crm", "service"),
    ]
    assert created["secret"] not in caplog.text


async def test_a_webhooks_secret_is_shown_once(authority: Authority) -> None:
    created = await create(
        authority, id="crm", kind="webhook", endpoint="https://crm.test/hook", events=["session"]
    )
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["session"]
    assert created["source"] == "api"
    listed = await authority.http.get("/v1/receivers", headers=authority.service)
    read = await authority.http.get("/v1/receivers/crm", headers=authority.service)
    for response in (listed, read):
        assert response.status_code == 200, response.text
        assert created["secret"] not in response.text
        assert created["secret"].removeprefix("whsec_") not in response.text
    assert read.json() == {k: v for k, v in created.items() if k != "secret"}
    assert listed.json() == {"receivers": [read.json()]}


async def test_oidc_and_ssf_receivers_get_an_id_and_no_secret(authority: Authority) -> None:
    rp = await create(
        authority, kind="backchannel_logout", endpoint="https://rp.test/bcl", audience="rp"
    )
    assert rp["id"].startswith("rcv_")
    assert "secret" not in rp
    missing = await authority.http.post(
        "/v1/receivers",
        json={"kind": "ssf", "endpoint": "https://gw.test"},
        headers=authority.service,
    )
    assert_problem(missing, 400, "bad-request")
    assert "audience" in missing.text


async def test_delete_then_404_and_a_taken_id_is_409(authority: Authority) -> None:
    await create(authority, id="crm", kind="webhook", endpoint="https://crm.test/hook")
    taken = await authority.http.post(
        "/v1/receivers",
        json={"id": "crm", "kind": "webhook", "endpoint": "https://x.test"},
        headers=authority.service,
    )
    assert_problem(taken, 409, "conflict")
    deleted = await authority.http.delete("/v1/receivers/crm", headers=authority.service)
    assert deleted.status_code == 204
    for response in (
        await authority.http.get("/v1/receivers/crm", headers=authority.service),
        await authority.http.delete("/v1/receivers/crm", headers=authority.service),
        await authority.http.get("/v1/receivers/crm/dead-letters", headers=authority.service),
    ):
        assert_problem(response, 404, "receiver-not-found")


@pytest.mark.parametrize("endpoint", ["http://crm.test/hook", "https://u:p@crm.test/", "not a url"])
async def test_an_endpoint_must_be_https_or_loopback(authority: Authority, endpoint: str) -> None:
    response = await authority.http.post(
        "/v1/receivers", json={"kind": "webhook", "endpoint": endpoint}, headers=authority.service
    )
    assert_problem(response, 400)


async def test_the_receivers_files_entries_are_listed_and_read_only(
    make_authority: MakeAuthority, tmp_path: Path
) -> None:
    path = tmp_path / "receivers.json"
    entry = {
        "id": "portal",
        "kind": "backchannel_logout",
        "endpoint": "https://rp.test/bcl",
        "audience": "p",
    }
    path.write_text(json.dumps({"receivers": [entry]}))
    authority = await make_authority(receivers_file=str(path))
    read = await authority.http.get("/v1/receivers/portal", headers=authority.service)
    assert read.json() == {
        **entry,
        "events": ["token", "session", "subject", "all"],
        "source": "file",
    }
    removed = await authority.http.delete("/v1/receivers/portal", headers=authority.service)
    assert_problem(removed, 409, "conflict")
    dead = await authority.http.get("/v1/receivers/portal/dead-letters", headers=authority.service)
    assert dead.json() == {"dead_letters": []}


async def test_receivers_need_the_receivers_manage_scope(redis_url: str, tmp_path: Path) -> None:
    settings, _ = distributed_settings(redis_url, tmp_path)
    assert settings.credentials_file is not None
    secret, credentials = CredentialSet.load(settings.credentials_file).issue(
        "sessions", ("sessions:read", "sessions:create", "sessions:revoke"), now=time.time()
    )
    register("service credential", secret)
    credentials.save(settings.credentials_file)
    async with AsyncTestClient(create_app(Runtime(settings))) as http:
        for response in (
            await http.get("/v1/receivers", headers=bearer(secret)),
            await http.post(
                "/v1/receivers",
                json={"kind": "webhook", "endpoint": "https://x.test"},
                headers=bearer(secret),
            ),
        ):
            assert_problem(response, 403, "insufficient-scope")
        assert_problem(await http.get("/v1/receivers"), 401)
