"""``optimizer.step()`` alone: fastadam.torch.Adam against torch.optim.Adam, side by side.

    python bench/torch_step.py                 # 21 rounds, about 2-4 minutes on 2 cores
    python bench/torch_step.py --rounds 5      # a quick look

Two cases: one 1024-element parameter (bound by the cost of a call), and the parameter list of
a small BERT-like encoder (``bandwidth_report.transformer_shapes``: 200 tensors, 10.2M float32
elements; bound by memory bandwidth). Contestants, each with its own parameters and gradients
(gradients set once, as after a backward pass) and its state created by two warm-up steps:

- ``fastadam.torch.Adam``;
- ``torch.optim.Adam(fused=True)``: torch's fused CPU kernel;
- ``torch.optim.Adam()``: torch's default, which on CPU tensors is the single-tensor loop;
- ``torch.optim.Adam(foreach=True)``: torch's multi-tensor implementation.

Each runs at 1 and at 2 threads (``fastadam.set_num_threads``, ``torch.set_num_threads``, set
before each measurement); rounds interleave every contestant and thread count in a rotating
order, and each contestant takes one untimed step before its timed ones: torch's OpenMP workers
keep spinning for a while after a parallel step and the step before leaves caches and TLBs to
another's memory: on the 2-core machine, a 2-thread fastadam step on the transformer took
8.6 ms right after a torch fused step and 5.0 ms right after one of its own (the step alone is
what is measured, not its neighbour's aftermath). The table gives medians and quartiles per step; the ratios compare each contestant
at its best thread count (lowest median).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
import torch

import fastadam
import fastadam.torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bandwidth_report import transformer_shapes

CONTESTANTS = {
    "fastadam.torch.Adam": lambda ps: fastadam.torch.Adam(ps, lr=1e-3),
    "torch fused": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
    "torch default": lambda ps: torch.optim.Adam(ps, lr=1e-3),
    "torch foreach": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
}


def make_params(shapes: list[tuple[int, ...]], seed: int) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    params = []
    for s in shapes:
        p = torch.nn.Parameter(torch.randn(s, generator=gen) * 0.02)
        p.grad = torch.randn(s, generator=gen) * 1e-3
        params.append(p)
    return params


def set_threads(n: int) -> None:
    fastadam.set_num_threads(n)
    torch.set_num_threads(n)


def measure(shapes, repeat: int, rounds: int) -> dict[tuple[str, int], list[float]]:
    """Seconds per step of each (contestant, threads), one entry per round."""
    entries = {}
    for i, (name, make) in enumerate(CONTESTANTS.items()):
        opt = make(make_params(shapes, seed=i))
        for threads in (1, 2):
            entries[(name, threads)] = opt
    for (_, threads), opt in entries.items():  # warm-up: state, pages, threads
        set_threads(threads)
        opt.step()
        opt.step()
    keys = list(entries)
    times: dict[tuple[str, int], list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            opt = entries[key]
            set_threads(key[1])
            opt.step()  # settle: let the previous contestant's threads go idle, untimed
            t0 = time.perf_counter()
            for _ in range(repeat):
                opt.step()
            times[key].append((time.perf_counter() - t0) / repeat)
    return times


def report(title: str, times: dict[tuple[str, int], list[float]]) -> dict[str, float]:
    print(f"\n{title}")
    print(f"{'contestant':22s} {'threads':>7s} {'median':>11s} {'q1':>11s} {'q3':>11s}")
    best: dict[str, tuple[float, int]] = {}
    for (name, threads), ts in times.items():
        q1, med, q3 = np.percentile(ts, [25, 50, 75])
        print(f"{name:22s} {threads:7d} {fmt(med):>11s} {fmt(q1):>11s} {fmt(q3):>11s}")
        if name not in best or med < best[name][0]:
            best[name] = (med, threads)
    ours, ours_threads = best["fastadam.torch.Adam"]
    print(f"fastadam.torch.Adam at its best ({ours_threads} thread(s)): {fmt(ours)}")
    ratios = {}
    for name, (med, threads) in best.items():
        if name != "fastadam.torch.Adam":
            ratios[name] = med / ours
            print(
                f"  vs {name} at its best ({threads} thread(s), {fmt(med)}): "
                f"{ratios[name]:.2f}x faster"
            )
    return ratios


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    shapes = transformer_shapes()
    print(
        f"fastadam {fastadam.__version__} ({fastadam.get_isa()}), torch {torch.__version__}; "
        f"{args.rounds} interleaved rounds, medians per step"
    )
    small = report(
        "one 1024-element parameter (per round: 200 steps)",
        measure([(1024,)], repeat=200, rounds=args.rounds),
    )
    n = sum(int(np.prod(s)) for s in shapes)
    large = report(
        f"transformer: {len(shapes)} tensors, {n / 1e6:.2f}M parameters (per round: 8 steps)",
        measure(shapes, repeat=8, rounds=args.rounds),
    )
    print("\nratios (how many times faster fastadam.torch.Adam is, each at its best threads):")
    print(f"  1024 elements vs torch fused:     {small['torch fused']:.2f}x")
    print(f"  transformer vs torch fused:       {large['torch fused']:.2f}x")
    print(f"  transformer vs torch default:     {large['torch default']:.2f}x")
    print(f"  transformer vs torch foreach:     {large['torch foreach']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
