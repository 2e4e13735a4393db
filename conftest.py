"""Repository-wide pytest settings: how the benchmark suite in bench/ runs.

Plain ``pytest`` runs every test, and each benchmark once, untimed, as a correctness check
(pytest-benchmark's ``--benchmark-disable``), so a test run stays quick. Asking for timing in
any way pytest-benchmark offers (``--benchmark-only``, ``--benchmark-enable``, saving, comparing
or writing JSON) runs the benchmarks timed; ``--benchmark-only`` also deselects every
non-benchmark test instead of listing hundreds of skips.

A timed run ends with a compact summary below pytest-benchmark's own table (which lists every
case with min/max/mean/...): one line per size, within 80 columns, with the NumPy reference and
fastadam (default ISA) on one thread and on all threads (median time per step), the speedup of
fastadam's faster row over the reference and its bandwidth (28 bytes per float32 element).
bench/test_bench_adam.py records the medians through the ``bench_summary`` fixture.
"""

from __future__ import annotations

import dataclasses
import math

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


# --- the compact summary of a timed run ---------------------------------------------------------

_KEY = pytest.StashKey["Summary"]()
BYTES_PER_ELEMENT = 28  # float32: read p, g, m, v; write p, m, v


@dataclasses.dataclass
class Summary:
    # (elements, kind, isa, threads) -> median seconds per step
    medians: dict[tuple[int, str, str | None, int], float] = dataclasses.field(default_factory=dict)

    def record(self, n: int, kind: str, isa: str | None, threads: int, median: float) -> None:
        self.medians[(n, kind, isa, threads)] = median

    def lines(self, isa: str, all_threads: int) -> list[str]:
        sizes = sorted({key[0] for key in self.medians})
        if not sizes:
            return []
        many = f"{all_threads} threads"
        out = [
            f"float32 Adam step, median time per step; fastadam {isa}; speedup and GB/s of",
            "fastadam's faster row (28 bytes per element)",
            f"{'size':<7} {'NumPy ref':>11} {'1 thread':>11} {many:>11} {'speedup':>9} {'GB/s':>7}",
        ]
        for n in sizes:
            ref = self.medians.get((n, "reference", None, 1))
            one = self.medians.get((n, "adam_step", isa, 1))
            all_ = self.medians.get((n, "adam_step", isa, all_threads)) if all_threads > 1 else None
            fast = [t for t in (one, all_) if t is not None]
            best = min(fast) if fast else None
            speedup = f"{ref / best:8.1f}x" if ref and best else f"{'-':>9}"
            gbs = f"{BYTES_PER_ELEMENT * n / best / 1e9:7.1f}" if best else f"{'-':>7}"
            out.append(
                f"{'2**' + str(int(math.log2(n))):<7} {duration(ref):>11} {duration(one):>11} "
                f"{duration(all_):>11} {speedup} {gbs}"
            )
        return out


def duration(t: float | None) -> str:
    if t is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


@pytest.fixture(scope="session")
def bench_summary(request) -> Summary:
    """Where each timed case leaves its median for the summary."""
    return request.config.stash.setdefault(_KEY, Summary())


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own table
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    summary = config.stash.get(_KEY, None)
    if summary is None or not summary.medians:
        return
    import fastadam

    lines = summary.lines(fastadam.get_isa(), fastadam._core.default_num_threads())
    terminalreporter.write_sep("-", "fastadam summary")
    for line in lines:
        terminalreporter.write_line(line)
