"""``python -m chaos``: how figures are judged, tabled and turned into the exit status."""

from __future__ import annotations

import pytest

import chaos.__main__ as chaos_main
from chaos._frame import Figure, Options, Outcome, exit_code, table

LOST = Figure("acknowledged revocations lost", 0, 0)
ELECTION = Figure("election", 1.234, None, "s")


def test_a_figure_is_ok_up_to_its_bound_and_always_without_one() -> None:
    assert Figure("x", 0, 0).ok
    assert Figure("x", 2.5, 2.5).ok
    assert not Figure("x", 1, 0).ok
    assert Figure("x", 1e9, None).ok


def test_the_exit_code_is_1_if_any_bounded_figure_is_over_its_bound() -> None:
    passed = Outcome("leader_kill", "kill -9 the leader", (LOST, ELECTION))
    over = Outcome("replica_pause", "SIGSTOP 5 s", (Figure("revoked tokens accepted", 3, 0),))
    assert exit_code([passed]) == 0
    assert exit_code([]) == 0
    assert exit_code([passed, over]) == 1


def test_the_table_has_a_row_per_figure_with_value_bound_and_verdict() -> None:
    outcomes = [
        Outcome("leader_kill", "kill -9 the leader", (LOST, ELECTION)),
        Outcome("fanout", "a | b", (Figure("p99", 12, 5, "ms"),), note="by design"),
    ]
    lines = table(outcomes).splitlines()
    assert lines[0] == "| scenario | injected | figure | value | bound | verdict |"
    assert lines[2] == (
        "| leader_kill | kill -9 the leader | acknowledged revocations lost | 0 | <= 0 | ok |"
    )
    assert lines[3] == "|  |  | election | 1.23 s |  | reported |"
    assert lines[4] == r"| fanout | a \| b | p99 | 12 ms | <= 5 ms | OVER |"
    assert lines[-1] == "- fanout: by design"


def test_a_scenario_that_raises_is_a_failed_row_with_its_error_and_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(options: Options) -> Outcome:
        raise RuntimeError("nats-server did not start")

    def fine(options: Options) -> Outcome:
        return Outcome("fine", f"quick={options.quick}", (LOST,))

    modules = {"broken": broken, "fine": fine}
    monkeypatch.setattr(chaos_main, "scenario_names", lambda: sorted(modules))
    monkeypatch.setattr(chaos_main, "_summary", lambda name: name)
    monkeypatch.setattr(chaos_main, "_scenario", lambda name: modules[name])

    assert chaos_main.main(["--quick", "--seed", "7"]) == 1
    printed = capsys.readouterr().out
    assert "| broken | (did not complete) | scenario errors | 1 | <= 0 | OVER |" in printed
    assert "- broken: RuntimeError: nats-server did not start" in printed
    assert "| fine | quick=True | acknowledged revocations lost | 0 | <= 0 | ok |" in printed

    assert chaos_main.main(["--only", "fine"]) == 0
