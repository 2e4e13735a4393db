"""Repository-wide pytest settings: how the benchmark suite in bench/ runs.

Plain ``pytest`` runs every test, and each benchmark once, untimed, as a correctness check
(pytest-benchmark's ``--benchmark-disable``), so a test run stays quick. Asking for timing in
any way pytest-benchmark offers (``--benchmark-only``, ``--benchmark-enable``, saving, comparing
or writing JSON) runs the benchmarks timed; ``--benchmark-only`` also deselects every
non-benchmark test instead of listing hundreds of skips.
"""

from __future__ import annotations

import pytest

# Options that only make sense when benchmarks are timed: any of them switches timing on.
_TIMING_OPTIONS = (
    "benchmark_only",
    "benchmark_enable",
    "benchmark_save",
    "benchmark_autosave",
    "benchmark_json",
    "benchmark_compare",
    "benchmark_histogram",
)


def _timing_requested(config: pytest.Config) -> bool:
    return any(config.getoption(name, None) for name in _TIMING_OPTIONS)


def pytest_configure(config: pytest.Config) -> None:
    # Runs before pytest-benchmark's own pytest_configure (marked trylast), which reads the
    # option; it refuses --benchmark-disable together with --benchmark-only, hence the check.
    if hasattr(config.option, "benchmark_disable") and not _timing_requested(config):
        config.option.benchmark_disable = True


def pytest_report_header(config: pytest.Config) -> str | None:
    if not hasattr(config.option, "benchmark_disable"):
        return None
    if config.option.benchmark_disable and not config.option.benchmark_enable:
        return "benchmarks: run once, untimed (time them with `pytest --benchmark-only`)"
    return "benchmarks: timed"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("benchmark_only", False):
        return
    keep, drop = [], []
    for item in items:
        (keep if "benchmark" in getattr(item, "fixturenames", ()) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
