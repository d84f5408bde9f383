"""``python -m bench``: which modules are benchmarks."""

from __future__ import annotations

from bench.__main__ import benchmark_names


def test_benchmarks_are_the_public_modules_not_the_apps_package_nor_helpers() -> None:
    assert benchmark_names() == ["authority", "delivery", "denylist", "propagation", "verifier"]
