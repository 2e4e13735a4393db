"""Many tensors against one flat tensor, measured long enough to see past machine noise.

    python bench/many_tensors.py [--rounds 31] [--torch]

The small-transformer parameter list of bandwidth_report.py (200 tensors, ~10.2M float32
elements) three ways: `flat` (one tensor of the same total), `views` (200 views into one buffer:
the flat memory, cut into the model's shapes) and `tensors` (200 separately allocated arrays, as a
model has them). For each: fastadam.adam_step_multi and fastadam.Adam.step on all threads, and
the bandwidth probe (and with --torch, torch.optim.Adam(fused=True) on the same arrays'
tensors). Rounds are interleaved; it prints the median time per step and the quartiles, and
each layout's median relative to flat.
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
