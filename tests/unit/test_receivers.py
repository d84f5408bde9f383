"""Receivers: what a receiver may be, the registries (one contract, in memory and on a real
Redis), the receivers file and the catalog that joins them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sessiond.errors import BadRequest, ConfigError, Conflict, ReceiverNotFound
from sessiond.receivers.base import DEAD_LETTERS_KEPT, ReceiverRegistry
from sessiond.receivers.config import Catalog, load_receivers
from sessiond.receivers.memory import MemoryReceiverRegistry
from sessiond.receivers.models import DeadLetter, Receiver, checked, new_secret
from sessiond.receivers.redis import RedisReceiverRegistry
from sessiond.workers.delivery import RetryPolicy, main
from support.secrets import register


def secret() -> str:
    value = new_secret()
    register("webhook secret", value)
    return value


def hook(receiver_id: str = "crm", **fields: Any) -> Receiver:
    defaults: dict[str, Any] = {"endpoint": "https://crm.test/hook", "secret": secret()}
    return Receiver(id=receiver_id, kind="webhook", created_at=1.0, **(defaults | fields))


def letter(receiver_id: str, n: int) -> DeadLetter:
    return DeadLetter(
        receiver=receiver_id,
        event_id=f"{n:032x}",
        kind="session",
        seq=n,
        attempts=3,
        error="503",
        at=n,
    )


@pytest.fixture(params=["memory", "redis"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[ReceiverRegistry]:
    if request.param == "memory":
        backend: ReceiverRegistry = MemoryReceiverRegistry()
    else:
        backend = RedisReceiverRegistry.from_url(request.getfixturevalue("redis_url"))
    yield backend
    await backend.aclose()


async def test_registry_keeps_receivers_by_id_and_refuses_a_taken_id(
    registry: ReceiverRegistry,
) -> None:
    crm, portal = hook("crm"), hook("portal")
    assert await registry.add(portal)
    assert await registry.add(crm)
    assert not await registry.add(hook("crm", endpoint="https://other.test"))
    assert await registry.get("crm") == crm
    assert (await registry.get("crm")).secret == crm.secret  # type: ignore[union-attr]
    assert await registry.all() == [crm, portal]
    assert await registry.remove("crm")
    assert not await registry.remove("crm")
    assert await registry.get("crm") is None
    assert await registry.all() == [portal]


async def test_registry_keeps_the_newest_dead_letters_and_drops_them_with_the_receiver(
    registry: ReceiverRegistry,
) -> None:
    await registry.add(hook("crm"))
    for n in range(DEAD_LETTERS_KEPT + 5):
        await registry.dead_letter(letter("crm", n))
    newest = await registry.dead_letters("crm", limit=3)
    assert [d.seq for d in newest] == [
        DEAD_LETTERS_KEPT + 4,
        DEAD_LETTERS_KEPT + 3,
        DEAD_LETTERS_KEPT + 2,
    ]
    assert (
        len(await registry.dead_letters("crm", limit=10 * DEAD_LETTERS_KEPT)) == DEAD_LETTERS_KEPT
    )
    await registry.remove("crm")
    assert await registry.dead_letters("crm") == []


async def test_registry_forgets_a_dead_letter_delivered_after_all(
    registry: ReceiverRegistry,
) -> None:
    await registry.add(hook("crm"))
    for n in range(3):
        await registry.dead_letter(letter("crm", n))
    await registry.forget(letter("crm", 1))
    await registry.forget(letter("crm", 7))  # not kept: nothing happens
    assert [d.seq for d in await registry.dead_letters("crm")] == [2, 0]


def test_a_receivers_repr_never_shows_its_secret() -> None:
    receiver = hook()
    assert receiver.secret is not None
    assert receiver.secret not in repr(receiver)
    assert receiver.secret.removeprefix("whsec_") not in f"{receiver}"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"endpoint": "http://crm.test/hook"}, "https://"),
        ({"endpoint": "https://user:pw@crm.test/hook"}, "https://"),
        ({"endpoint": "ftp://127.0.0.1/x"}, "https://"),
        ({"secret": None}, "whsec_"),
        ({"secret": "whsec_c2hvcnQ="}, "at least 24 bytes"),
        ({"events": ()}, "events"),
        ({"events": ("session", "session")}, "events"),
    ],
)
def test_a_webhook_needs_an_https_endpoint_a_secret_and_kinds(
    fields: dict[str, Any], problem: str
) -> None:
    with pytest.raises(BadRequest, match=problem):
        checked(hook(**fields))


def test_loopback_http_is_allowed_and_oidc_and_ssf_need_an_audience() -> None:
    assert checked(hook(endpoint="http://127.0.0.1:8080/hook"))
    assert checked(hook(endpoint="http://[::1]:8080/hook"))
    for kind in ("backchannel_logout", "ssf"):
        with pytest.raises(BadRequest, match="audience"):
            checked(Receiver(id="rp", kind=kind, endpoint="https://rp.test/x"))
        with pytest.raises(BadRequest, match="only a webhook"):
            checked(
                Receiver(
                    id="rp", kind=kind, endpoint="https://rp.test/x", audience="rp", secret=secret()
                )
            )


def write(path: Path, receivers: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps({"receivers": receivers}))
    return str(path)


def test_the_receivers_file_reads_secrets_from_their_own_files(tmp_path: Path) -> None:
    value = secret()
    (tmp_path / "crm.secret").write_text(value + "\n")
    path = write(
        tmp_path / "receivers.json",
        [
            {
                "id": "crm",
                "kind": "webhook",
                "endpoint": "https://crm.test/h",
                "secret_file": str(tmp_path / "crm.secret"),
                "events": ["session"],
            },
            {
                "id": "portal",
                "kind": "backchannel_logout",
                "endpoint": "https://rp.test/bcl",
                "audience": "portal",
            },
        ],
    )
    crm, portal = load_receivers(path)
    assert (crm.secret, crm.events, crm.source, crm.created_at) == (
        value,
        ("session",),
        "file",
        None,
    )
    assert (portal.kind, portal.audience) == ("backchannel_logout", "portal")
    assert load_receivers(None) == ()


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (
            [{"id": "a", "kind": "webhook", "endpoint": "https://a.test", "secret": "whsec_x"}],
            "unknown field",
        ),
        (
            [
                {
                    "id": "a",
                    "kind": "webhook",
                    "endpoint": "https://a.test",
                    "secret_file": "/nonexistent",
                }
            ],
            "receiver a",
        ),
        (
            [{"id": "a", "kind": "ssf", "endpoint": "https://a.test"}],
            "receiver a: a ssf receiver needs an audience",
        ),
        (
            [{"id": "a", "kind": "ssf", "endpoint": "https://a.test", "audience": "x"}] * 2,
            "appears twice",
        ),
    ],
)
def test_a_wrong_receivers_file_is_a_config_error_naming_the_entry(
    tmp_path: Path, entries: list[dict[str, Any]], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_receivers(write(tmp_path / "receivers.json", entries))


async def test_the_catalog_joins_the_file_read_only_with_the_registry() -> None:
    fixed = Receiver(
        id="portal", kind="ssf", endpoint="https://gw.test", audience="gw", source="file"
    )
    catalog = Catalog(MemoryReceiverRegistry(), (fixed,))
    await catalog.add(hook("crm"))
    assert [r.id for r in await catalog.all()] == ["crm", "portal"]
    assert await catalog.get("portal") == fixed
    with pytest.raises(Conflict, match="exists"):
        await catalog.add(hook("portal"))
    with pytest.raises(Conflict, match="receivers file"):
        await catalog.remove("portal")
    with pytest.raises(BadRequest):
        await catalog.add(hook("bad", endpoint="http://example.test"))
    await catalog.remove("crm")
    with pytest.raises(ReceiverNotFound):
        await catalog.get("crm")
    with pytest.raises(ReceiverNotFound):
        await catalog.remove("crm")


def test_dead_letters_round_trip_as_json() -> None:
    assert msgspec.json.decode(msgspec.json.encode(letter("a", 1)), type=DeadLetter) == letter(
        "a", 1
    )


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(budget=86400, base=0.5, cap=60.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (8, 60.0), (11, 60.0)]:
        waits = {policy.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(waits) > 1  # jitter: retries of many receivers do not march in step
    with pytest.raises(ValueError, match="budget"):
        RetryPolicy(budget=0)


def test_the_default_retries_span_a_day_with_waits_of_at_most_an_hour() -> None:
    policy, waited, attempts = RetryPolicy(), 0.0, 1
    while waited < policy.budget:
        waited += policy.delay(attempts)
        attempts += 1
    assert policy.budget == 86400
    assert max(policy.delay(n) for n in range(1, 60)) <= 3600
    assert 25 <= attempts <= 60  # Standard Webhooks services try 8 times over a day


def test_the_worker_refuses_a_copy_that_would_drop_events_before_their_last_retry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESSIOND_DELIVERY_RETENTION", "86400")
    monkeypatch.setenv("SESSIOND_DELIVERY_RETRY_BUDGET", "86400")
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("sessiond-delivery: error: SESSIOND_DELIVERY_RETENTION must exceed")
