"""``python -m fastadam``: the build's configuration and a few-second benchmark against the
NumPy reference (float32, one thread and all threads), with the bandwidth it reaches."""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from . import _core, adam_step, get_num_threads, reference, set_num_threads, show_config

BYTES_PER_ELEMENT = 28  # float32 Adam reads p, g, m, v and writes p, m, v


def _arrays(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    p, g, m = (rng.standard_normal(n, dtype=np.float32) for _ in range(3))
    v = rng.random(n, dtype=np.float32)
    return [p, g, m, v]


def _best_time(fn, min_seconds: float) -> float:
    """The fastest of repeated calls, repeating for at least min_seconds (and 3 times)."""
    best, spent, runs = float("inf"), 0.0, 0
    while spent < min_seconds or runs < 3:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best


def benchmark(sizes: list[int], min_seconds: float) -> list[str]:
    rng = np.random.default_rng(0)
    threads = get_num_threads()
    lines = [
        (
            f"{'elements':>10} {'reference':>12} {'fastadam 1T':>12}"
            f" {'fastadam ' + str(threads) + 'T':>12}"
            f" {'speedup 1T':>10} {'GB/s ' + str(threads) + 'T':>9} {'probe GB/s':>10}"
        )
    ]
    for n in sizes:
        arrays = _arrays(n, rng)
        t_ref = _best_time(partial(reference.adam_step, *arrays, step=1), min_seconds)
        set_num_threads(1)
        t_one = _best_time(partial(adam_step, *arrays, step=1), min_seconds)
        set_num_threads(threads)
        t_all = _best_time(partial(adam_step, *arrays, step=1), min_seconds)
        t_probe = _best_time(partial(_core.bandwidth_probe, *([a] for a in arrays)), min_seconds)

        def gbs(t: float, n: int = n) -> float:
            return BYTES_PER_ELEMENT * n / t / 1e9

        lines.append(
            f"{n:>10} {t_ref * 1e6:>10.1f}us {t_one * 1e6:>10.1f}us {t_all * 1e6:>10.1f}us"
            f" {t_ref / t_one:>9.1f}x {gbs(t_all):>9.1f} {gbs(t_probe):>10.1f}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fastadam", description=__doc__)
    parser.add_argument("--no-bench", action="store_true", help="print the configuration only")
    args = parser.parse_args(argv)
    show_config()
    if args.no_bench:
        return
    print()
    print(
        "Adam step, float32, times are the best of repeated calls (reference = fastadam.reference,"
    )
    print(
        f"in-place NumPy; GB/s counts {BYTES_PER_ELEMENT} bytes per element; probe = the same memory"
    )
    print("traffic without the math, on all threads):")
    for line in benchmark([2**10, 2**14, 2**17, 2**20, 2**22], min_seconds=0.25):
        print(line)


if __name__ == "__main__":
    main()
