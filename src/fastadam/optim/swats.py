"""SWATS (Keskar & Socher, 2017): Adam that switches to SGD with momentum, on NumPy arrays."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _core
from ..scaling import StepReport
from .base import Optimizer, Params
from .validation import adam_family, betas_pair, real

__all__ = ["SWATS"]

_swats_step_sets = _core.swats_step_sets
_SGD_OF_PHASE = {"adam": False, "sgd": True}


def check_switch_record(group: Mapping[str, Any]) -> None:
    """The switch's running record in a group, as ``_decide`` writes it: ``lambda`` a finite
    number, ``gamma`` None or a number, ``switch_step`` None or a step (an int >= 1)."""
    lam = real(group["lambda"], "lambda")
    if not math.isfinite(lam):
        raise ValueError(f"Invalid lambda value: {lam}")
    if group["gamma"] is not None:
        real(group["gamma"], "gamma")
    switch_step = group["switch_step"]
    if switch_step is not None and not (
        isinstance(switch_step, numbers.Integral)
        and not isinstance(switch_step, bool)
        and switch_step >= 1
    ):
        raise TypeError(f"switch_step must be None or a step number >= 1, got {switch_step!r}")


class SWATS(Optimizer):
    """SWATS: Adam, switching to SGD with momentum once the SGD learning rate projected from
    Adam's steps has settled (Keskar & Socher, "Improving Generalization Performance by
    Switching from Adam to SGD", 2017, Algorithm 1), on NumPy arrays, in place.

    Adam phase, at step ``k`` of a parameter group: ``m = beta1 m + (1 - beta1) g``,
    ``v = beta2 v + (1 - beta2) g * g``, the step ``p_k = -lr * sqrt(1 - beta2**k) /
    (1 - beta1**k) * m / (sqrt(v) + eps)`` (the paper's Adam, eps added to ``sqrt(v)``), and
    after it, over all the group's parameters, the projection
    ``gamma_k = (p_k . p_k) / (-p_k . g_k)`` and its average
    ``lambda_k = beta2 lambda_{k-1} + (1 - beta2) gamma_k`` (when ``p_k . g_k != 0``). The
    group switches when ``k > 1`` and ``|lambda_k / (1 - beta2**k) - gamma_k| < eps_switch``; from
    the next step on it runs SGD with momentum ``beta1`` and learning rate
    ``Lambda = lambda_k / (1 - beta2**k)``, as the paper writes it: ``buf = beta1 buf + g``
    (``buf`` zero at the switch), ``p -= (1 - beta1) Lambda buf``.

    The switch is per parameter group, as in the paper (which estimates the SGD learning rate
    per group of variables): groups switch at their own steps. The dot products are summed by
    the native step in the same pass as the update, in double precision and in a fixed order
    (the same bits on every ISA and thread count); ``g`` is the gradient after L2 weight decay.

    What the switch decided is kept in each group, readable after every step (and saved with
    ``state_dict``): ``'phase'`` (``'adam'`` or ``'sgd'``), ``'switch_step'`` (``k`` of the
    switch, or None), ``'sgd_lr'`` (the estimate ``lambda_k / (1 - beta2**k)`` of the last
    Adam step, then ``Lambda``; None before the first estimate), ``'gamma'`` (the last
    ``gamma_k``) and ``'lambda'`` (``lambda_k``). A parameter's state: ``step``, ``exp_avg``,
    ``exp_avg_sq`` and, from the switch, ``momentum_buffer``.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        As for ``Adam``.
    lr : float
        Adam's learning rate (default 1e-3).
    betas : tuple of float
        Adam's decay rates (default (0.9, 0.999)); beta1 is also the SGD phase's momentum and
        beta2 the decay of the learning-rate estimate.
    eps : float
        Added to ``sqrt(v)`` (default 1e-9, the paper's).
    weight_decay : float
        L2 penalty added to the gradient in both phases (default 0).
    eps_switch : float
        The switch threshold on ``|lambda_k / (1 - beta2**k) - gamma_k|`` (default 1e-9, the
        paper's epsilon).
    maximize : bool
        Ascend instead of descend (default False).
    master_weights, skip_nonfinite, max_grad_norm, stochastic_rounding, seed :
        As for ``Adam``.
    """

    _state_arrays = ("exp_avg", "exp_avg_sq", "momentum_buffer", "master_param")
    _required_arrays = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-9,
        weight_decay: float = 0.0,
        *,
        eps_switch: float = 1e-9,
        maximize: bool = False,
        master_weights: bool = False,
        skip_nonfinite: bool = False,
        max_grad_norm: float | None = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        self._dots = np.zeros(0)
        super().__init__(
            params,
            {
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": weight_decay,
                "eps_switch": eps_switch,
                "maximize": maximize,
                "phase": "adam",
                "switch_step": None,
                "sgd_lr": None,
                "gamma": None,
                "lambda": 0.0,
            },
            master_weights=master_weights,
            skip_nonfinite=skip_nonfinite,
            max_grad_norm=max_grad_norm,
            stochastic_rounding=stochastic_rounding,
            seed=seed,
        )

    @staticmethod
    def _validate(group: Mapping[str, Any]) -> dict[str, Any]:
        values = adam_family(group)
        eps_switch = real(group["eps_switch"], "eps_switch")
        if not 0.0 <= eps_switch:
            raise ValueError(f"Invalid eps_switch value: {eps_switch}")
        phase = group["phase"]
        if phase not in ("adam", "sgd"):
            raise ValueError(f"phase must be 'adam' or 'sgd', got {phase!r}")
        sgd_lr = group["sgd_lr"]
        if phase == "sgd":
            sgd_lr = real(sgd_lr, "sgd_lr")
            if not 0.0 <= sgd_lr:
                raise ValueError(f"Invalid sgd_lr value: {sgd_lr}")
        check_switch_record(group)
        values.update(eps_switch=eps_switch, phase=phase, sgd_lr=sgd_lr)
        return values

    def _arrays(self, values: Mapping[str, Any]) -> dict[str, float]:
        # The momentum buffer starts at zero at the switch, as the paper's v <- 0.
        if values["phase"] == "sgd":
            return {"exp_avg": 0.0, "exp_avg_sq": 0.0, "momentum_buffer": 0.0}
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}

    @staticmethod
    def _hyper_tuple(values: Mapping[str, Any]) -> tuple:
        """A group's hyper-parameters in the order ``_core.swats_step_sets`` reads them."""
        beta1, beta2 = values["betas"]
        sgd = _SGD_OF_PHASE[values["phase"]]  # a bad phase (cached path) goes to the general one
        return (
            values["lr"],
            beta1,
            beta2,
            values["eps"],
            values["weight_decay"],
            values["maximize"],
            sgd,
            values["sgd_lr"] if sgd else 0.0,
        )

    def _dots_for(self, n: int) -> np.ndarray:
        if self._dots.shape[0] != 2 * n:
            self._dots = np.zeros(2 * n)
        return self._dots

    def _native(self, params, grads, arrays, steps, fresh, hypers, options=None) -> StepReport:
        dots = self._dots_for(len(params))
        report = _swats_step_sets(
            params,
            grads,
            arrays["exp_avg"],
            arrays["exp_avg_sq"],
            arrays["momentum_buffer"],
            steps,
            hypers,
            arrays["master_param"],
            options,
            dots,
        )
        if not report.skipped:
            group_of = {id(p): group for group in self.param_groups for p in group["params"]}
            sets: dict[int, tuple[dict, list[int]]] = {}
            for i, p in enumerate(params):
                group = group_of[id(p)]
                sets.setdefault(id(group), (group, []))[1].append(i)
            for group, indices in sets.values():
                self._decide(group, dots, indices, steps[indices[0]])
        return report

    def _fast_call(self, group, lists, grads, t, options) -> StepReport:
        # Everything _decide reads after the native call has written is checked before it.
        self._validate(group)
        params = group["params"]
        exp_avgs, exp_avg_sqs, buffers, masters = lists
        dots = self._dots_for(len(params))
        report = _swats_step_sets(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            buffers if buffers is not None else [None] * len(params),
            t,
            self._hyper_tuple(group),
            masters,
            options,
            dots,
        )
        if not report.skipped:
            self._decide(group, dots, range(len(params)), t)
        return report

    @staticmethod
    def _decide(group: dict, dots: np.ndarray, indices, k: int) -> None:
        """After an Adam step ``k`` of ``group``: the projection, its average and the switch."""
        if group["phase"] != "adam":
            return
        step_step = step_grad = 0.0
        for i in indices:  # the sets in order: a fixed order of additions
            step_step += float(dots[2 * i])
            step_grad += float(dots[2 * i + 1])
        if step_grad == 0.0:  # p_k . g_k = 0: no estimate at this step
            return
        # the group's values as _validate read them (it ran before the native call)
        beta2 = betas_pair(group["betas"])[1]
        gamma = step_step / step_grad  # (p.p) / (-p.g) with p = -step
        lam = beta2 * float(group["lambda"]) + (1.0 - beta2) * gamma
        estimate = lam / (1.0 - beta2**k)
        group["gamma"], group["lambda"], group["sgd_lr"] = gamma, lam, estimate
        if k > 1 and abs(estimate - gamma) < float(group["eps_switch"]):
            group["phase"], group["switch_step"] = "sgd", k
