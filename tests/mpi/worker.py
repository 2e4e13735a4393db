"""Run by tests/test_distributed.py on every rank: ``mpiexec -n N python -m mpi4py
tests/mpi/worker.py SCENARIO SEED OUT [FOLDER]``. Each check writes one line ``CHECK <rank>
<name> ok`` or ``CHECK <rank> <name> FAIL <why>`` to ``OUT/rank<rank>.txt`` (one file per rank:
lines that ranks print to a shared stdout can interleave mid-line); the test reads every file.

Single-process references run on every rank, on the same seeded data."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from mpi4py import MPI

import fastadam
from fastadam.distributed import ShardedAdagrad, ShardedAdam, ShardedAdamW, ShardedSGD
from fastadam.distributed.layout import BLOCK

comm = MPI.COMM_WORLD
RANK, WORLD = comm.rank, comm.size
# Odd sizes, so that parameters straddle shard and bucket boundaries at every world size.
SHAPES = [(37, 29), (1000,), (3, 5, 7), (4099,), (1,), (0,), (64, 65)]


_out = sys.stdout


def emit(line: str) -> None:
    _out.write(line + "\n")
    _out.flush()


def report(name: str, ok: bool, why: str = "") -> None:
    emit(f"CHECK {RANK} {name} {'ok' if ok else 'FAIL ' + why}")


def make_params(seed: int, dtypes) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, 1])
    return [rng.standard_normal(s).astype(dtypes[i % len(dtypes)]) for i, s in enumerate(SHAPES)]


def grads_for(seed: int, t: int, params, rank: int | None = None) -> list[np.ndarray]:
    """The gradients of step t: the same on every rank, or rank's own when rank is given."""
    rng = np.random.default_rng([seed, 2, t, 1000 if rank is None else rank])
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def bitwise(a: list[np.ndarray], b: list[np.ndarray]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            bad = int(np.sum(x != y)) if x.shape == y.shape else -1
            return f"array {i} differs ({bad} elements)"
    return ""


def state_bitwise(consolidated, reference) -> str:
    ref = reference.state_dict()
    if consolidated["state"].keys() != ref["state"].keys():
        return f"state keys {sorted(consolidated['state'])} vs {sorted(ref['state'])}"
    for k, s in ref["state"].items():
        c = consolidated["state"][k]
        if c.keys() != s.keys():
            return f"state[{k}] keys {sorted(c)} vs {sorted(s)}"
        for name, value in s.items():
            if np.asarray(value).tobytes() != np.asarray(c[name]).tobytes():
                return f"state[{k}][{name!r}] differs"
    return ""


CASES = {
    "Adam": (ShardedAdam, fastadam.Adam, {"lr": 1e-2}),
    "Adam-l2": (ShardedAdam, fastadam.Adam, {"lr": 1e-2, "weight_decay": 0.1}),
    "AdamW": (ShardedAdamW, fastadam.AdamW, {"lr": 1e-2}),
}


def equality(seed: int) -> None:
    """Sharded steps on pre-averaged gradients against single-process steps: bitwise."""
    steps = 6
    for label, (sharded, local, kw) in CASES.items():
        for amsgrad in (False, True):
            for dtypes in ((np.float32,), (np.float64,), (np.float32, np.float64)):
                for bucket in (None, 4096):
                    dt = "+".join(np.dtype(d).name for d in dtypes)
                    name = f"{label}-amsgrad{int(amsgrad)}-{dt}-bucket{bucket}"
                    params = make_params(seed, dtypes)
                    ref = [p.copy() for p in params]
                    opt = sharded(params, comm, amsgrad=amsgrad, bucket_bytes=bucket, **kw)
                    ref_opt = local(ref, amsgrad=amsgrad, **kw)
                    for t in range(steps):
                        g = grads_for(seed, t, params)
                        opt.step(g, averaged=True)
                        ref_opt.step(g)
                    why = bitwise(params, ref)
                    full = opt.consolidated_state_dict(root=0)
                    if not why and RANK == 0:
                        why = state_bitwise(full, ref_opt)
                    report(name, not why, why)

    # Parameter groups with their own hyper-parameters, None gradients, an lr schedule, amsgrad
    # switched on midway: the bookkeeping of the general path.
    params = make_params(seed, (np.float32, np.float64))
    ref = [p.copy() for p in params]

    def groups(ps):
        return [
            {"params": ps[:3], "lr": 3e-2, "weight_decay": 0.05},
            {"params": ps[3:], "betas": (0.8, 0.99), "maximize": True},
        ]

    opt = ShardedAdam(groups(params), comm, lr=1e-2, bucket_bytes=2048)
    ref_opt = fastadam.Adam(groups(ref), lr=1e-2)
    for t in range(8):
        g = grads_for(seed, t, params)
        if t % 3 == 1:
            g[1] = g[4] = None
        if t == 4:
            for o in (opt, ref_opt):
                o.param_groups[0]["lr"] = 1e-3
                o.param_groups[1]["amsgrad"] = True
        opt.step(g, averaged=True)
        ref_opt.step(g)
    why = bitwise(params, ref)
    full = opt.consolidated_state_dict(root=0)
    if not why and RANK == 0:
        why = state_bitwise(full, ref_opt)
    report("Adam-groups-None-schedule", not why, why)

    # The other optimizers shard through the same machinery.
    for label, sharded, local, kw in [
        ("SGD-nesterov", ShardedSGD, fastadam.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True}),
        (
            "Adagrad",
            ShardedAdagrad,
            fastadam.Adagrad,
            {"lr": 1e-2, "initial_accumulator_value": 0.1},
        ),
    ]:
        params = make_params(seed, (np.float32, np.float64))
        ref = [p.copy() for p in params]
        opt = sharded(params, comm, bucket_bytes=4096, **kw)
        ref_opt = local(ref, **kw)
        for t in range(5):
            g = grads_for(seed, t, params)
            opt.step(g, averaged=True)
            ref_opt.step(g)
        why = bitwise(params, ref)
        full = opt.consolidated_state_dict(root=0)
        if not why and RANK == 0:
            why = state_bitwise(full, ref_opt)
        report(label, not why, why)


def reduction(seed: int) -> None:
    """Each rank's own gradients, reduce-scattered and averaged by the step. With 2 ranks the
    sum has one order (a + b == b + a), so the result is bitwise that of the single-process step
    on (g0 + g1) / 2; with more, the summation order is MPI's: close, and equal on every rank."""
    for bucket in (None, 4096):
        params = make_params(seed, (np.float32, np.float64))
        ref = [p.copy() for p in params]
        opt = ShardedAdamW(params, comm, lr=1e-2, amsgrad=True, bucket_bytes=bucket)
        ref_opt = fastadam.AdamW(ref, lr=1e-2, amsgrad=True)
        views = opt.grad_views
        for t in range(5):
            mine = grads_for(seed, t, params, RANK)
            if t % 2:  # the copy-free route: gradients written into the flat buffer's views
                for v, g in zip(views, mine):
                    v[...] = g
                mine = views
            opt.step(mine)
            every = [grads_for(seed, t, params, r) for r in range(WORLD)]
            ref_opt.step(
                [sum(gs[1:], gs[0]) / p.dtype.type(WORLD) for gs in zip(*every) for p in [gs[0]]]
            )
        name = f"reduce-bucket{bucket}"
        if WORLD <= 2:
            why = bitwise(params, ref)
        else:
            why = (
                ""
                if all(np.allclose(p, r, rtol=1e-5, atol=1e-6) for p, r in zip(params, ref))
                else "not close"
            )
        mine = np.concatenate([p.reshape(-1).view(np.uint8) for p in params])
        first = comm.bcast(mine if RANK == 0 else None, root=0)
        if not why and first.tobytes() != mine.tobytes():
            why = "ranks hold different parameters"
        report(name, not why, why)


def memory(seed: int) -> None:
    """State per rank: ceil(P / N) elements rounded up to a block, measured from the arrays."""
    for shapes, dtype in [
        ([(2**20 + 3,)], np.float32),
        ([(1000, 999), (12345,), (7,)], np.float64),
    ]:
        params = [np.zeros(s, dtype) for s in shapes]
        opt = ShardedAdam(params, comm, amsgrad=True)
        opt.step([np.ones_like(p) for p in params], averaged=True)
        total = sum(p.size for p in params)
        arrays = [a for d in opt._state.values() for a in d.values()]
        per_array = {a.size for a in arrays}
        bound = math.ceil(total / WORLD) + BLOCK
        m = opt.memory()
        ok = (
            len(arrays) == 3
            and len(per_array) == 1
            and per_array.pop() <= bound
            and m["state"] == sum(a.nbytes for a in arrays)
        )
        elements = arrays[0].size
        emit(
            f"MEMORY {RANK} P={total} N={WORLD} state_elements_per_array={elements} "
            f"ceil(P/N)={math.ceil(total / WORLD)} extra={elements - math.ceil(total / WORLD)} "
            f"state_bytes={m['state']}"
        )
        report(f"memory-{total}", ok, f"{elements} > {bound}")


def expect_failure(name: str, call, check_unchanged) -> None:
    try:
        call()
    except (TypeError, ValueError) as exc:
        messages = comm.allgather(f"{type(exc).__name__}: {exc}")
        same = all(m == messages[0] for m in messages)
        why = "" if same else f"different errors: {messages}"
        if not why:
            why = check_unchanged()
        emit(f"ERROR {RANK} {name} {messages[0]}")
        report(name, not why, why)
    else:
        comm.allgather(None)
        report(name, False, "no error")


def failures(seed: int) -> None:
    """A bad argument on one rank: every rank raises the same error, nothing is written."""
    params = make_params(seed, (np.float32,))
    opt = ShardedAdam(params, comm, lr=1e-2, amsgrad=True, bucket_bytes=4096)
    opt.step(grads_for(seed, 0, params))
    saved_params = [p.copy() for p in params]
    saved_state = opt.state_dict()

    def unchanged() -> str:
        why = bitwise(params, saved_params)
        now = opt.state_dict()
        for dt, arrays in saved_state["shards"].items():
            for name, a in arrays.items():
                if a.tobytes() != now["shards"][dt][name].tobytes():
                    why = why or f"state {name} changed"
        return why or ("" if now["steps"] == saved_state["steps"] else "steps changed")

    last = WORLD - 1
    g = grads_for(seed, 1, params)
    bad = list(g)
    if RANK == last:
        bad[3] = np.zeros((4098,), np.float32)
    expect_failure("bad-shape-on-one-rank", lambda: opt.step(bad), unchanged)

    bad = list(g)
    if RANK == last:
        bad[0] = g[0].astype(np.float64)
    expect_failure("bad-dtype-on-one-rank", lambda: opt.step(bad), unchanged)

    if RANK == last:
        opt.param_groups[0]["lr"] = 0.5
    expect_failure("lr-differs", lambda: opt.step(g), unchanged)
    opt.param_groups[0]["lr"] = 1e-2

    if RANK == last:
        opt.param_groups[0]["betas"] = (0.9, 1.5)
    expect_failure("bad-beta-on-one-rank", lambda: opt.step(g), unchanged)
    opt.param_groups[0]["betas"] = (0.9, 0.999)

    bad = list(g)
    if RANK == last:
        bad[2] = None
    expect_failure("None-differs", lambda: opt.step(bad), unchanged)
    expect_failure("averaged-differs", lambda: opt.step(g, averaged=RANK == last), unchanged)
    expect_failure("wrong-count", lambda: opt.step(g[:-1] if RANK == 0 else g), unchanged)
    expect_failure("not-a-list", lambda: opt.step(iter(g) if RANK == 0 else g), unchanged)
    expect_failure(
        "load-other-rank",
        lambda: (
            opt.load_state_dict(comm.bcast(saved_state, root=last))
            if WORLD > 1
            else opt.load_state_dict(dict(saved_state, rank=1))
        ),
        unchanged,
    )
    bad = list(g)
    bad[4] = params[4]  # the parameter itself on every rank; one rank owns its one element
    expect_failure("grad-is-its-param-averaged", lambda: opt.step(bad, averaged=True), unchanged)
    expect_failure("grad-is-its-param", lambda: opt.step(bad), unchanged)
    crossed = list(g)
    crossed[4] = opt.grad_views[1][:1]  # inside the gradient buffer, at another's place
    expect_failure("grad-in-another-view", lambda: opt.step(crossed), unchanged)
    expect_failure("root-differs", lambda: opt.consolidated_state_dict(root=RANK), unchanged)
    expect_failure("root-not-a-rank", lambda: opt.consolidated_state_dict(root=WORLD), unchanged)
    folder = os.path.join(sys.argv[3], "checkpoint")
    opt.save(folder)
    elsewhere = folder if RANK == 0 else f"{folder}-{RANK}"
    expect_failure("save-folders-differ", lambda: opt.save(elsewhere), unchanged)
    opt.load(folder)  # the previous checkpoint is whole
    why = unchanged()
    report("previous-checkpoint-whole", not why, why)
    try:
        opt.load(os.path.join(folder, "missing"))
    except FileNotFoundError:  # an OSError a caller can catch, on every rank
        why = unchanged()
        report("load-missing-folder", not why, why)
    else:
        report("load-missing-folder", False, "no error")
    shard = os.path.join(folder, min(f for f in os.listdir(folder) if f.endswith(".npz")))
    comm.barrier()
    if RANK == 0:
        with open(shard, "r+b") as f:
            f.truncate(100)
    comm.barrier()
    expect_failure("truncated-shard", lambda: opt.load(folder), unchanged)
    # A consolidated dict whose groups list the parameter indices in another order: matched
    # by place in the groups, as fastadam.Adam matches them.
    full = comm.bcast(opt.consolidated_state_dict(), root=0)
    count = len(params)
    renamed = {
        "param_groups": [
            dict(full["param_groups"][0], params=[count - 1 - k for k in range(count)])
        ],
        "state": {count - 1 - int(k): v for k, v in full["state"].items()},
    }
    opt.load_state_dict(renamed)
    why = unchanged()
    report("consolidated-matched-by-place", not why, why)
    # the optimizer still works, and agrees with a reference that took the same two steps
    ref = [p.copy() for p in make_params(seed, (np.float32,))]
    ref_opt = fastadam.Adam(ref, lr=1e-2, amsgrad=True)
    ref_opt.step(grads_for(seed, 0, params))
    opt.step(g, averaged=True)
    ref_opt.step(g)
    # the first step reduced identical gradients: (g + g) / 2 == g only holds exactly for 2 ranks
    why = bitwise(params, ref) if WORLD <= 2 else ""
    report("works-after-refusals", not why, why)
    # an lr held in a 0-d array and changed in place is the lr of the next step
    lr = np.array(1e-2)
    opt.param_groups[0]["lr"] = lr
    opt.step(g)
    lr[...] = 0.0
    before = [p.copy() for p in params]
    opt.step(g)
    why = bitwise(params, before)
    report("lr-array-changed-in-place", not why, why)

    # Construction: a parameter of another shape on one rank
    shapes = [p.copy() for p in make_params(seed, (np.float32,))]
    if RANK == last:
        shapes[4] = np.zeros(2, np.float32)
    expect_failure("shape-differs-at-construction", lambda: ShardedAdam(shapes, comm), lambda: "")
    mine = [p.copy() for p in make_params(seed, (np.float32,))]
    expect_failure(
        "lr-differs-at-construction",
        lambda: ShardedAdam(mine, comm, lr=1e-3 if RANK == 0 else 2e-3),
        lambda: "",
    )
    bad_param = [p.copy() for p in make_params(seed, (np.float32,))]
    if RANK == last:
        bad_param[0] = bad_param[0][:, ::2]
    expect_failure("bad-param-on-one-rank", lambda: ShardedAdam(bad_param, comm), lambda: "")
    half = [p.astype(np.float16) for p in make_params(seed, (np.float32,))]
    expect_failure("float16-params", lambda: ShardedAdam(half, comm), lambda: "")


# -- re-sharding ------------------------------------------------------------------------------

RESHARD_BEFORE, RESHARD_AFTER = 10, 20


def reshard_groups(ps):
    return [
        {"params": ps[:4], "lr": 2e-2, "weight_decay": 0.01},
        {"params": ps[4:], "amsgrad": True},
    ]


def reshard_reference(seed: int, steps: int):
    params = make_params(seed, (np.float32, np.float64))
    opt = fastadam.Adam(reshard_groups(params), lr=1e-2)
    for t in range(steps):
        opt.step(grads_for(seed, t, params))
    return params, opt


def save(seed: int, folder: str) -> None:
    params = make_params(seed, (np.float32, np.float64))
    opt = ShardedAdam(reshard_groups(params), comm, lr=1e-2, bucket_bytes=4096)
    for t in range(RESHARD_BEFORE):
        opt.step(grads_for(seed, t, params), averaged=True)
    opt.save(folder)
    opt.save(folder)  # a second save replaces the first and removes its files
    if RANK == 0:
        np.savez(os.path.join(folder, "params.npz"), *params)
    comm.Barrier()
    files = sorted(f for f in os.listdir(folder) if f.startswith("shard-"))
    report("save-files", len(files) == WORLD, f"{files}")
    report("save-no-temporaries", not any(f.endswith(".tmp") for f in os.listdir(folder)))


def load(seed: int, folder: str) -> None:
    with np.load(os.path.join(folder, "params.npz")) as saved:
        params = [saved[f"arr_{i}"].copy() for i in range(len(SHAPES))]
    opt = ShardedAdam(reshard_groups(params), comm, lr=1e-2, bucket_bytes=4096)
    opt.load(folder)
    ref, ref_opt = reshard_reference(seed, RESHARD_BEFORE)
    full = opt.consolidated_state_dict(root=0)
    why = bitwise(params, ref) or (state_bitwise(full, ref_opt) if RANK == 0 else "")
    report("loaded-state", not why, why)
    for t in range(RESHARD_BEFORE, RESHARD_BEFORE + RESHARD_AFTER):
        opt.step(grads_for(seed, t, params), averaged=True)
    ref, ref_opt = reshard_reference(seed, RESHARD_BEFORE + RESHARD_AFTER)
    full = opt.consolidated_state_dict(root=0)
    why = bitwise(params, ref) or (state_bitwise(full, ref_opt) if RANK == 0 else "")
    report(f"resharded-{RESHARD_AFTER}-steps", not why, why)

    # the consolidated dict loads into a fresh sharded optimizer at this world size, too
    full = comm.bcast(full, root=0)
    again = ShardedAdam(reshard_groups([p.copy() for p in params]), comm, lr=1e-2)
    again.load_state_dict(full)
    mine, theirs = again.state_dict(), opt.state_dict()
    why = (
        ""
        if all(
            mine["shards"][dt][n].tobytes() == theirs["shards"][dt][n].tobytes()
            for dt in theirs["shards"]
            for n in theirs["shards"][dt]
        )
        and mine["steps"] == theirs["steps"]
        else "state differs"
    )
    report("consolidated-round-trip", not why, why)


def main() -> None:
    global _out
    scenario, seed = sys.argv[1], int(sys.argv[2])
    _out = open(os.path.join(sys.argv[3], f"rank{RANK}.txt"), "w", encoding="utf-8")  # noqa: SIM115
    fastadam.set_num_threads(1)  # the ranks share the machine's cores
    if scenario == "equality":
        equality(seed)
        reduction(seed)
        memory(seed)
    elif scenario == "failures":
        failures(seed)
    elif scenario == "save":
        save(seed, sys.argv[4])
    elif scenario == "load":
        load(seed, sys.argv[4])
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    emit(f"DONE {RANK}")
    _out.close()


if __name__ == "__main__":
    main()
