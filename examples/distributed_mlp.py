"""Data-parallel training of the digits MLP (``digits.py``) on N MPI ranks with
``fastadam.distributed.ShardedAdam``: every rank computes the gradients of its share of each
mini-batch, and the sharded step averages them, updates its slice of the parameters with its
slice of Adam's state, and gathers the parameters, so that every rank holds the same model.

    mpiexec -n 2 python -m mpi4py examples/distributed_mlp.py            # 30 epochs
    mpiexec -n 2 python -m mpi4py examples/distributed_mlp.py --quick --out /tmp   # 3 epochs
    python examples/distributed_mlp.py                                   # 1 rank

(``-m mpi4py`` makes an uncaught exception on one rank abort them all.) Rank 0 prints the test
accuracy, then each rank's optimizer state memory and the step's time, against a
single-process ``fastadam.Adam`` step of the same model timed in the same run (``--hidden``
makes the model larger), and writes those numbers to ``distributed_mlp.json`` in ``--out``.
Exits with status 1 unless the test accuracy reaches 95 % (80 % with
``--quick``) and every rank ends with bitwise the same parameters.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import digits  # the data, the network and its gradients

import fastadam
from fastadam.distributed import ShardedAdam

LR = 3e-3
TIMED_STEPS = 50


def median_step_seconds(step, grads, comm=None) -> float:
    times = []
    for _ in range(TIMED_STEPS):
        if comm is not None:
            comm.Barrier()  # every rank starts the step together
        t0 = time.perf_counter()
        step(grads)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="epochs (30)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 epochs")
    parser.add_argument("--hidden", type=int, default=digits.HIDDEN, help="hidden units (128)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="output dir")
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else args.epochs
    digits.HIDDEN = args.hidden

    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    with threadpool_limits(limits=1, user_api="blas"):
        return run(epochs, args.quick, args.out)


def run(epochs: int, quick: bool, out: pathlib.Path) -> int:
    comm = MPI.COMM_WORLD
    rank, world = comm.rank, comm.size
    # The ranks share this machine's cores: one fastadam thread each unless they have more.
    fastadam.set_num_threads(max(1, fastadam._core.default_num_threads() // world))
    x_train, y_train, x_test, y_test = digits.load_data()
    params = digits.initial_weights(x_train.shape[1], 10)  # the same on every rank
    n_params = sum(p.size for p in params)
    opt = ShardedAdam(params, comm, lr=LR)
    if rank == 0:
        print(
            f"fastadam {fastadam.__version__} ({fastadam.get_isa()}, {fastadam.get_num_threads()} "
            f"threads per rank): {world} ranks, MLP 64-{digits.HIDDEN}-10 ({n_params} parameters),"
            f" global batch {digits.BATCH}, {epochs} epochs"
        )

    order_rng = np.random.default_rng(digits.SEED + 1)  # the same batches on every rank
    began = time.perf_counter()
    for epoch in range(epochs):
        order = order_rng.permutation(len(y_train))
        for i in range(0, len(order), digits.BATCH):
            batch = order[i : i + digits.BATCH]
            mine = batch[rank::world]
            # The mean over my rows, weighted so that the average over ranks is the mean over
            # the whole batch (the shares differ by one row when the batch does not divide).
            _, grads = digits.loss_and_grads(params, x_train[mine], y_train[mine])
            scale = np.float32(len(mine) * world / len(batch))
            opt.step([g * scale for g in grads])
        if rank == 0 and (epoch == epochs - 1 or epoch % 10 == 0):
            accuracy = digits.accuracy(params, x_test, y_test)
            print(f"epoch {epoch + 1:3d}: test accuracy {accuracy:.4f}")
    train_seconds = time.perf_counter() - began
    accuracy = digits.accuracy(params, x_test, y_test)

    # Every rank must hold bitwise the same parameters.
    mine = np.concatenate([p.reshape(-1) for p in params])
    first = comm.bcast(mine if rank == 0 else None, root=0)
    identical = comm.allreduce(int(first.tobytes() == mine.tobytes()), op=MPI.MIN) == 1

    # Step time with fixed gradients, every rank stepping together; then the single-process
    # optimizer on rank 0 alone (the others wait), on the same model.
    grads = [np.full_like(p, 1e-3) for p in params]
    sharded = median_step_seconds(opt.step, grads, comm)
    memory = opt.memory()
    rows = comm.gather((rank, memory["state"], memory["state_elements"] // 2, sharded), root=0)
    single = None
    if rank == 0:
        copies = [p.copy() for p in params]
        local = fastadam.Adam(copies, lr=LR)
        single = median_step_seconds(local.step, grads)
        single_state = sum(
            a.nbytes
            for s in local.state.values()
            for a in s.values()
            if isinstance(a, np.ndarray) and a.ndim > 0
        )
    comm.Barrier()
    if rank != 0:
        return 0

    print(f"final test accuracy {accuracy:.4f} after {train_seconds:.1f} s of training")
    print(f"parameters identical on all {world} ranks: {'yes' if identical else 'NO'}")
    print(f"1 rank (fastadam.Adam): state {single_state} bytes, step {single * 1e6:.1f} us")
    for r, state_bytes, elements, seconds in rows:
        print(
            f"rank {r} of {world}: state {state_bytes} bytes ({elements} elements per state array"
            f", {state_bytes / single_state:.3f} of 1 rank), step {seconds * 1e6:.1f} us "
            f"({seconds / single:.2f}x the 1-rank step)"
        )
    summary = {
        "ranks": world,
        "epochs": epochs,
        "parameters": n_params,
        "final_test_accuracy": accuracy,
        "parameters_identical": identical,
        "single_process": {"state_bytes": single_state, "step_seconds": single},
        "ranks_state_and_step": [
            {"rank": r, "state_bytes": b, "elements_per_state_array": e, "step_seconds": t}
            for r, b, e, t in rows
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "distributed_mlp.json").write_text(json.dumps(summary, indent=1))
    needed = 0.80 if quick else 0.95
    if not (accuracy >= needed and identical):
        print(f"FAILED: accuracy {accuracy:.4f} < {needed} or parameters differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
