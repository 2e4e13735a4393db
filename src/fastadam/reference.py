"""The updates of fastadam's kernels in plain NumPy: readable, and the baseline.

Adam as DESIGN.md section 2 states it, SGD, Adagrad, RMSprop, Adamax, NAdam and RAdam as
``torch.optim``'s single-tensor implementations perform them, SWATS as ``fastadam.SWATS``'s
native step does (one set, returning its dot products). A function with a compiled namesake
(``fastadam.adam_step``, ``fastadam.sgd_step``, ...) takes its arguments and has its semantics,
with one exception: ``sgd_step`` and ``sgd_step_multi`` also take ``stochastic_rounding``,
``seed`` and ``step``, which the compiled SGD functions refuse (SGD keeps no step count to key
the rounding). Every function computes in the arrays' own dtype, with the per-call scalars
computed in double precision and rounded once (pass float64 arrays for the accuracy oracle).
They are honest in-place NumPy implementations, the kind a user would write, with a few
temporaries per step.

Mixed precision as the kernels do it: a float16 or bfloat16 parameter (or its ``master`` copy)
and its gradient are widened to the state's dtype (float32, or float64 for the oracle), updated
there, and the parameter is rounded once to its dtype (``dtypes.round_nearest``, or
``dtypes.round_stochastic`` with ``stochastic_rounding``). ``grad_scale``, ``max_grad_norm`` and
``skip_nonfinite`` act as in the kernels: the gradients are multiplied by
``(1 / grad_scale) * min(1, max_grad_norm / (norm + 1e-6))`` (computed in double, rounded once
to the state's dtype) where ``norm`` is the global L2 norm of all the call's unscaled gradients,
and a call whose gradients are not all finite writes nothing with ``skip_nonfinite``. Every
function returns a ``StepReport``.
"""

from __future__ import annotations

import math

import numpy as np

from .dtypes import is_16bit, round_nearest, round_stochastic
from .scaling import StepReport

__all__ = [
    "adagrad_step",
    "adagrad_step_multi",
    "adam8bit_step",
    "adam_step",
    "adam_step_multi",
    "adamax_step",
    "fixed_order_dot",
    "grad_report",
    "nadam_mu_product",
    "nadam_step",
    "radam_step",
    "rmsprop_step",
    "sgd_step",
    "sgd_step_multi",
    "swats_step",
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
    master: np.ndarray | None = None,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
    stochastic_rounding: bool = False,
    seed: int = 0,
    eps_mode: str = "torch",
) -> StepReport:
    """One Adam/AdamW update in place, in NumPy. Same arguments as ``fastadam.adam_step``."""
    return adam_step_multi(
        [param],
        [grad],
        [exp_avg],
        [exp_avg_sq],
        steps=step,
        lr=lr,
        betas=betas,
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        max_exp_avg_sqs=None if max_exp_avg_sq is None else [max_exp_avg_sq],
        maximize=maximize,
        decoupled=decoupled,
        bias_correction=bias_correction,
        masters=None if master is None else [master],
        grad_scale=grad_scale,
        max_grad_norm=max_grad_norm,
        skip_nonfinite=skip_nonfinite,
        stochastic_rounding=stochastic_rounding,
        seed=seed,
        eps_mode=eps_mode,
    )


def _adam_math(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    max_exp_avg_sq,
    *,
    step,
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    maximize=False,
    decoupled=False,
    bias_correction=True,
    eps_mode="torch",
) -> None:
    """The Adam update of DESIGN.md in the dtype of ``exp_avg``, in place on every array.

    ``eps_mode="keras"`` moves the bias correction of the second moment into the step size, as
    ``tf.keras.optimizers.Adam`` does: ``p -= lr * sqrt(bc2) / bc1 * m / (sqrt(v) + eps)``.
    """
    if eps_mode not in ("torch", "keras"):
        raise ValueError(f"eps_mode must be 'torch' or 'keras', got {eps_mode!r}")
    # Per-call scalars in double precision (NumPy scalar arguments too, as the kernels read
    # them), rounded once to the arrays' dtype.
    lr, eps, weight_decay = float(lr), float(eps), float(weight_decay)
    beta1, beta2 = float(betas[0]), float(betas[1])
    dtype = exp_avg.dtype.type
    bc1 = 1.0 - beta1**step if bias_correction else 1.0
    bc2 = 1.0 - beta2**step if bias_correction else 1.0
    if eps_mode == "keras":
        step_size = dtype(lr * math.sqrt(bc2) / bc1)
        inv_sqrt_bc2 = dtype(1.0)
    else:
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


def adam_step_multi(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    *,
    steps,
    max_exp_avg_sqs=None,
    masters=None,
    grad_scale=1.0,
    max_grad_norm=None,
    skip_nonfinite=False,
    stochastic_rounding=False,
    seed=0,
    **hyper,
) -> StepReport:
    """``adam_step`` over aligned lists, one set after another, after one look at all the
    gradients (``grad_report``)."""
    n = len(params)
    step_list = _per_set(steps, n)
    maxes = max_exp_avg_sqs if max_exp_avg_sqs is not None else [None] * n
    if hyper.get("amsgrad") and any(m is None for m in maxes):
        raise ValueError("max_exp_avg_sq is required when amsgrad=True")
    report, multiplier = grad_report(grads, grad_scale, max_grad_norm, skip_nonfinite)
    if report.skipped:
        return report
    for i, (p, g, m, v, vmax, t) in enumerate(
        zip(params, grads, exp_avgs, exp_avg_sqs, maxes, step_list)
    ):
        master = masters[i] if masters is not None else None
        with _Widened(p, g, m.dtype, master, multiplier, stochastic_rounding, seed, t) as (wp, wg):
            _adam_math(wp, wg, m, v, vmax, step=t, **hyper)
    return report


def adam8bit_step(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg_codes: np.ndarray,
    exp_avg_scales: np.ndarray,
    exp_avg_sq_codes: np.ndarray,
    exp_avg_sq_scales: np.ndarray,
    *,
    step: int,
    amsgrad: bool = False,
    max_exp_avg_sq_codes: np.ndarray | None = None,
    max_exp_avg_sq_scales: np.ndarray | None = None,
    master: np.ndarray | None = None,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
    stochastic_rounding: bool = False,
    seed: int = 0,
    **hyper,
) -> StepReport:
    """``fastadam.adam8bit_step`` in NumPy: decode the whole state to float32
    (``fastadam.lowbit.decode``), run the float32 update above, encode it back with the
    kernels' stochastic rounding (``lowbit.encode`` with ``lowbit.state_random(size, seed,
    step)``). Bit for bit what the kernels compute, with full-size temporaries."""
    from . import lowbit

    report, multiplier = grad_report([grad], grad_scale, max_grad_norm, skip_nonfinite)
    if report.skipped:
        return report
    coded = [
        ("exp_avg", exp_avg_codes, exp_avg_scales),
        ("exp_avg_sq", exp_avg_sq_codes, exp_avg_sq_scales),
    ]
    if amsgrad:
        if max_exp_avg_sq_codes is None or max_exp_avg_sq_scales is None:
            raise ValueError("max_exp_avg_sq_codes/_scales are required when amsgrad=True")
        coded.append(("max_exp_avg_sq", max_exp_avg_sq_codes, max_exp_avg_sq_scales))
    values = [lowbit.decode(c, s, name).reshape(param.shape) for name, c, s in coded]
    values.append(None)  # max_exp_avg_sq without amsgrad
    f32 = np.dtype(np.float32)
    with _Widened(param, grad, f32, master, multiplier, stochastic_rounding, seed, step) as (p, g):
        _adam_math(p, g, values[0], values[1], values[2], step=step, amsgrad=amsgrad, **hyper)
    random = lowbit.state_random(param.size, seed, step)
    for (name, codes, scales), x in zip(coded, values):
        codes[...], scales[...] = lowbit.encode(x, name, random)
    return report


def grad_report(
    grads,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
) -> tuple[StepReport, float]:
    """The look at all gradients of a step: its report and the gradient multiplier
    ``(1 / grad_scale) * clip`` (1.0 when nothing is asked). The norm is summed in float64."""
    norm = None
    clip = 1.0
    if skip_nonfinite or max_grad_norm is not None:
        total = 0.0
        for g in grads:
            g64 = np.asarray(g).astype(np.float64)
            total += float(np.dot(g64.ravel(), g64.ravel()))
        norm = math.sqrt(total) / grad_scale
        finite = math.isfinite(norm) and all(np.isfinite(np.asarray(g)).all() for g in grads)
        if max_grad_norm is not None:
            clip = max_grad_norm / (norm + 1e-6)
            clip = clip if not clip > 1.0 else 1.0
        # A finite gradient that the float32 multiplier takes to inf (grad_scale < 1) counts as
        # non-finite too; float64 gradients are multiplied in double.
        multiplier32 = np.float32((1.0 / grad_scale) * clip)
        for g in grads:
            g = np.asarray(g)
            if finite and g.dtype != np.float64 and g.size:
                with np.errstate(over="ignore"):
                    top = np.float32(np.max(np.abs(g.astype(np.float32))))
                    finite = bool(np.isfinite(top * multiplier32))
        if skip_nonfinite and not finite:
            return StepReport(True, norm), 1.0
    return StepReport(False, norm), (1.0 / grad_scale) * clip


class _Widened:
    """The parameter and gradient as the update sees them: the arrays themselves for a float32
    or float64 parameter (the gradient multiplied when asked); for a 16-bit one, copies widened
    to the state dtype (from the master copy when there is one), rounded back on exit."""

    def __init__(self, param, grad, state_dtype, master, multiplier, stochastic, seed, step):
        self.param, self.master = param, master
        self.stochastic, self.seed, self.step = stochastic, seed, step
        self.mixed = is_16bit(param.dtype)
        dtype = state_dtype if self.mixed else param.dtype
        self.p = (master if master is not None else param.astype(dtype)) if self.mixed else param
        self.g = grad.astype(dtype) if self.mixed else grad
        if multiplier != 1.0:
            self.g = self.g * dtype.type(multiplier)

    def __enter__(self):
        return self.p, self.g

    def __exit__(self, *exc) -> None:
        if self.mixed and exc[0] is None:
            if self.stochastic:
                self.param[...] = round_stochastic(self.p.astype(np.float32), self.seed, self.step)
            else:
                self.param[...] = round_nearest(self.p, self.param.dtype)


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
    **mixed,
) -> StepReport:
    """One SGD update in place, in NumPy. Same arguments as ``fastadam.sgd_step``.

    With ``first_step`` the momentum buffer becomes a copy of the (decayed) gradient, as torch
    does for a parameter that has no buffer yet.
    """
    return sgd_step_multi(
        [param],
        [grad],
        None if momentum_buffer is None else [momentum_buffer],
        first_steps=first_step,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        maximize=maximize,
        **_one_set(mixed),
    )


def _sgd_math(
    param,
    grad,
    momentum_buffer,
    *,
    lr=1e-3,
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
    maximize=False,
    first_step=False,
) -> None:
    if (momentum != 0.0) != (momentum_buffer is not None):
        raise ValueError("momentum_buffer is required exactly when momentum != 0")
    dtype = param.dtype.type
    lr, momentum, dampening = float(lr), float(momentum), float(dampening)  # as the kernels
    weight_decay = float(weight_decay)

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


def sgd_step_multi(
    params,
    grads,
    momentum_buffers=None,
    *,
    first_steps=False,
    masters=None,
    grad_scale=1.0,
    max_grad_norm=None,
    skip_nonfinite=False,
    stochastic_rounding=False,
    seed=0,
    step=1,
    **hyper,
) -> StepReport:
    """``sgd_step`` over aligned lists, one set after another (``step`` only keys stochastic
    rounding)."""
    n = len(params)
    buffers = momentum_buffers if momentum_buffers is not None else [None] * n
    report, multiplier = grad_report(grads, grad_scale, max_grad_norm, skip_nonfinite)
    if report.skipped:
        return report
    for i, (p, g, buf, first) in enumerate(zip(params, grads, buffers, _per_set(first_steps, n))):
        master = masters[i] if masters is not None else None
        state = buf.dtype if buf is not None else np.dtype(np.float32)
        with _Widened(p, g, state, master, multiplier, stochastic_rounding, seed, step) as (wp, wg):
            _sgd_math(wp, wg, buf, first_step=first, **hyper)
    return report


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
    **mixed,
) -> StepReport:
    """One Adagrad update in place, in NumPy. Same arguments as ``fastadam.adagrad_step``."""
    return adagrad_step_multi(
        [param],
        [grad],
        [state_sum],
        steps=step,
        lr=lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        eps=eps,
        maximize=maximize,
        **_one_set(mixed),
    )


def _adagrad_math(
    param,
    grad,
    state_sum,
    *,
    step,
    lr=1e-2,
    lr_decay=0.0,
    weight_decay=0.0,
    eps=1e-10,
    maximize=False,
) -> None:
    dtype = param.dtype.type
    lr, lr_decay, weight_decay, eps = float(lr), float(lr_decay), float(weight_decay), float(eps)
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


def adagrad_step_multi(
    params,
    grads,
    state_sums,
    *,
    steps,
    masters=None,
    grad_scale=1.0,
    max_grad_norm=None,
    skip_nonfinite=False,
    stochastic_rounding=False,
    seed=0,
    **hyper,
) -> StepReport:
    """``adagrad_step`` over aligned lists, one set after another."""
    report, multiplier = grad_report(grads, grad_scale, max_grad_norm, skip_nonfinite)
    if report.skipped:
        return report
    for i, (p, g, s, t) in enumerate(zip(params, grads, state_sums, _per_set(steps, len(params)))):
        master = masters[i] if masters is not None else None
        with _Widened(p, g, s.dtype, master, multiplier, stochastic_rounding, seed, t) as (wp, wg):
            _adagrad_math(wp, wg, s, step=t, **hyper)
    return report


def _one_set(mixed: dict) -> dict:
    """A one-set function's mixed-precision keywords for its multi form (master -> masters)."""
    out = dict(mixed)
    if out.get("master") is not None:
        out["masters"] = [out["master"]]
    out.pop("master", None)
    return out


# -- Adam's family: RMSprop, Adamax, NAdam, RAdam ---------------------------------------------
#
# As torch.optim's single-tensor implementations compute them, in the arrays' dtype with the
# per-call scalars in double rounded once; each function updates one set in place and takes the
# mixed-precision keywords of ``adam_step`` (``master``, ``grad_scale``, ``max_grad_norm``,
# ``skip_nonfinite``, ``stochastic_rounding``, ``seed``).


def _lerp_(start, end, weight, dtype) -> None:
    """torch's ``start.lerp_(end, weight)`` without fused multiply-add, in place."""
    w = dtype(weight)
    if abs(w) < dtype(0.5):
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (dtype(1) - w)


def _one_set_step(param, grad, state, step, math_fn, mixed) -> StepReport:
    """Runs ``math_fn(p, g)`` on the set as the update sees it (widened, multiplied)."""
    mixed = dict(mixed)
    master = mixed.pop("master", None)
    report, multiplier = grad_report(
        [grad],
        mixed.pop("grad_scale", 1.0),
        mixed.pop("max_grad_norm", None),
        mixed.pop("skip_nonfinite", False),
    )
    if report.skipped:
        return report
    stochastic, seed = mixed.pop("stochastic_rounding", False), mixed.pop("seed", 0)
    if mixed:
        raise TypeError(f"unexpected keyword arguments {sorted(mixed)}")
    with _Widened(param, grad, state.dtype, master, multiplier, stochastic, seed, step) as (wp, wg):
        math_fn(wp, wg)
    return report


def _decayed(p, g, dtype, lr, weight_decay, decoupled, maximize):
    """The gradient after maximize and L2 decay; decoupled decay applied to ``p``."""
    g = -g if maximize else g
    if weight_decay != 0.0:
        if decoupled:
            p *= dtype(1.0 - lr * weight_decay)
        else:
            g = g + dtype(weight_decay) * p
    return g


def rmsprop_step(
    param: np.ndarray,
    grad: np.ndarray,
    square_avg: np.ndarray,
    *,
    step: int,
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
    grad_avg: np.ndarray | None = None,
    momentum_buffer: np.ndarray | None = None,
    **mixed,
) -> StepReport:
    """One RMSprop update (``torch.optim.RMSprop``) in place; ``grad_avg`` is required when
    centered, ``momentum_buffer`` when momentum > 0."""
    if centered != (grad_avg is not None) or (momentum > 0.0) != (momentum_buffer is not None):
        raise ValueError(
            "grad_avg is required exactly when centered, momentum_buffer when momentum"
        )
    d = square_avg.dtype.type

    def math_fn(p, g):
        g = _decayed(p, g, d, lr, weight_decay, False, maximize)
        square_avg[...] = square_avg * d(alpha) + d(1.0 - alpha) * g * g
        if centered:
            _lerp_(grad_avg, g, 1.0 - alpha, d)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += d(eps)
        if momentum > 0.0:
            momentum_buffer[...] = momentum_buffer * d(momentum) + g / avg
            p -= d(lr) * momentum_buffer
        else:
            p -= d(lr) * g / avg

    return _one_set_step(param, grad, square_avg, step, math_fn, mixed)


def adamax_step(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_inf: np.ndarray,
    *,
    step: int,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
    **mixed,
) -> StepReport:
    """One Adamax update (``torch.optim.Adamax``) in place."""
    beta1, beta2 = betas
    d = exp_avg.dtype.type
    clr = d(lr / (1.0 - beta1**step))

    def math_fn(p, g):
        g = _decayed(p, g, d, lr, weight_decay, False, maximize)
        _lerp_(exp_avg, g, 1.0 - beta1, d)
        np.maximum(exp_inf * d(beta2), np.abs(g) + d(eps), out=exp_inf)
        p -= clr * exp_avg / exp_inf

    return _one_set_step(param, grad, exp_avg, step, math_fn, mixed)


def nadam_mu_product(beta1: float, momentum_decay: float, step: int) -> np.float32:
    """``mu_1 * ... * mu_step`` as ``torch.optim.NAdam`` keeps it: a float32 product of each
    ``mu_i = beta1 * (1 - 0.5 * 0.96 ** (i * momentum_decay))`` rounded to float32."""
    product = np.float32(1.0)
    for i in range(1, step + 1):
        product = np.float32(
            product * np.float32(beta1 * (1.0 - 0.5 * 0.96 ** (i * momentum_decay)))
        )
    return product


def nadam_step(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    step: int,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled: bool = False,
    maximize: bool = False,
    **mixed,
) -> StepReport:
    """One NAdam update (``torch.optim.NAdam``) in place; the product of the momentum
    coefficients is ``nadam_mu_product``'s (float32, as torch keeps it)."""
    beta1, beta2 = betas
    d = exp_avg.dtype.type
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    product = float(nadam_mu_product(beta1, momentum_decay, step))
    grad_coef = d(-lr * (1.0 - mu) / (1.0 - product))
    exp_avg_coef = d(-lr * mu_next / (1.0 - product * mu_next))

    def math_fn(p, g):
        g = _decayed(p, g, d, lr, weight_decay, decoupled, maximize)
        _lerp_(exp_avg, g, 1.0 - beta1, d)
        exp_avg_sq[...] = exp_avg_sq * d(beta2) + d(1.0 - beta2) * g * g
        denom = np.sqrt(exp_avg_sq / d(1.0 - beta2**step))
        denom += d(eps)
        p += grad_coef * g / denom
        p += exp_avg_coef * exp_avg / denom

    return _one_set_step(param, grad, exp_avg, step, math_fn, mixed)


def radam_step(
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
    decoupled: bool = False,
    maximize: bool = False,
    **mixed,
) -> StepReport:
    """One RAdam update (``torch.optim.RAdam``) in place."""
    beta1, beta2 = betas
    d = exp_avg.dtype.type
    bc1, bc2 = 1.0 - beta1**step, 1.0 - beta2**step
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * step * beta2**step / bc2

    def math_fn(p, g):
        g = _decayed(p, g, d, lr, weight_decay, decoupled, maximize)
        _lerp_(exp_avg, g, 1.0 - beta1, d)
        exp_avg_sq[...] = exp_avg_sq * d(beta2) + d(1.0 - beta2) * g * g
        corrected = exp_avg / d(bc1)
        if rho_t > 5.0:
            rect = (
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            ) ** 0.5
            adaptive = d(bc2**0.5) / (np.sqrt(exp_avg_sq) + d(eps))
            p -= corrected * d(lr) * adaptive * d(rect)
        else:
            p -= corrected * d(lr)

    return _one_set_step(param, grad, exp_avg, step, math_fn, mixed)


# -- SWATS ------------------------------------------------------------------------------------


def fixed_order_dot(a: np.ndarray, b: np.ndarray) -> float:
    """``sum(a * b)`` in float64 in the kernels' order: segments of 2**15 elements, each summed
    in 16 interleaved partial sums (element j into sum j % 16, in order) added in a fixed tree,
    the segments' sums then added in order."""
    x = np.asarray(a, np.float64).ravel() * np.asarray(b, np.float64).ravel()
    total = 0.0
    segment = 1 << 15
    for begin in range(0, x.size, segment):
        part = x[begin : begin + segment]
        rows = np.zeros(-(-part.size // 16) * 16)
        rows[: part.size] = part
        lanes = np.cumsum(rows.reshape(-1, 16), axis=0)[-1]  # row by row, as the kernel adds
        for half in (8, 4, 2, 1):
            lanes[:half] = lanes[:half] + lanes[half : 2 * half]
        total += float(lanes[0])
    return total


def swats_step(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    momentum_buffer: np.ndarray | None = None,
    *,
    step: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-9,
    weight_decay: float = 0.0,
    maximize: bool = False,
    sgd_phase: bool = False,
    sgd_lr: float = 0.0,
) -> tuple[float, float]:
    """One SWATS update of one set in place (``fastadam.SWATS``'s native step): Adam with the
    paper's epsilon, or in the SGD phase ``buf = beta1 buf + g``, ``p -= (1 - beta1) sgd_lr
    buf``. Returns the set's ``(sum(step * step), sum(step * grad))`` in ``fixed_order_dot``'s
    order (zeros in the SGD phase), ``step`` being what was subtracted from the parameter and
    ``grad`` the gradient after maximize and weight decay."""
    beta1, beta2 = betas
    d = param.dtype.type
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + d(weight_decay) * param
    if sgd_phase:
        if momentum_buffer is None:
            raise ValueError("momentum_buffer is required in the SGD phase")
        momentum_buffer[...] = d(beta1) * momentum_buffer + g
        param -= d((1.0 - beta1) * sgd_lr) * momentum_buffer
        return 0.0, 0.0
    exp_avg[...] = d(beta1) * exp_avg + d(1.0 - beta1) * g
    exp_avg_sq[...] = d(beta2) * exp_avg_sq + d(1.0 - beta2) * g * g
    size = d(lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step))
    taken = size * exp_avg / (np.sqrt(exp_avg_sq) + d(eps))
    param -= taken
    return fixed_order_dot(taken, taken), fixed_order_dot(taken, g)
