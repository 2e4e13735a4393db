"""How close fastadam's Adam step comes to this machine's memory bandwidth, next to torch.

    python bench/bandwidth_report.py [--quick] [--json OUT.json] [--rounds N] [--torch-thp]

For float32 sizes 2**10 .. 2**26 and for a small transformer's 200 parameter tensors (beside
one flat tensor of the same total), one process times, interleaved round-robin so that machine
noise falls on all alike (median of the rounds):

- fastadam's functional step (``adam_step`` / ``adam_step_multi``) and ``fastadam.Adam.step``,
  each on 1 thread and on all;
- ``fastadam.reference`` (NumPy: one thread);
- ``fastadam._core.bandwidth_probe`` on 1 thread and on all: Adam's memory traffic (read p, g,
  m, v; write p, m, v) without its math, split across threads the same way: the ceiling;
- ``torch.optim.Adam`` with ``fused=True`` on 1 thread and on all, and with its default
  implementation (on CPU a per-tensor for-loop: torch uses foreach kernels only on CUDA-like
  devices) on all, when torch is installed.

Contestants of one library, case and thread count are timed in adjacent slots of each round, so
the probe's time and a step's time are paired round by round: "% of probe" is the median over
the rounds of probe time / step time. torch and fastadam are compared each at its best thread
count for the size (the faster median of 1 and all threads; the table says which): on a shared
machine torch's multi-threaded step can be slower than its one-thread step by orders of
magnitude for small tensors.

A full run ends with the mixed-precision rows of ``bench/mixed_report.py`` at 2**24 (bfloat16
parameters with float32 state, 22 bytes per element; with a float32 master copy, 30; each
beside the probe moving the same bytes, and torch's fused Adam on bfloat16 parameters);
``--no-mixed`` leaves them out.

It prints one row per contestant (ns/element, GB/s at 28 bytes/element, % of the probe at the
same size and thread count, speedups over the reference and over torch fused at its best thread
count), then one line per case with each side at its best thread count, and writes everything
as JSON (default bench/results/bandwidth.json). bench/plot_report.py draws it.

fastadam's arrays come from ``fastadam._core.zeros_state`` (huge pages advised, as
fastadam.Adam allocates its state); torch's tensors come from torch's own allocator, which
advises huge pages only with THP_MEM_ALLOC_ENABLE=1 (``--torch-thp`` sets it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Callable

BYTES_PER_ELEMENT = 28  # float32: read p, g, m, v; write p, m, v
LR = 1e-3
STEP = 10  # every timed call uses the same step count: the work does not depend on it
RESULTS = Path(__file__).resolve().parent / "results"

FULL_SIZES = [10, 12, 14, 16, 17, 18, 20, 22, 24, 26]  # powers of two
QUICK_SIZES = [10, 17, 20, 24]


def transformer_shapes(
    d_model: int = 256, layers: int = 12, ff: int = 1024, vocab: int = 2000, context: int = 1024
) -> list[tuple[int, ...]]:
    """The parameter shapes of a small BERT-like encoder, in model order: 200 tensors."""
    d = d_model
    shapes: list[tuple[int, ...]] = [(vocab, d), (context, d), (2, d)]  # token, position, type
    shapes += [(d,), (d,)]  # embedding LayerNorm
    for _ in range(layers):
        for _ in range(4):  # q, k, v, o projections
            shapes += [(d, d), (d,)]
        shapes += [(d,), (d,)]  # LayerNorm after attention
        shapes += [(ff, d), (ff,), (d, ff), (d,)]  # feed-forward
        shapes += [(d,), (d,)]  # LayerNorm after feed-forward
    shapes += [(d,), (d,), (vocab,)]  # final LayerNorm; output bias (head tied to embedding)
    return shapes


@dataclasses.dataclass
class Contestant:
    case: str
    name: str
    threads: int  # threads of the library that runs it, set before each measurement
    call: Callable[[], None]
    library: str = "fastadam"  # whose thread count `threads` is: "fastadam" or "torch"
    seconds: list[float] = dataclasses.field(default_factory=list)
    rounds: list[int] = dataclasses.field(default_factory=list)  # round of each of `seconds`
    repeat: int = 1
    max_rounds: int = 0

    @property
    def unit(self) -> tuple[str, str, int]:
        """Contestants timed in adjacent slots of every round (the probe with the steps)."""
        return (self.case, self.library, self.threads)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.torch_thp:
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"  # read by torch's CPU allocator
    import numpy as np  # noqa: F401  (imported here so --help works without the package)

    import fastadam

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch is not installed: the torch columns are left out")
    threads = fastadam._core.default_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    rounds = args.rounds or (3 if args.quick else 7)
    target = 0.005 if args.quick else 0.02  # seconds of back-to-back calls per measurement

    shapes = transformer_shapes()
    total = sum(math.prod(s) for s in shapes)
    print(
        f"fastadam {fastadam.__version__}, ISA {fastadam.get_isa()}, all threads = {threads}; "
        f"torch {torch.__version__ if torch else 'absent'}; {rounds} rounds, median"
    )
    print(f"transformer case: {len(shapes)} tensors, {total:,} elements")
    info = machine_info(fastadam, torch, threads, rounds, args)
    started = time.perf_counter()
    print(f"\n{TABLE_HEADER}")

    phases: list[list[tuple[str, list[tuple[int, ...]]]]] = [
        [(f"n=2**{k}", [(2**k,)])] for k in (QUICK_SIZES if args.quick else FULL_SIZES)
    ]
    # The 200 tensors and the flat tensor are measured in one phase: the same noise for both.
    # "views": the same 200 shapes as views into one buffer per array kind, as a model with a
    # flat parameter buffer has them: it separates the cost of scattered memory from the cost
    # of many tensors in one call.
    many = [(f"{len(shapes)} tensors", shapes), (f"{len(shapes)} views", shapes)]
    phases.append((many[:1] if args.quick else many) + [("flat", [(total,)])])

    cases = []
    for phase in phases:
        contestants, keep = [], []
        for case, case_shapes in phase:
            views = case.endswith(" views")
            made, alive = make_contestants(
                case,
                case_shapes,
                threads,
                fastadam,
                None if views else torch,
                views=views,
                torch_default=not args.quick,
            )
            contestants += made
            keep.append(alive)
        measure(contestants, rounds, target, fastadam, torch)
        for case, case_shapes in phase:
            cases.append(summarize(case, case_shapes, [c for c in contestants if c.case == case]))
        print_case_rows(cases[-len(phase) :])
        del contestants, keep
        gc.collect()

    summary = best_summary(cases)
    print(SUMMARY_HEADER)
    for row in summary:
        print(summary_line(row))
    if not args.quick and not args.no_mixed:
        # The mixed-precision rows (bfloat16 + float32 state, + master copy, their probes, torch
        # fused on bfloat16, the gradient pre-pass): bench/mixed_report.py's measurement at
        # 2**24, interleaved among themselves, run here as the report's last phase.
        import mixed_report

        print("\nmixed precision at n=2**24 (bench/mixed_report.py):")
        # Written beside the report's own JSON.
        mixed_json = (Path(args.json).parent if args.json else RESULTS) / "mixed.json"
        mixed_report.main(["--log2", "24", "--rounds", str(rounds), "--json", str(mixed_json)])
        info["mixed_json"] = str(mixed_json)
    elapsed = time.perf_counter() - started
    print(f"\nmeasured in {elapsed:.0f} s")
    info["elapsed_s"] = round(elapsed, 1)
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    out = Path(args.json) if args.json else RESULTS / "bandwidth.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": info, "cases": cases, "summary": summary}
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="sizes 2**10, 17, 20, 24; no '200 views', no torch default; 3 rounds",
    )
    ap.add_argument("--json", metavar="PATH", help="where to write the JSON report")
    ap.add_argument("--rounds", type=int, help="measurement rounds (default 7, quick 3)")
    ap.add_argument("--no-torch", action="store_true", help="leave torch out")
    ap.add_argument(
        "--no-mixed",
        action="store_true",
        help="leave out the mixed-precision phase (bfloat16 rows, bench/mixed_report.py)",
    )
    ap.add_argument(
        "--torch-thp",
        action="store_true",
        help="THP_MEM_ALLOC_ENABLE=1: torch's allocator advises huge pages too",
    )
    return ap.parse_args(argv)


def machine_info(fastadam, torch, threads, rounds, args) -> dict:
    import numpy as np

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        thp = None
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "isa": fastadam.get_isa(),
        "available_isas": fastadam.available_isas(),
        "fastadam": fastadam.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__ if torch else None,
        "torch_thp_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE") == "1",
        "transparent_hugepage": thp,
        "python": platform.python_version(),
        "rounds": rounds,
        "statistic": "median seconds per call over the rounds",
        "bytes_per_element": BYTES_PER_ELEMENT,
        "quick": bool(args.quick),
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def make_contestants(case, shapes, threads, fastadam, torch, *, views=False, torch_default=True):
    """The contestants of one case, and the objects that must live while they run. With
    `views`, every array kind is one buffer and the tensors are views into it (each starting
    on a 64-byte line, as separate allocations do); fastadam.Adam and torch are left out."""
    import numpy as np

    rng = np.random.default_rng(zlib.crc32(case.encode()))
    zeros = fastadam._core.zeros_state
    f32 = np.dtype(np.float32)

    sizes = [math.prod(s) for s in shapes]
    starts = [0]
    for size in sizes:
        starts.append(starts[-1] + (size + 15) // 16 * 16)

    def arrays() -> list:
        if not views:
            return [zeros(s, f32) for s in shapes]
        buffer = zeros((starts[-1],), f32)
        return [buffer[a : a + n].reshape(s) for a, n, s in zip(starts, sizes, shapes)]

    def uniform(lo, hi) -> list:
        out = arrays()
        for a in out:
            rng.random(out=a, dtype=np.float32)
            a *= np.float32(hi - lo)
            a += np.float32(lo)
        return out

    p, g, m, v = uniform(-1.0, 1.0), uniform(-1.0, 1.0), uniform(-0.5, 0.5), uniform(0.01, 1.0)
    for mi, vi in zip(m, v):
        vi += mi * mi
    # The probe adds g to its own p, m, v (it would drive v negative in Adam's arrays).
    probe = [arrays() for _ in range(3)]
    single = len(shapes) == 1
    hyper = {"lr": LR}

    if single:

        def fastadam_step():
            fastadam.adam_step(p[0], g[0], m[0], v[0], step=STEP, **hyper)

        def reference_step():
            fastadam.reference.adam_step(p[0], g[0], m[0], v[0], step=STEP, **hyper)

    else:

        def fastadam_step():
            fastadam.adam_step_multi(p, g, m, v, steps=STEP, **hyper)

        def reference_step():
            fastadam.reference.adam_step_multi(p, g, m, v, steps=STEP, **hyper)

    def probe_step():
        fastadam._core.bandwidth_probe(probe[0], g, probe[1], probe[2])

    out = [
        Contestant(case, "reference", 1, reference_step),
        Contestant(case, "fastadam", 1, fastadam_step),
        Contestant(case, "probe", 1, probe_step),
    ]
    alive: list = [p, g, m, v, probe]
    if threads > 1:
        out += [
            Contestant(case, "fastadam", threads, fastadam_step),
            Contestant(case, "probe", threads, probe_step),
        ]
    if hasattr(fastadam, "Adam") and not views:
        opt = fastadam.Adam(p, **hyper)
        opt.step(g)  # builds the state (zeros_state arrays), as a training loop's first step
        for n_threads in sorted({1, threads}):
            out.append(Contestant(case, "Adam.step", n_threads, lambda: opt.step(g)))
        alive.append(opt)
    if torch is not None:
        tp = [torch.empty(s).uniform_(-1.0, 1.0) for s in shapes]
        for t in tp:
            t.grad = torch.empty_like(t).uniform_(-1.0, 1.0)
        # torch fused on one thread and on all: on a loaded machine, torch's OpenMP barrier
        # waits for a descheduled thread (milliseconds), and one thread can be far faster.
        runs = [("torch default", threads, {})] if torch_default else []
        runs.append(("torch fused", threads, {"fused": True}))
        if threads > 1:
            runs.append(("torch fused", 1, {"fused": True}))
        for label, n_threads, kwargs in runs:
            topt = torch.optim.Adam(tp, lr=LR, **kwargs)
            topt.step()  # allocates the state, as the first step of training does
            out.append(Contestant(case, label, n_threads, topt.step, library="torch"))
            alive.append(topt)
        alive.append(tp)
    return out, alive


SETTLE_SECONDS = 0.02


def measure(contestants: list[Contestant], rounds: int, target: float, fastadam, torch) -> None:
    """Round-robin: each round times every contestant once (`repeat` back-to-back calls, after
    one untimed call that warms caches and threads where a call is short), unit by unit (see
    Contestant.unit), in an order rotated from round to round."""

    def use_threads(c: Contestant) -> None:
        if c.library == "fastadam" and fastadam.get_num_threads() != c.threads:
            fastadam.set_num_threads(c.threads)
        elif c.library == "torch" and torch.get_num_threads() != c.threads:
            torch.set_num_threads(c.threads)

    warm = {}
    for c in contestants:  # calibrate: calls per measurement
        use_threads(c)
        t0 = time.perf_counter()
        c.call()
        once = time.perf_counter() - t0
        if once < 0.5:  # time a warm call, unless the cold one was already slow
            t0 = time.perf_counter()
            c.call()
            once = time.perf_counter() - t0
        c.repeat = max(1, min(20000, round(target / max(once, 1e-9))))
        # A warming call matters for cached data and a new thread pool; a call of several
        # milliseconds streams from memory anyway and outlasts a pool's start many times.
        warm[id(c)] = once < 0.005
        # A call of over half a second (torch's for-loop over 200 tensors on a busy machine)
        # is timed in at most 3 rounds, to keep the run's length bounded.
        c.max_rounds = min(3, rounds) if once > 0.5 else rounds
    units: dict[tuple, list[Contestant]] = {}
    for c in contestants:
        units.setdefault(c.unit, []).append(c)
    groups = list(units.values())
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            # Units in an order rotated each round, and the contestants of a unit likewise, so
            # that each contestant is timed next to its unit's probe in every round.
            order = []
            for unit in groups[r % len(groups) :] + groups[: r % len(groups)]:
                k = r % len(unit)
                order += unit[k:] + unit[:k]
            for c in order:
                if len(c.seconds) >= c.max_rounds:
                    continue
                use_threads(c)
                if warm[id(c)]:
                    c.call()
                t0 = time.perf_counter_ns()
                for _ in range(c.repeat):
                    c.call()
                c.seconds.append((time.perf_counter_ns() - t0) * 1e-9 / c.repeat)
                c.rounds.append(r)
                # Let the previous contestant's idle threads stop spinning before the next one
                # runs: torch's OpenMP workers spin for a while after every parallel region (and
                # fastadam's for 200 us), and on 2 cores a spinning thread takes the core the
                # next contestant's second thread needs.
                time.sleep(SETTLE_SECONDS)
    finally:
        if gc_was_enabled:
            gc.enable()


def summarize(case: str, shapes, contestants: list[Contestant]) -> dict:
    n = sum(math.prod(s) for s in shapes)
    rows = {}
    for c in contestants:
        t = statistics.median(c.seconds)
        rows[f"{c.name} {c.threads}t"] = {
            "name": c.name,
            "threads": c.threads,
            "seconds": t,
            "seconds_min": min(c.seconds),
            "seconds_rounds": c.seconds,
            "rounds": c.rounds,
            "calls_per_round": c.repeat,
            "ns_per_element": t / n * 1e9,
            "gb_per_s": BYTES_PER_ELEMENT * n / t / 1e9,
        }
    ref = rows.get("reference 1t")
    torch_best = best_of(rows, "torch fused")
    for row in rows.values():
        probe = rows.get(f"probe {row['threads']}t")
        row["pct_of_probe"] = paired_percent(probe, row) if probe else None
        row["speedup_vs_reference"] = ref["seconds"] / row["seconds"] if ref else None
        row["speedup_vs_torch_best"] = (
            rows[torch_best]["seconds"] / row["seconds"] if torch_best else None
        )
    best = {name: best_of(rows, name) for name in ("fastadam", "Adam.step", "torch fused")}
    return {"case": case, "elements": n, "tensors": len(shapes), "results": rows, "best": best}


def best_of(rows: dict, name: str) -> str | None:
    """The key of `name`'s fastest row (by median) over its thread counts, or None."""
    keys = [k for k, r in rows.items() if r["name"] == name]
    return min(keys, key=lambda k: rows[k]["seconds"]) if keys else None


def paired_percent(probe: dict, row: dict) -> float:
    """Median over the rounds of probe time / row time (both timed in one round, adjacent)."""
    probe_at = dict(zip(probe["rounds"], probe["seconds_rounds"]))
    ratios = [
        probe_at[r] / t for r, t in zip(row["rounds"], row["seconds_rounds"]) if r in probe_at
    ]
    return 100.0 * statistics.median(ratios)


TABLE_HEADER = (
    f"{'case':<13} {'contestant':<17} {'ns/elem':>8} {'GB/s':>7} {'%probe':>7} "
    f"{'x ref':>7} {'x torch':>8} {'per call':>10}"
)


def print_case_rows(cases: list[dict]) -> None:
    order = ["reference", "fastadam", "Adam.step", "probe", "torch default", "torch fused"]
    for case in cases:
        rows = sorted(
            case["results"].items(), key=lambda kv: (kv[1]["threads"], order.index(kv[1]["name"]))
        )
        for key, r in rows:
            print(
                f"{case['case']:<13} {key:<17} {r['ns_per_element']:8.3f} {r['gb_per_s']:7.1f} "
                f"{fmt(r['pct_of_probe'], '{:6.1f}%')} {fmt(r['speedup_vs_reference'], '{:6.1f}x')}"
                f" {fmt(r['speedup_vs_torch_best'], '{:7.2f}x')} {seconds(r['seconds']):>10}"
            )
        print()


SUMMARY_HEADER = (
    "Each side at its best thread count (median per call):\n"
    f"{'case':<13} {'NumPy ref':>10} {'fastadam':>15} {'Adam.step':>15} {'torch fused':>15} "
    f"{'x torch':>8} {'x ref':>7}"
)


def best_summary(cases: list[dict]) -> list[dict]:
    """Per case: the reference, and fastadam, Adam.step and torch fused each at its best
    thread count; fastadam's best against torch's best and against the reference."""
    out = []
    for case in cases:
        rows, best = case["results"], case["best"]
        entry = {"case": case["case"], "elements": case["elements"]}
        ref = rows.get("reference 1t")
        entry["reference"] = ref["seconds"] if ref else None
        for name in ("fastadam", "Adam.step", "torch fused"):
            key = best[name]
            entry[name] = (
                {"seconds": rows[key]["seconds"], "threads": rows[key]["threads"]} if key else None
            )
        fa, torch = entry["fastadam"], entry["torch fused"]
        entry["fastadam_vs_torch"] = torch["seconds"] / fa["seconds"] if fa and torch else None
        entry["fastadam_vs_reference"] = (
            entry["reference"] / fa["seconds"] if fa and entry["reference"] else None
        )
        out.append(entry)
    return out


def summary_line(row: dict) -> str:
    def best(entry: dict | None) -> str:
        if entry is None:
            return "-"
        return f"{seconds(entry['seconds'])} ({entry['threads']}t)"

    ref = seconds(row["reference"]) if row["reference"] else "-"
    return (
        f"{row['case']:<13} {ref:>10} {best(row['fastadam']):>15} {best(row['Adam.step']):>15} "
        f"{best(row['torch fused']):>15} {fmt(row['fastadam_vs_torch'], '{:7.2f}x')} "
        f"{fmt(row['fastadam_vs_reference'], '{:6.1f}x')}"
    )


def fmt(x, spec: str) -> str:
    width = len(spec.format(0.0))
    return spec.format(x) if x is not None else "-".rjust(width)


def seconds(t: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


if __name__ == "__main__":
    sys.exit(main())
