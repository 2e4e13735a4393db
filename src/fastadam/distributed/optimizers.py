"""The sharded optimizers: each names the single-process optimizer whose validation, groups,
state arrays and native entry it uses, and its constructor's parameters; ``sharded`` has the
machinery they share."""

from __future__ import annotations

from typing import Any

from ..optim import SGD, Adagrad, Adam, AdamW
from .sharded import ShardedOptimizer

__all__ = ["ShardedAdagrad", "ShardedAdam", "ShardedAdamW", "ShardedSGD"]


class ShardedAdam(ShardedOptimizer):
    """Adam (``fastadam.Adam``) with its state sharded across the ranks of an MPI
    communicator (ZeRO stage 1).

    On the same averaged gradients, a step gives bitwise the parameters of
    ``fastadam.Adam.step``: each rank updates its slice with the same native entry, whose
    element arithmetic does not depend on how the elements are split.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        As for ``fastadam.Adam``, with the same shapes, dtypes and groups on every rank
        (checked: a difference raises on every rank). Rank 0's values are broadcast to the
        others here, so that every rank starts from the same parameters.
    comm : mpi4py.MPI.Intracomm, optional
        The ranks that share the state (default ``MPI.COMM_WORLD``).
    lr, betas, eps, weight_decay, amsgrad, maximize, bias_correction, decoupled_weight_decay
        As for ``fastadam.Adam``; the same on every rank.
    bucket_bytes : int or None
        None (default): update the own slice, then allgather the parameters with one blocking
        collective. A size: update and allgather the slice in buckets of about that many bytes,
        each bucket's ``Iallgatherv`` travelling while the next bucket is updated. Overlap pays
        where communication does not take the cores and memory bandwidth the update needs
        (ranks on different machines, a network with its own progress); on one 2-core machine
        it made a step 4-9 % slower (``bench/distributed_step.py``), hence the default.
    Notes
    -----
    Supported: float32 and float64 parameters (one flat buffer per dtype), parameter groups,
    Adam's torch hyper-parameters (weight decay, decoupled decay, amsgrad, maximize, bias
    correction), ``None`` gradients. Of P parameters on N ranks, each rank holds state for
    ``ceil((P + gaps) / N)`` elements rounded up to a 256-element block, where the gaps that put
    each parameter on a 64-byte line are at most 15 float32 (7 float64) elements per parameter;
    and a full-size flat parameter buffer (and, without ``averaged``, gradient buffers of that
    size and of one shard). Not yet supported: float16/bfloat16 parameters and
    low-bit state (the layout already starts shards on 256-element blocks for them).
    ``step``, ``consolidated_state_dict``, ``load_state_dict``, ``save`` and ``load`` are
    collectives: every rank calls them, in the same order.
    """

    _local = Adam

    def __init__(
        self,
        params: Any,
        comm: Any = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        bias_correction: bool = True,
        decoupled_weight_decay: bool = False,
        bucket_bytes: int | None = None,
    ) -> None:
        super().__init__(
            params,
            comm,
            bucket_bytes,
            {
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": weight_decay,
                "amsgrad": amsgrad,
                "maximize": maximize,
                "bias_correction": bias_correction,
                "decoupled_weight_decay": decoupled_weight_decay,
            },
        )


class ShardedAdamW(ShardedOptimizer):
    """AdamW (``fastadam.AdamW``, decoupled weight decay, default 1e-2) sharded as
    ``ShardedAdam`` is; the same parameters without ``decoupled_weight_decay``."""

    _local = AdamW

    def __init__(
        self,
        params: Any,
        comm: Any = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        bias_correction: bool = True,
        bucket_bytes: int | None = None,
    ) -> None:
        super().__init__(
            params,
            comm,
            bucket_bytes,
            {
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": weight_decay,
                "amsgrad": amsgrad,
                "maximize": maximize,
                "bias_correction": bias_correction,
            },
        )


class ShardedSGD(ShardedOptimizer):
    """SGD (``fastadam.SGD``) with its momentum buffers sharded as ``ShardedAdam`` shards
    Adam's state; the same parameters as ``fastadam.SGD`` plus ``comm`` and
    ``bucket_bytes``."""

    _local = SGD

    def __init__(
        self,
        params: Any,
        comm: Any = None,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        bucket_bytes: int | None = None,
    ) -> None:
        super().__init__(
            params,
            comm,
            bucket_bytes,
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": dampening,
                "weight_decay": weight_decay,
                "nesterov": nesterov,
                "maximize": maximize,
            },
        )


class ShardedAdagrad(ShardedOptimizer):
    """Adagrad (``fastadam.Adagrad``) with its sums sharded as ``ShardedAdam`` shards Adam's
    state; the same parameters as ``fastadam.Adagrad`` plus ``comm`` and ``bucket_bytes``."""

    _local = Adagrad

    def __init__(
        self,
        params: Any,
        comm: Any = None,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        bucket_bytes: int | None = None,
    ) -> None:
        super().__init__(
            params,
            comm,
            bucket_bytes,
            {
                "lr": lr,
                "lr_decay": lr_decay,
                "weight_decay": weight_decay,
                "initial_accumulator_value": initial_accumulator_value,
                "eps": eps,
                "maximize": maximize,
            },
        )
