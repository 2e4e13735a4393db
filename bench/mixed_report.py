"""Mixed precision and the fused gradient pre-pass against this machine's bandwidth and torch.

    python bench/mixed_report.py [--log2 24] [--rounds 7] [--baseline DIR] [--json OUT]

Every contestant runs once per round, rounds interleaved in rotated order, and the median is
reported (on a shared machine the spread is printed too). Rows:

- bfloat16 parameters + float32 state (22 bytes per element): fastadam's Adam step, the
  bandwidth probe moving the same bytes (``_core.bandwidth_probe`` on bfloat16 arrays), and
  ``torch.optim.Adam(fused=True)`` on bfloat16 parameters (torch keeps bfloat16 state);
- bfloat16 + float32 master copy (30 bytes per element, counting the write-allocate read of the
  parameter's line): the step with ``master=`` against the probe with ``masters=``;
- the bfloat16 step with ``max_grad_norm`` and ``skip_nonfinite`` (one extra read of the
  bfloat16 gradients, 2 bytes per element on 22);
- float32 (28 bytes): the plain step, the step with ``max_grad_norm`` and ``skip_nonfinite``
  (one extra read of the gradients, 4 bytes on 28), and torch's ``GradScaler.unscale_`` +
  ``clip_grad_norm_`` + fused step on the same data (scale 1, so the gradients stay the same
  from call to call);
- with ``--baseline DIR`` (a fastadam installed with ``pip install --target DIR`` from an
  earlier commit): the float32 step of that build and of this one, each timed in its own
  subprocess, alternating round by round.

Each library at 1 and 2 threads; the verdicts use each library's best.

fastadam's state arrays (and the probes' arrays in their place) come from
``fastadam._core.zeros_state``, as ``fastadam.Adam`` allocates its state: huge pages advised,
successive arrays at different offsets modulo 4 KiB. NumPy's large arrays all sit at one offset
modulo 4 KiB (2**24 elements) or 16 bytes apart (2**20), where loads wait on the 4 KiB alias
checks against the other streams' recent stores (in one process, interleaved, on such arrays
the bfloat16 step at 2**24 took 1.2x the time, the float32 step at 2**20 1.2-2.0x). Parameters
and gradients are NumPy's, as a user's would be; torch's tensors come from torch's allocator.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import fastadam

LR = 1e-3


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log2", type=int, default=24, help="elements = 2**LOG2 (default 24)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline", help="directory holding an earlier fastadam build")
    ap.add_argument("--json", help="write the medians here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def timed(call, repeat: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(repeat):
        call()
    return (time.perf_counter_ns() - t0) * 1e-9 / repeat


def child(args) -> int:
    """The float32 step of whichever fastadam sys.path finds first: one median to stdout."""
    n = 2**args.log2
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    m = np.zeros(n, np.float32)
    v = np.zeros(n, np.float32)
    times = {}
    for threads in (1, 2):
        fastadam.set_num_threads(threads)
        step = lambda: fastadam.adam_step(p, g, m, v, step=3, lr=LR)
        step()
        times[threads] = statistics.median(timed(step, 3) for _ in range(3))
    print(json.dumps({"file": fastadam.__file__, "seconds": times}))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    from fastadam.dtypes import BFLOAT16  # (not in a baseline build, which only the child uses)

    if BFLOAT16 is None:
        print("needs ml_dtypes for bfloat16")
        return 1
    try:
        import torch
    except ImportError:
        torch = None
    n = 2**args.log2
    rng = np.random.default_rng(1)

    def uniform(dtype):
        return rng.uniform(-1, 1, n).astype(dtype)

    def state(like=None):  # float32 state as fastadam.Adam allocates it (module docstring)
        out = fastadam._core.zeros_state((n,), np.dtype(np.float32))
        if like is not None:
            out[:] = like
        return out

    # bfloat16 parameters
    p16, g16 = uniform(BFLOAT16), uniform(BFLOAT16)
    m16, v16 = state(), state()
    q16, qm, qv = uniform(BFLOAT16), state(), state()
    master = state(p16)
    pm, mm, vm = p16.copy(), state(), state()
    pb, mb, vb = p16.copy(), state(), state()
    qmaster, qpm = state(master), p16.copy()
    # float32
    p32, g32 = uniform(np.float32), uniform(np.float32)
    m32, v32 = state(), state()
    pc, mc, vc = p32.copy(), state(), state()

    rows = []  # (group, name, library, threads, call, bytes_per_element)

    def add(group, name, library, call, bpe, threads=(1, 2)):
        for t in threads:
            rows.append(
                {
                    "group": group,
                    "name": name,
                    "library": library,
                    "threads": t,
                    "call": call,
                    "bpe": bpe,
                    "seconds": [],
                }
            )

    add(
        "bf16",
        "fastadam bf16 Adam",
        "fastadam",
        lambda: fastadam.adam_step(p16, g16, m16, v16, step=3, lr=LR),
        22,
    )
    add(
        "bf16",
        "probe 22 B/el",
        "fastadam",
        lambda: fastadam._core.bandwidth_probe([q16], [g16], [qm], [qv]),
        22,
    )
    add(
        "bf16",
        "fastadam bf16 clip+skip",
        "fastadam",
        lambda: fastadam.adam_step(
            pb, g16, mb, vb, step=3, lr=LR, max_grad_norm=1e9, skip_nonfinite=True
        ),
        22,
    )
    add(
        "master",
        "fastadam bf16 + master",
        "fastadam",
        lambda: fastadam.adam_step(pm, g16, mm, vm, step=3, lr=LR, master=master),
        30,
    )
    add(
        "master",
        "probe 30 B/el",
        "fastadam",
        lambda: fastadam._core.bandwidth_probe([qpm], [g16], [qm], [qv], [qmaster]),
        30,
    )
    add(
        "f32",
        "fastadam f32 plain",
        "fastadam",
        lambda: fastadam.adam_step(p32, g32, m32, v32, step=3, lr=LR),
        28,
    )
    add(
        "f32",
        "fastadam f32 clip+skip",
        "fastadam",
        lambda: fastadam.adam_step(
            pc, g32, mc, vc, step=3, lr=LR, max_grad_norm=1e9, skip_nonfinite=True
        ),
        28,
    )
    if torch is not None:
        tp16 = torch.from_numpy(uniform(np.float32)).to(torch.bfloat16).requires_grad_()
        tp16.grad = torch.from_numpy(uniform(np.float32)).to(torch.bfloat16)
        topt16 = torch.optim.Adam([tp16], lr=LR, fused=True)
        add("bf16", "torch fused bf16 (bf16 state)", "torch", topt16.step, 12)
        tp = torch.from_numpy(uniform(np.float32)).requires_grad_()
        tp.grad = torch.from_numpy(uniform(np.float32))
        topt = torch.optim.Adam([tp], lr=LR, fused=True)
        add("f32", "torch fused f32", "torch", topt.step, 28)
        tq = torch.from_numpy(uniform(np.float32)).requires_grad_()
        tq.grad = torch.from_numpy(uniform(np.float32))
        topt2 = torch.optim.Adam([tq], lr=LR, fused=True)
        scaler = torch.amp.GradScaler("cpu", init_scale=1.0, growth_interval=10**9)
        scaler.scale(torch.ones(()))  # as a loss would be: creates the scaler's state

        def torch_amp_step():
            scaler.unscale_(topt2)
            torch.nn.utils.clip_grad_norm_([tq], 1e9)
            scaler.step(topt2)
            scaler.update()

        add("f32", "torch unscale_+clip+fused", "torch", torch_amp_step, 28)

    def use(row):
        if row["library"] == "fastadam":
            fastadam.set_num_threads(row["threads"])
        else:
            torch.set_num_threads(row["threads"])

    for row in rows:  # calibrate and warm
        use(row)
        row["call"]()
        once = timed(row["call"], 1)
        row["repeat"] = max(1, min(50, round(0.15 / max(once, 1e-9))))
    baseline = []
    gc.disable()
    try:
        for r in range(args.rounds):
            k = r % len(rows)
            for row in rows[k:] + rows[:k]:
                use(row)
                row["seconds"].append(timed(row["call"], row["repeat"]))
                time.sleep(0.002)  # let idle spinning threads of the previous contestant stop
            if args.baseline:
                for path in [args.baseline, None] if r % 2 == 0 else [None, args.baseline]:
                    env = dict(os.environ)
                    if path:
                        env["PYTHONPATH"] = path
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", "1", "--log2", str(args.log2)],
                        capture_output=True,
                        text=True,
                        env=env,
                        check=True,
                    )
                    baseline.append((path is not None, json.loads(out.stdout)))
    finally:
        gc.enable()

    print(
        f"fastadam {fastadam.__version__}, ISA {fastadam.get_isa()}, n = 2**{args.log2}, "
        f"{args.rounds} interleaved rounds, median (min..max); torch "
        f"{torch.__version__ if torch else 'absent'}"
    )
    best = {}
    print(f"{'group':7} {'contestant':32} {'thr':>3} {'ms':>9} {'GB/s':>7}  spread")
    for row in rows:
        t = statistics.median(row["seconds"])
        row["median"] = t
        gbs = row["bpe"] * n / t / 1e9
        print(
            f"{row['group']:7} {row['name']:32} {row['threads']:>3} {t * 1e3:9.2f} {gbs:7.2f}  "
            f"{min(row['seconds']) * 1e3:.1f}..{max(row['seconds']) * 1e3:.1f} ms"
        )
        key = row["name"]
        best[key] = min(best.get(key, float("inf")), t)

    def ratio(a, b):
        return best[b] / best[a] if a in best and b in best else float("nan")

    print()
    print(
        f"bf16 step vs its probe (same 22 B/el):     "
        f"{ratio('fastadam bf16 Adam', 'probe 22 B/el') * 100:6.1f} % of probe speed"
    )
    if torch is not None:
        print(
            f"bf16 step vs torch fused on bf16:          "
            f"{ratio('fastadam bf16 Adam', 'torch fused bf16 (bf16 state)'):6.2f}x"
        )
    print(
        f"bf16 + master vs its probe (30 B/el):      "
        f"{ratio('fastadam bf16 + master', 'probe 30 B/el') * 100:6.1f} % of probe speed"
    )
    for dtype, plain in (("bf16", "fastadam bf16 Adam"), ("f32", "fastadam f32 plain")):
        label = f"{dtype} clip+skip step / plain step:"
        clipped = best[f"fastadam {dtype} clip+skip"]
        print(f"{label:43}{clipped / best[plain]:6.3f}x the time")
    if torch is not None:
        print(
            f"torch unscale_+clip+fused / our clip+skip: "
            f"{ratio('fastadam f32 clip+skip', 'torch unscale_+clip+fused'):6.2f}x"
        )
        print(
            f"torch unscale_+clip+fused / torch fused:   "
            f"{best['torch unscale_+clip+fused'] / best['torch fused f32']:6.2f}x the time"
        )
    if baseline:
        for threads in ("1", "2"):
            old = statistics.median(b["seconds"][threads] for is_old, b in baseline if is_old)
            new = statistics.median(b["seconds"][threads] for is_old, b in baseline if not is_old)
            print(
                f"f32 step {threads} thread(s): baseline {old * 1e3:.2f} ms, this build "
                f"{new * 1e3:.2f} ms ({new / old:.3f}x)"
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "call"} for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
