"""The authority benchmark's wrk command lines and its verdicts on the issue's targets."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from bench._authority_apps import SCRIPT, App
from bench._authority_report import Row, verdicts
from bench._wrk import WrkResult
from sessiond.cluster import ManagedProcess


class _Process:
    url = "http://127.0.0.1:1"


def _app(key: str, tmp_path: Path = Path("/nonexistent")) -> App:
    process = cast(ManagedProcess, _Process())
    return App(key, key, process, "sdc_secret", tmp_path / f"{key}.tokens")


def test_create_sends_the_credential_and_a_subject_prefix_refresh_only_its_pool() -> None:
    app = _app("shipped")
    create = app.command("create", 3, 32, "r1")
    refresh = app.command("refresh", 3, 32, "r1")
    assert create[create.index("-s") + 1] == str(SCRIPT)
    assert create[-4:] == ["--", "create", "shipped-r1", str(app.pool)]
    assert "Authorization: Bearer sdc_secret" in create
    assert refresh[-3:] == ["--", "refresh", str(app.pool)]
    assert not any(arg.startswith("Authorization") for arg in refresh)
    assert "Content-Type: application/json" in refresh


def test_the_pool_counts_tokens_one_a_line(tmp_path: Path) -> None:
    app = _app("floor", tmp_path)
    assert app.pool_size() == 0
    app.pool.write_text("a.b\nc.d\n")
    assert app.pool_size() == 2


def _row(key: str, *figures: tuple[float, float]) -> Row:
    row = Row(_app(key))
    for runs in row.runs.values():
        for rate, p99 in figures:
            result = WrkResult(requests=int(rate), seconds=1.0, rate=rate, p50=0.0, p99=p99)
            runs.add(result, {}, 1.0)
    return row


def test_verdicts_compare_sessiond_as_shipped_with_the_floor() -> None:
    rows = [_row("shipped", (700, 0.2), (800, 0.3)), _row("floor", (1000, 0.05), (1000, 0.05))]
    marks = {mark.what: mark for mark in verdicts(rows)}
    assert list(marks) == ["create req/s", "create p99", "refresh req/s", "refresh p99"]
    rate, p99 = marks["create req/s"], marks["create p99"]
    assert (round(rate.got, 2), rate.met, rate.per_round) == (0.75, True, (0.7, 0.8))
    assert (p99.got, p99.met) == (5.0, False)  # the median of 0.2 and 0.3 over 0.05
    assert str(p99) == "create p99 5.00x floor (rounds 4.00-6.00; <= 4x: MISSED)"


def test_no_verdicts_without_the_floor() -> None:
    assert verdicts([_row("shipped", (700, 0.2))]) == []
