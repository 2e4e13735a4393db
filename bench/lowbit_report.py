"""8-bit Adam state against float32 Adam: speed, memory and accuracy, side by side.

    python bench/lowbit_report.py                  # all sections, a few minutes on 2 cores
    python bench/lowbit_report.py --rounds 5 --skip-accuracy   # a quick look at speed

Speed: one flat parameter of 2**20 and 2**24 elements, median ns per element of one step over
interleaved rounds, each contestant at 1 and 2 threads (its best is compared). In each round a
contestant takes one untimed step (the previous contestant's threads, torch's spinning OpenMP
workers among them, go idle), then about 50 ms of back-to-back steps are timed:

- ``fastadam f32``: ``fastadam.adam_step`` (float32 p, g, m, v: 28 bytes per element);
- ``probe f32``: ``fastadam._core.bandwidth_probe``, the same 28 bytes without the math;
- ``fastadam 8-bit``: ``fastadam.adam8bit_step`` (float32 p, g + 8-bit m, v: 16.06 bytes);
- ``probe 8-bit``: ``fastadam._core.adam8bit_bandwidth_probe``, those 16.06 bytes, no math;
- ``fastadam 8-bit bf16``: bfloat16 p, g + 8-bit state (10.06 bytes), parameter rounded to
  nearest;
- ``torch fused f32``: ``torch.optim.Adam(fused=True)`` on float32 (when torch is installed).

Memory: state bytes per parameter measured from the arrays, and the growth of the process's
peak RSS during one step over a 2**26-element parameter whose state already exists.

Accuracy: the 100-step quadratic of tests/test_lowbit.py (2**20 parameters, lr 1e-2 and 1e-3)
and the digits MLP of examples/digits.py trained with float32 Adam and with 8-bit state (every
parameter 8-bit: min_8bit_size=0), final test accuracy averaged over seeds.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

import fastadam
from fastadam import lowbit

core = fastadam._core


def f32_case(n, rng):
    p = rng.standard_normal(n).astype(np.float32)
    g = (rng.standard_normal(n) * 1e-3).astype(np.float32)
    # The state as fastadam.Adam allocates it: NumPy puts large arrays at one offset modulo 4 KiB
    # or 16 bytes apart, where the float32 step at 2**20 took 1.2-2.0x the time (4 KiB
    # alias checks of loads against the other streams' stores). The 8-bit codes below are NumPy
    # arrays, as in fastadam.Adam; bytes against floats collide only now and then.
    m, v = (core.zeros_state((n,), np.dtype(np.float32)) for _ in range(2))
    fastadam.adam_step(p, g, m, v, step=1)
    state = {"t": 1}

    def step():
        state["t"] += 1
        fastadam.adam_step(p, g, m, v, step=state["t"])

    def probe():
        core.bandwidth_probe([p], [g], [m], [v])

    return step, probe


def lowbit_case(n, rng, dtype=np.float32):
    p = rng.standard_normal(n).astype(dtype)
    g = (rng.standard_normal(n) * 1e-3).astype(dtype)
    s = lowbit.zeros_state(n)
    fastadam.adam8bit_step(p, g, **s, step=1)
    state = {"t": 1}

    def step():
        state["t"] += 1
        fastadam.adam8bit_step(p, g, **s, step=state["t"])

    def probe():
        core.adam8bit_bandwidth_probe(
            [p],
            [g],
            [s["exp_avg_codes"]],
            [s["exp_avg_scales"]],
            [s["exp_avg_sq_codes"]],
            [s["exp_avg_sq_scales"]],
        )

    return step, probe


def torch_case(n, rng):
    import torch

    p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(n).astype(np.float32)))
    p.grad = torch.from_numpy((rng.standard_normal(n) * 1e-3).astype(np.float32))
    opt = torch.optim.Adam([p], lr=1e-3, fused=True)
    opt.step()
    return opt.step


def contestants(n, rng):
    out = {}
    out["fastadam f32"], out["probe f32"] = f32_case(n, rng)
    out["fastadam 8-bit"], out["probe 8-bit"] = lowbit_case(n, rng)
    try:
        from fastadam.dtypes import BFLOAT16

        if BFLOAT16 is not None:
            out["fastadam 8-bit bf16"], _ = lowbit_case(n, rng, BFLOAT16)
    except ImportError:
        pass
    try:
        out["torch fused f32"] = torch_case(n, rng)
    except ImportError:
        pass
    return out


def set_threads(k):
    fastadam.set_num_threads(k)
    try:
        import torch

        torch.set_num_threads(k)
    except ImportError:
        pass


def speed(n, rounds, rng):
    cases = contestants(n, rng)
    times = {(name, k): [] for name in cases for k in (1, 2)}
    keys = list(times)
    repeat = {}
    for name, k in keys:  # calibrate: about 50 ms of steps per timing
        set_threads(k)
        cases[name]()
        start = time.perf_counter()
        cases[name]()
        repeat[(name, k)] = max(1, min(100, round(0.05 / max(time.perf_counter() - start, 1e-9))))
    for r in range(rounds):
        for name, k in keys[r % len(keys) :] + keys[: r % len(keys)]:  # a rotating order
            set_threads(k)
            cases[name]()  # settle, untimed: the previous contestant's threads go idle
            start = time.perf_counter()
            for _ in range(repeat[(name, k)]):
                cases[name]()
            times[(name, k)].append((time.perf_counter() - start) / repeat[(name, k)])
    best = {}
    print(f"\n2**{n.bit_length() - 1} elements, median ns/element (1 thread / 2 threads):")
    for name in cases:
        med = [float(np.median(times[(name, k)])) / n * 1e9 for k in (1, 2)]
        best[name] = min(med)
        print(f"  {name:22s} {med[0]:7.3f} / {med[1]:7.3f}")
    print("  ratios at each one's best thread count:")

    def ratio(a, b, label):
        if a in best and b in best:
            print(f"    {label:48s} {best[b] / best[a]:5.2f}x")

    ratio("fastadam 8-bit", "fastadam f32", "8-bit step vs fastadam float32 step")
    ratio("fastadam 8-bit", "torch fused f32", "8-bit step vs torch fused float32")
    ratio("fastadam 8-bit bf16", "torch fused f32", "8-bit bf16 step vs torch fused float32")
    ratio("fastadam 8-bit", "probe 8-bit", "8-bit step as a share of its probe's speed")
    ratio("probe 8-bit", "probe f32", "probe 16 bytes vs probe 28 bytes")
    ratio("fastadam f32", "probe f32", "float32 step as a share of its probe's speed")
    # bitsandbytes Adam8bit on CPU, from ../shared/notes/lowbit.md (not installed here): its time
    # relative to torch fused there (2 threads), carried over through torch fused's time here.
    notes = {20: 8.8 / 0.35, 24: 12.5 / 0.61}.get(n.bit_length() - 1)
    if notes is not None and "torch fused f32" in best:
        slower = notes * best["torch fused f32"] / best["fastadam 8-bit"]
        print(
            f"    bitsandbytes Adam8bit: {notes:.1f}x torch fused's time"
            f" (../shared/notes/lowbit.md), so about {slower:.0f}x this 8-bit step's"
        )
    return best


def memory():
    n = 1 << 26
    p = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    g = np.full(n, 1e-3, np.float32)
    s = lowbit.zeros_state(n)
    fastadam.adam8bit_step(p, g, **s, step=1)
    state_bytes = sum(a.nbytes for a in s.values())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fastadam.adam8bit_step(p, g, **s, step=2)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("\nmemory, 2**26 float32 parameters with 8-bit state:")
    print(f"  state bytes per parameter (from the arrays): {state_bytes / n:.4f} (float32: 8)")
    print(f"  peak RSS growth during a step: {(after - before) / 1024:.3f} MiB")


def quadratic(lr, rng):
    n = 1 << 20
    d = rng.uniform(0.1, 2, n).astype(np.float32)
    b = (np.where(rng.random(n) < 0.5, -1, 1) * 10 ** rng.uniform(-4, 0, n)).astype(np.float32)

    def loss(p):
        return float(np.sum(d.astype(np.float64) * p * p) / 2 - np.dot(b.astype(np.float64), p))

    p32, m, v = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
    p8, s = np.zeros(n, np.float32), lowbit.zeros_state(n)
    for t in range(1, 101):
        fastadam.adam_step(p32, d * p32 - b, m, v, step=t, lr=lr)
        fastadam.adam8bit_step(p8, d * p8 - b, **s, step=t, lr=lr)
    dev = np.abs(p8 - p32)
    gap = (loss(p8) - loss(p32)) / abs(loss(p32))
    print(
        f"  quadratic lr {lr:g}: max deviation {dev.max():.3g}, elements off by > 1: "
        f"{int((dev > 1).sum())}, loss gap {100 * gap:+.2f} %"
    )


def digits(seeds):
    sys.path.insert(0, "examples")
    import digits as ex

    data = ex.load_data()
    results = {}
    for label, extra in (("float32", {}), ("8-bit", {"state_bits": 8, "min_8bit_size": 0})):
        accs = []
        for seed in seeds:
            start = ex.initial_weights(64, 10, seed)
            params = [p.copy() for p in start]
            opt = fastadam.Adam(params, lr=3e-3, **extra)
            order_rng = np.random.default_rng(seed + 1)
            x, y, xt, yt = data
            for _ in range(40):
                order = order_rng.permutation(len(y))
                for i in range(0, len(order), ex.BATCH):
                    batch = order[i : i + ex.BATCH]
                    opt.step(ex.loss_and_grads(params, x[batch], y[batch])[1])
            accs.append(ex.accuracy(params, xt, yt))
        results[label] = 100 * float(np.mean(accs))
        print(
            f"  digits MLP, Adam {label}: test accuracy {results[label]:.2f} % (mean of {len(seeds)} seeds)"
        )
    print(f"  difference: {results['8-bit'] - results['float32']:+.2f} points")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"fastadam {fastadam.__version__}, ISA {fastadam.get_isa()}")
    for log2 in (20, 24):
        speed(1 << log2, args.rounds, rng)
    memory()
    if not args.skip_accuracy:
        print("\naccuracy against float32 Adam:")
        for lr in (1e-2, 1e-3):
            quadratic(lr, rng)
        digits(range(5))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
