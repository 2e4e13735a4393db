"""Sharded (ZeRO stage 1) optimizers for data-parallel NumPy training over MPI (mpi4py).

Each rank of a communicator keeps the optimizer state of only its own contiguous slice of the
parameters (one flat buffer per dtype); a step reduce-scatters the gradients, updates the own
slice with the single-process optimizer's native entry and allgathers the parameters, so every
rank ends the step with the same parameters, bitwise those of a single-process step on the
averaged gradients::

    from mpi4py import MPI
    from fastadam.distributed import ShardedAdam

    opt = ShardedAdam(params, MPI.COMM_WORLD, lr=1e-3)   # the same params on every rank
    for batch in my_share_of_the_data:
        opt.step(compute_grads(params, batch))              # this rank's gradients

Run with ``mpiexec -n 4 python -m mpi4py train.py`` (``-m mpi4py`` aborts every rank when one
raises an uncaught exception). Needs the ``distributed`` extra (mpi4py and an MPI library);
``import fastadam`` never imports mpi4py, and this package imports it only when an optimizer is
made.

Modules: ``optimizers`` (the classes), ``sharded`` (their shared machinery: the step),
``layout`` (flat buffers and slices),
``agreement`` (validate, then agree across ranks), ``checkpoint`` (state dicts, checkpoint
folders, re-sharding).
"""

from .optimizers import ShardedAdagrad, ShardedAdam, ShardedAdamW, ShardedSGD
from .sharded import ShardedOptimizer

__all__ = [
    "ShardedAdagrad",
    "ShardedAdam",
    "ShardedAdamW",
    "ShardedOptimizer",
    "ShardedSGD",
]
