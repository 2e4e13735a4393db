"""The updates of fastadam's kernels in plain NumPy: readable, and the baseline.

Adam as DESIGN.md section 2 states it, SGD as ``torch.optim.SGD`` and Adagrad as
``torch.optim.Adagrad`` perform it. Each function has the same signature and semantics as the
compiled one of the same name (``fastadam.adam_step``, ``fastadam.sgd_step``, ...) and computes
in the arrays' own dtype, with the per-call scalars computed in double precision and rounded once
(pass float64 arrays for the accuracy oracle). They are honest in-place NumPy implementations,
the kind a user would write, with a few temporaries per step.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "adagrad_step",
    "adagrad_step_multi",
    "adam_step",
    "adam_step_multi",
    "sgd_step",
    "sgd_step_multi",
]


def adam_step(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    step: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    max_exp_avg_sq: np.ndarray | None = None,
    maximize: bool = False,
    decoupled: bool = False,
    bias_correction: bool = True,
) -> None:
    """One Adam/AdamW update in place, in NumPy. Same arguments as ``fastadam.adam_step``."""
    beta1, beta2 = betas
    dtype = param.dtype.type
    # Per-call scalars in double precision, rounded once to the arrays' dtype.
    bc1 = 1.0 - beta1**step if bias_correction else 1.0
    bc2 = 1.0 - beta2**step if bias_correction else 1.0
    step_size = dtype(lr / bc1)
    inv_sqrt_bc2 = dtype(1.0 / math.sqrt(bc2))

    g = -grad if maximize else grad
    if weight_decay != 0.0 and not decoupled:
        g = g + dtype(weight_decay) * param
    if weight_decay != 0.0 and decoupled:
        param *= dtype(1.0 - lr * weight_decay)

    exp_avg *= dtype(beta1)
    exp_avg += dtype(1.0 - beta1) * g
    exp_avg_sq *= dtype(beta2)
    exp_avg_sq += dtype(1.0 - beta2) * g * g
    second_moment = exp_avg_sq
    if amsgrad:
        if max_exp_avg_sq is None:
            raise ValueError("max_exp_avg_sq is required when amsgrad=True")
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second_moment = max_exp_avg_sq

    denom = np.sqrt(second_moment)
    denom *= inv_sqrt_bc2
    denom += dtype(eps)
    update = step_size * exp_avg
    update /= denom
    param -= update


def adam_step_multi(params, grads, exp_avgs, exp_avg_sqs, *, steps, max_exp_avg_sqs=None, **hyper):
    """``adam_step`` over aligned lists, one set after another."""
    n = len(params)
    step_list = [steps] * n if isinstance(steps, int) else list(steps)
    maxes = max_exp_avg_sqs if max_exp_avg_sqs is not None else [None] * n
    for p, g, m, v, vmax, t in zip(params, grads, exp_avgs, exp_avg_sqs, maxes, step_list):
        adam_step(p, g, m, v, step=t, max_exp_avg_sq=vmax, **hyper)


def _per_set(value, n: int) -> list:
    """A scalar for every set, or one value per set."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def sgd_step(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: np.ndarray | None = None,
    *,
    lr: float = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
    first_step: bool = False,
) -> None:
    """One SGD update in place, in NumPy. Same arguments as ``fastadam.sgd_step``.

    With ``first_step`` the momentum buffer becomes a copy of the (decayed) gradient, as torch
    does for a parameter that has no buffer yet.
    """
    if (momentum != 0.0) != (momentum_buffer is not None):
        raise ValueError("momentum_buffer is required exactly when momentum != 0")
    dtype = param.dtype.type

    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + dtype(weight_decay) * param
    if momentum != 0.0:
        if first_step:
            momentum_buffer[...] = g
        else:
            momentum_buffer *= dtype(momentum)
            momentum_buffer += dtype(1.0 - dampening) * g
        g = g + dtype(momentum) * momentum_buffer if nesterov else momentum_buffer
    param -= dtype(lr) * g


def sgd_step_multi(params, grads, momentum_buffers=None, *, first_steps=False, **hyper):
    """``sgd_step`` over aligned lists, one set after another."""
    n = len(params)
    buffers = momentum_buffers if momentum_buffers is not None else [None] * n
    for p, g, buf, first in zip(params, grads, buffers, _per_set(first_steps, n)):
        sgd_step(p, g, buf, first_step=first, **hyper)


def adagrad_step(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    step: int,
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
) -> None:
    """One Adagrad update in place, in NumPy. Same arguments as ``fastadam.adagrad_step``."""
    dtype = param.dtype.type
    clr = dtype(lr / (1.0 + (step - 1) * lr_decay))  # in double, rounded once

    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + dtype(weight_decay) * param
    state_sum += g * g
    denom = np.sqrt(state_sum)
    denom += dtype(eps)
    update = g / denom
    update *= clr
    param -= update


def adagrad_step_multi(params, grads, state_sums, *, steps, **hyper):
    """``adagrad_step`` over aligned lists, one set after another."""
    for p, g, s, t in zip(params, grads, state_sums, _per_set(steps, len(params))):
        adagrad_step(p, g, s, step=t, **hyper)
