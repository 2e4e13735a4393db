"""The Adam update of DESIGN.md section 2 in plain NumPy: readable, and the baseline.

It follows the same signature and semantics as ``fastadam.adam_step`` and computes in the
arrays' own dtype (pass float64 arrays for the accuracy oracle). It is an honest in-place NumPy
implementation, the kind a user would write, with a few temporaries per step.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["adam_step", "adam_step_multi"]


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
