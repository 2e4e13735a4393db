"""Many tensors against one flat tensor, and one large tensor's state layout, measured long
enough to see past machine noise.

    python bench/many_tensors.py [--rounds 31] [--torch]
    python bench/many_tensors.py --single [2**26 50343993 ...] [--rounds 31]

The small-transformer parameter list of bandwidth_report.py (200 tensors, ~10.2M float32
elements) three ways: `flat` (one tensor of the same total), `views` (200 views into one buffer:
the flat memory, cut into the model's shapes) and `tensors` (200 separately allocated arrays, as a
model has them). For each: fastadam.adam_step_multi and fastadam.Adam.step on all threads, and
the bandwidth probe (and with --torch, torch.optim.Adam(fused=True) on the same arrays'
tensors). Rounds are interleaved; it prints the median time per step and the quartiles, and
each layout's median relative to flat.

--single: one tensor per size (default 2**26, a power of two, and 50,343,993, not one), on one
thread and on all: fastadam.Adam.step against the functional adam_step on separately allocated
arrays, and against adam_step with exp_avg and exp_avg_sq laid end to end in one buffer (for a
power-of-two size exactly 2**k bytes apart, the layout without staggering). Interleaved rounds,
median and quartiles in ns per element, each row relative to the separate arrays (ratio of the
medians, and median of the per-round ratios).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bandwidth_report import transformer_shapes

import fastadam
from fastadam import _core


def arrays_for(shapes, layout, rng):
    """p, g, m, v lists for the shapes: 'flat', 'views' or 'tensors'."""
    total = sum(int(np.prod(s)) for s in shapes)
    if layout == "flat":
        shapes = [(total,)]
    kinds = []
    for _ in range(4):
        if layout == "tensors":
            arrays = [_core.zeros_state(s, np.dtype(np.float32)) for s in shapes]
        else:
            buffer = _core.zeros_state((total,), np.dtype(np.float32))
            arrays, offset = [], 0
            for s in shapes:
                n = int(np.prod(s))
                arrays.append(buffer[offset : offset + n].reshape(s))
                offset += n
        for a in arrays:
            a[...] = rng.random(a.shape, dtype=np.float32)
        kinds.append(arrays)
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--torch", action="store_true", help="add torch.optim.Adam(fused=True)")
    parser.add_argument(
        "--single",
        nargs="*",
        metavar="N",
        help="one tensor per size N (e.g. 2**26): Adam.step vs adam_step on other layouts",
    )
    args = parser.parse_args()
    if args.single is not None:
        single(args.single or ["2**26", "50343993"], args.rounds)
        return
    if args.torch:
        import torch

        torch.set_num_threads(fastadam.get_num_threads())
    rng = np.random.default_rng(0)
    shapes = transformer_shapes()
    layouts = {name: arrays_for(shapes, name, rng) for name in ("flat", "views", "tensors")}
    calls = {}
    for name, (p, g, m, v) in layouts.items():
        opt = fastadam.Adam(p, lr=1e-3)
        opt.step(g)  # creates the optimizer's state
        calls[(name, "adam_step_multi")] = lambda p=p, g=g, m=m, v=v: fastadam.adam_step_multi(
            p, g, m, v, steps=1
        )
        calls[(name, "Adam.step")] = lambda opt=opt, g=g: opt.step(g)
        calls[(name, "probe")] = lambda p=p, g=g, m=m, v=v: _core.bandwidth_probe(p, g, m, v)
        if args.torch:
            tensors = [torch.nn.Parameter(torch.from_numpy(a)) for a in p]
            for t, a in zip(tensors, g):
                t.grad = torch.from_numpy(a)
            torch_opt = torch.optim.Adam(tensors, lr=1e-3, fused=True)
            torch_opt.step()  # creates torch's state
            calls[(name, "torch fused")] = torch_opt.step
    times = {key: [] for key in calls}
    keys = list(calls)
    for r in range(args.rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            t0 = time.perf_counter()
            calls[key]()
            times[key].append(time.perf_counter() - t0)
    total = sum(int(np.prod(s)) for s in shapes)
    print(
        f"{len(shapes)} tensors, {total:,} float32 elements, {fastadam.get_num_threads()} threads,"
        f" {args.rounds} interleaved rounds; time per step: median [quartiles], vs flat"
    )
    for what in ("adam_step_multi", "Adam.step", "probe") + (
        ("torch fused",) if args.torch else ()
    ):
        flat = np.median(times[("flat", what)])
        for name in layouts:
            t = np.array(times[(name, what)])
            q1, med, q3 = np.percentile(t, [25, 50, 75])
            print(
                f"  {what:<16} {name:<8} {med * 1e3:7.2f} ms [{q1 * 1e3:6.2f}, {q3 * 1e3:6.2f}]"
                f"  {100 * (med / flat - 1):+6.1f}%"
            )


def parse_size(text: str) -> int:
    if text.startswith("2**"):
        return 2 ** int(text[3:])
    return int(text)


def single(sizes: list[str], rounds: int) -> None:
    all_threads = _core.default_num_threads()
    print(
        f"one float32 tensor, {rounds} interleaved rounds, 1 and {all_threads} threads; "
        "ns per element: median [quartiles], vs separate arrays (medians; median of the "
        "per-round ratios)"
    )
    for n in map(parse_size, sizes):
        single_size(n, rounds, all_threads)
        fastadam.set_num_threads(all_threads)


def single_size(n: int, rounds: int, all_threads: int) -> None:
    """Adam.step on one tensor against the functional step on two other layouts, at 1 and all
    threads, in interleaved rounds (a pause between measurements lets idle threads settle)."""
    f32 = np.dtype(np.float32)
    rng = np.random.default_rng(n)
    p, g = (_core.zeros_state((n,), f32) for _ in range(2))
    p[...] = rng.random(n, dtype=np.float32)
    g[...] = rng.random(n, dtype=np.float32) - np.float32(0.5)
    m, v = _core.zeros_state((n,), f32), _core.zeros_state((n,), f32)
    rounded = -(-n // 16) * 16  # a 64-byte line
    both = _core.zeros_state((2 * rounded,), f32)
    m2, v2 = both[:n], both[rounded : rounded + n]
    opt = fastadam.Adam([p], lr=1e-3)
    opt.step([g])  # creates the optimizer's state
    calls = {
        "adam_step, separate arrays": lambda: fastadam.adam_step(p, g, m, v, step=10),
        "Adam.step": lambda: opt.step([g]),
        "adam_step, m and v end to end": lambda: fastadam.adam_step(p, g, m2, v2, step=10),
    }
    keys = [(name, t) for t in sorted({1, all_threads}) for name in calls]
    times: dict = {key: [] for key in keys}
    for r in range(rounds):
        for name, t in keys[r % len(keys) :] + keys[: r % len(keys)]:
            fastadam.set_num_threads(t)
            t0 = time.perf_counter()
            calls[name]()
            times[(name, t)].append(time.perf_counter() - t0)
            time.sleep(0.02)
    power = f" (2**{n.bit_length() - 1})" if n & (n - 1) == 0 else ""
    print(f"  n = {n:,}{power}")
    for name, t in keys:
        q1, med, q3 = np.percentile(times[(name, t)], [25, 50, 75]) / n * 1e9
        base = times[("adam_step, separate arrays", t)]
        # Also the median of the per-round ratios: each round times the rows of one thread
        # count back to back, so the ratio of a round sees one machine load.
        paired = np.median(np.array(times[(name, t)]) / np.array(base))
        print(
            f"    {t}t {name:<30} {med:6.3f} [{q1:6.3f}, {q3:6.3f}]  "
            f"{100 * (med / (np.median(base) / n * 1e9) - 1):+6.1f}%  "
            f"paired {100 * (paired - 1):+6.1f}%"
        )


if __name__ == "__main__":
    main()
