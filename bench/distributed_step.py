"""Where the time of a sharded Adam step goes: communication and update, at 2**22 and 2**24
float32 parameters, and what overlapping the allgather with the update gains.

    mpiexec -n 2 python -m mpi4py bench/distributed_step.py            # 2**22 and 2**24
    mpiexec -n 2 python -m mpi4py bench/distributed_step.py --sizes 20 --rounds 5

Every rank times, between barriers, each part of a step on its own (the agreement collective,
copying the gradients into the flat buffer, the reduce-scatter with the averaging, the native
update of the own slice, the blocking allgather, copying the other ranks' elements back), then
whole steps without buckets (one blocking allgather after the update) and with buckets of
several sizes (each bucket's Iallgatherv travelling while the next one is updated), all
interleaved over ``--rounds`` rounds; rank 0 prints medians (the slowest rank's time per
round). For scale, the single-process ``fastadam.Adam`` step of the same model runs on rank 0
while the others wait.

On one machine the ranks share its cores and memory bandwidth: 2 ranks on a 2-core machine show
where the time goes and that the pieces work, not how a cluster scales.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

import fastadam
from fastadam.distributed import ShardedAdam
from fastadam.distributed.agreement import agree

comm = MPI.COMM_WORLD
RANK, WORLD = comm.rank, comm.size
BUCKETS_MIB = (1, 4, 16)


def timed(fn) -> float:
    """Seconds of fn on the slowest rank, all ranks starting together."""
    comm.Barrier()
    t0 = time.perf_counter()
    fn()
    mine = time.perf_counter() - t0
    return comm.allreduce(mine, op=MPI.MAX)


def measure(n: int, rounds: int) -> dict:
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(n).astype(np.float32)]
    grads = [rng.standard_normal(n).astype(np.float32) * np.float32(1e-3)]
    blocking = ShardedAdam(params, comm, bucket_bytes=None)
    bucketed = {mib: ShardedAdam(params, comm, bucket_bytes=mib << 20) for mib in BUCKETS_MIB}
    for opt in (blocking, *bucketed.values()):
        opt.step(grads)  # state, gradient buffers, first touch of the pages

    # The parts of one step, taken apart with blocking's own buffers.
    dt = np.dtype(np.float32)
    layout = blocking._layouts[dt]
    begin, end = layout.window(RANK)
    flat_p = fastadam._core.zeros_state((layout.length,), dt)
    flat_g = fastadam._core.zeros_state((layout.length,), dt)
    shard_g = fastadam._core.zeros_state((layout.shard,), dt)
    own = params[0].reshape(-1)[begin : min(end, n)]
    m, v = (
        fastadam._core.zeros_state((layout.shard,), dt),
        fastadam._core.zeros_state((layout.shard,), dt),
    )
    k = own.size
    plan = blocking._plan(grads, False)
    others = [piece for b in blocking._buckets for piece in b.others]

    def reduce_scatter():
        comm.Reduce_scatter_block([flat_g, MPI.FLOAT], [shard_g, MPI.FLOAT], op=MPI.SUM)
        np.divide(shard_g, WORLD, out=shard_g)

    parts = {
        "agree (3-integer allreduce)": lambda: agree(comm, None, plan.desc, "bench"),
        "copy gradients in": lambda: np.copyto(flat_g[:n], grads[0]),
        "reduce-scatter + average": reduce_scatter,
        "update own slice (native)": lambda: fastadam.adam_step(
            own, shard_g[:k], m[:k], v[:k], step=1000
        ),
        "copy own slice out": lambda: np.copyto(flat_p[begin : begin + k], own),
        "allgather (blocking)": lambda: comm.Allgather(MPI.IN_PLACE, [flat_p, MPI.FLOAT]),
        "copy others' slices in": lambda: blocking._copy_out(others, flat_p),
    }
    steps = {"step, no buckets": lambda: blocking.step(grads)}
    for mib, opt in bucketed.items():
        steps[f"step, {mib} MiB buckets"] = lambda opt=opt: opt.step(grads)
    # Gradients written straight into the flat buffer: no copy before the reduce-scatter.
    viewed = ShardedAdam(params, comm)
    views = viewed.grad_views
    np.copyto(views[0], grads[0])
    viewed.step(views)
    steps["step, no buckets, grad_views"] = lambda: viewed.step(views)
    times: dict[str, list[float]] = {name: [] for name in (*parts, *steps)}
    for _ in range(rounds):
        for name, fn in (*parts.items(), *steps.items()):
            times[name].append(timed(fn))
    medians = {name: float(np.median(t)) for name, t in times.items()}

    single = None
    if RANK == 0:
        copy = [params[0].copy()]
        local = fastadam.Adam(copy)
        local.step(grads)
        t = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            local.step(grads)
            t.append(time.perf_counter() - t0)
        single = float(np.median(t))
    comm.Barrier()
    return {
        "elements": n,
        "shard": layout.shard,
        "parts": {name: medians[name] for name in parts},
        "steps": {name: medians[name] for name in steps},
        "single_process_step": single,
        "state_bytes_per_rank": blocking.memory()["state"],
    }


def report(r: dict) -> None:
    n = r["elements"]
    exp = int(np.log2(n))
    size = f"2**{exp}" if 2**exp == n else str(n)
    parts, steps = r["parts"], r["steps"]
    comm_names = [
        "agree (3-integer allreduce)",
        "reduce-scatter + average",
        "allgather (blocking)",
    ]
    copy_names = ["copy gradients in", "copy own slice out", "copy others' slices in"]
    communication = sum(parts[k] for k in comm_names)
    copies = sum(parts[k] for k in copy_names)
    update = parts["update own slice (native)"]
    print(
        f"\n{size} float32 parameters on {WORLD} ranks (shard {r['shard']} elements, "
        f"state {r['state_bytes_per_rank'] / 2**20:.1f} MiB per rank)"
    )
    for name, seconds in parts.items():
        print(f"  {name:30s} {seconds * 1e3:9.3f} ms")
    total = communication + copies + update
    print(
        f"  {'sum of the parts':30s} {total * 1e3:9.3f} ms: communication "
        f"{communication * 1e3:.3f} ms ({communication / total:.0%}), update "
        f"{update * 1e3:.3f} ms ({update / total:.0%}), copies {copies * 1e3:.3f} ms "
        f"({copies / total:.0%})"
    )
    plain = steps["step, no buckets"]
    for name, seconds in steps.items():
        gain = "" if name == "step, no buckets" else f"  {plain / seconds:.2f}x the step without"
        print(f"  {name:30s} {seconds * 1e3:9.3f} ms{gain}")
    if r["single_process_step"] is not None:
        print(f"  {'fastadam.Adam, 1 process':30s} {r['single_process_step'] * 1e3:9.3f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[22, 24], help="log2 sizes")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (9)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="fastadam threads per rank (default: the CPUs / ranks)",
    )
    parser.add_argument("--json", help="also write the figures to this file (rank 0)")
    args = parser.parse_args()
    threads = args.threads or max(1, fastadam._core.default_num_threads() // WORLD)
    fastadam.set_num_threads(threads)
    if RANK == 0:
        progress = os.environ.get("MPIR_CVAR_ASYNC_PROGRESS", "0")
        print(
            f"fastadam {fastadam.__version__} ({fastadam.get_isa()}), {WORLD} ranks, "
            f"{threads} fastadam threads per rank, {os.cpu_count()} CPUs, "
            f"{MPI.Get_library_version().splitlines()[0].strip()}, async progress "
            f"{progress}; medians of {args.rounds} rounds, slowest rank"
        )
    results = [measure(2**s, args.rounds) for s in args.sizes]
    if RANK == 0:
        for r in results:
            report(r)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            with open(args.json, "w") as f:
                json.dump({"world": WORLD, "threads": threads, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
