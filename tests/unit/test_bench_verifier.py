"""The wrk output parser of the benchmarks (``bench/_wrk.py``), on output captured from wrk 4.1.0
(Debian) on the development machine, and the targets' verdicts."""

from __future__ import annotations

import pytest

from bench._processes import BenchError
from bench._verifier_apps import APPS
from bench._verifier_report import Row, verdicts
from bench._wrk import WrkResult, combine, parse_wrk, wrk_command

#: ``wrk -t1 -c32 -d3s --latency`` against app (a).
CLEAN = """\
Running 3s test @ http://127.0.0.1:18081/balance
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.83ms  765.88us   8.47ms   73.49%
    Req/Sec    11.36k     2.04k   14.91k    63.33%
  Latency Distribution
     50%    2.76ms
     75%    3.30ms
     90%    3.68ms
     99%    5.57ms
  33908 requests in 3.00s, 5.98MB read
Requests/sec:  11301.43
Transfer/sec:      1.99MB
"""

#: The same against app (d) without a token: every answer a 401.
NON_2XX = """\
Running 2s test @ http://127.0.0.1:18082/balance
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.16ms  612.84us   8.57ms   72.52%
    Req/Sec    10.18k     1.12k   11.78k    61.90%
  Latency Distribution
     50%    3.00ms
     75%    3.42ms
     90%    4.05ms
     99%    4.96ms
  21249 requests in 2.10s, 4.09MB read
  Non-2xx or 3xx responses: 21249
Requests/sec:  10118.11
Transfer/sec:      1.95MB
"""

#: Against a server that resets every connection: socket read errors, no answer at all.
RESETS = """\
Running 1s test @ http://127.0.0.1:18085/balance
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 1.10s, 0.00B read
  Socket errors: connect 0, read 52572, write 0, timeout 0
Requests/sec:      0.00
Transfer/sec:       0.00B
"""


def test_clean_run() -> None:
    result = parse_wrk(CLEAN)
    assert result.requests == 33908
    assert result.seconds == pytest.approx(3.0)
    assert result.rate == pytest.approx(11301.43)
    assert result.p50 == pytest.approx(2.76e-3)
    assert result.p99 == pytest.approx(5.57e-3)
    assert result.errors == []


def test_non_2xx_answers_are_errors() -> None:
    result = parse_wrk(NON_2XX)
    assert result.non_2xx == 21249
    assert result.seconds == pytest.approx(2.1)
    assert result.errors == ["21249 non-2xx/3xx responses"]


def test_socket_errors_are_errors() -> None:
    result = parse_wrk(RESETS)
    assert result.requests == 0
    assert result.p50 == 0.0
    assert dict(result.socket_errors) == {"connect": 0, "read": 52572, "write": 0, "timeout": 0}
    assert result.errors == ["52572 socket read errors"]


def test_output_without_latency_distribution_is_refused() -> None:
    without = "\n".join(line for line in CLEAN.splitlines() if "%  " not in line)
    with pytest.raises(BenchError, match="--latency"):
        parse_wrk(without)


def test_rounds_combine_into_one_result() -> None:
    clean, non_2xx, resets = parse_wrk(CLEAN), parse_wrk(NON_2XX), parse_wrk(RESETS)
    both = combine([clean, non_2xx, resets])
    assert both.requests == 33908 + 21249
    assert both.seconds == pytest.approx(3.0 + 2.1 + 1.1)
    assert both.rate == pytest.approx((33908 + 21249) / 6.2)
    assert both.p50 == pytest.approx(2.76e-3)  # the median of 2.76, 3.00 and 0 ms
    assert both.p99 == pytest.approx(4.96e-3)
    assert both.errors == ["21249 non-2xx/3xx responses", "52572 socket read errors"]


def test_every_app_gets_the_same_wrk_settings() -> None:
    commands = [
        wrk_command("http://127.0.0.1:1/balance", {}, 5, 32),
        wrk_command("http://127.0.0.1:2/balance", {"Authorization": "Bearer x"}, 5, 32),
    ]
    assert commands[0][1:-1] == commands[1][1:-3]
    assert {"-t1", "-c32", "-d5s", "--latency"} <= set(commands[0])
    assert commands[1][-3:-1] == ["-H", "Authorization: Bearer x"]


def _row(letter: str, *rates: float) -> Row:
    app = next(app for app in APPS if app.letter == letter)
    row = Row(app)
    for rate in rates:
        row.runs.add(
            WrkResult(requests=int(rate), seconds=1.0, rate=rate, p50=0.0, p99=0.0), {}, 1.0
        )
    return row


def test_verdicts_compare_b_and_c_with_each_target() -> None:
    rows = [
        _row("a", 11000, 9000),
        _row("b", 9000, 9000),
        _row("d", 3000, 3000),
        _row("e", 2500, 2500),
        _row("f", 2000, 2000),
    ]
    found = verdicts(rows)
    assert [(mark.peer, mark.met) for mark in found["b"]] == [
        ("a", True),
        ("d", True),
        ("e", False),
        ("f", True),
    ]
    assert [round(mark.got, 2) for mark in found["b"]] == [0.9, 3.0, 3.6, 4.5]
    assert [round(r, 2) for r in found["b"][0].per_round] == [0.82, 1.0]
    assert str(found["b"][2]) == "3.60x e (rounds 3.60-3.60; >= 4x: MISSED)"
    assert "c" not in found  # not measured
