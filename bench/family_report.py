"""Adam's family (RMSprop, Adamax, NAdam, RAdam, SWATS) against the memory bandwidth, at one size.

    python bench/family_report.py [--log2 24] [--threads 2] [--rounds 9]

Each optimizer's native step (its ``_core.*_step_sets`` entry, one float32 set of 2**log2
elements) is timed beside ``_core.bandwidth_probe`` (Adam's traffic, read p, g, m, v and write
p, m, v, 28 bytes per element, without the math), interleaved round-robin on the same thread
count; the median over the rounds of each ratio is printed. A step is judged against the probe
for its own bytes: "% of probe" is (bytes / step time) / (28 / probe time), its bandwidth as a
share of the probe's. SWATS is also compared with Adam's step (``adam_step_sets`` with Keras's
epsilon, the same arithmetic without the dot products): "overhead" is its time over Adam's,
minus one. Ratios, not absolute times, are the result: the machine may be shared.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastadam
from fastadam import _core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log2", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    n = 2**args.log2
    fastadam.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    def array(low=-1.0, high=1.0):
        a = _core.zeros_state((n,), np.dtype(np.float32))
        a[...] = rng.uniform(low, high, n)
        return a

    p, g = array(), array()
    s1, s2, s3 = array(), array(0.5, 1.0), array(0.5, 1.0)
    contestants = {
        # name: (call, bytes per element)
        "probe (Adam's traffic)": (lambda: _core.bandwidth_probe([p], [g], [s1], [s2]), 28),
        "Adam": (
            lambda: _core.adam_step_sets(
                [p], [g], [s1], [s2], [None], 10, (1e-9, 0.9, 0.999, 1e-8, 0.0) + (False,) * 4
            ),
            28,
        ),
        "Adam keras eps": (
            lambda: _core.adam_step_sets(
                [p],
                [g],
                [s1],
                [s2],
                [None],
                10,
                (1e-9, 0.9, 0.999, 1e-8, 0.0, False, False, False, True, True),
            ),
            28,
        ),
        "RMSprop": (
            lambda: _core.rmsprop_step_sets(
                [p], [g], [s2], [None], [None], 10, (1e-9, 0.99, 1e-8, 0.0, 0.0, False, False)
            ),
            20,
        ),
        "RMSprop centered+momentum": (
            lambda: _core.rmsprop_step_sets(
                [p], [g], [s2], [s1], [s3], 10, (1e-9, 0.99, 1e-8, 0.0, 0.9, True, False)
            ),
            36,
        ),
        "Adamax": (
            lambda: _core.adamax_step_sets(
                [p], [g], [s1], [s2], 10, (1e-9, 0.9, 0.999, 1e-8, 0.0, False)
            ),
            28,
        ),
        "NAdam": (
            lambda: _core.nadam_step_sets(
                [p], [g], [s1], [s2], 10, (1e-9, 0.9, 0.999, 1e-8, 0.0, 4e-3, False, False)
            ),
            28,
        ),
        "RAdam": (
            lambda: _core.radam_step_sets(
                [p], [g], [s1], [s2], 10, (1e-9, 0.9, 0.999, 1e-8, 0.0, False, False)
            ),
            28,
        ),
    }
    dots = np.zeros(2)
    contestants["SWATS (Adam phase)"] = (
        lambda: _core.swats_step_sets(
            [p],
            [g],
            [s1],
            [s2],
            [None],
            10,
            (1e-9, 0.9, 0.999, 1e-9, 0.0, False, False, 0.0),
            None,
            None,
            dots,
        ),
        28,
    )
    contestants["SWATS (SGD phase)"] = (
        lambda: _core.swats_step_sets(
            [p],
            [g],
            [s1],
            [s2],
            [s3],
            10,
            (1e-9, 0.9, 0.999, 1e-9, 0.0, False, True, 1e-9),
            None,
            None,
            dots,
        ),
        20,
    )
    times: dict[str, list[float]] = {name: [] for name in contestants}
    for name, (call, _) in contestants.items():
        call()  # warm: page faults, threads
    for _ in range(args.rounds):
        for name, (call, _) in contestants.items():
            t0 = time.perf_counter()
            for _ in range(3):
                call()
            times[name].append((time.perf_counter() - t0) / 3)

    probe = times["probe (Adam's traffic)"]
    print(
        f"fastadam {fastadam.__version__}, ISA {fastadam.get_isa()}, {args.threads} threads, "
        f"float32, 2**{args.log2} elements, {args.rounds} rounds (median of per-round ratios)"
    )
    print(f"{'step':28s} {'bytes/el':>8s} {'ms':>8s} {'GB/s':>7s} {'% of probe':>11s}")
    for name, (_, nbytes) in contestants.items():
        ms = statistics.median(times[name]) * 1e3
        share = statistics.median(28 / pt * t / nbytes for pt, t in zip(probe, times[name]))
        print(f"{name:28s} {nbytes:8d} {ms:8.2f} {nbytes * n / ms / 1e6:7.1f} {100 / share:10.1f}%")
    adam = times["Adam keras eps"]
    overhead = statistics.median(t / a for t, a in zip(times["SWATS (Adam phase)"], adam)) - 1
    print(f"SWATS (Adam phase) over Adam (keras eps): {100 * overhead:+.1f} % (the dot products)")


if __name__ == "__main__":
    main()
