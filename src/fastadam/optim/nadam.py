"""NAdam (``torch.optim.NAdam``) on NumPy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .base import Params
from .moments import TwoMoments, cached_call, general_call
from .validation import as_step

__all__ = ["NAdam"]

_nadam_step_sets = _core.nadam_step_sets


class NAdam(TwoMoments):
    """NAdam (``torch.optim.NAdam``, Adam with Nesterov momentum) on NumPy arrays, in place.

    Per element, at step ``t``, with ``mu_t = beta1 * (1 - 0.5 * 0.96**(t * momentum_decay))``
    and ``mu_product`` the product ``mu_1 ... mu_t``: ``g = -g`` if maximize; weight decay (L2,
    or decoupled with ``decoupled_weight_decay``); ``exp_avg = lerp(exp_avg, g, 1 - beta1)``;
    ``exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g``;
    ``denom = sqrt(exp_avg_sq / (1 - beta2**t)) + eps``;
    ``p -= lr * (1 - mu_t) / (1 - mu_product) * g / denom``;
    ``p -= lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * exp_avg / denom``.

    State: ``step``, ``exp_avg``, ``exp_avg_sq``, and in ``state_dict()`` torch's
    ``mu_product`` (a 0-d float32 array). The product is kept as torch keeps it, in float32
    whatever the parameter's dtype (``fastadam._core.nadam_mu_product``), so float64 runs match
    torch's; it is computed from the step count and the group's current ``betas[0]`` and
    ``momentum_decay`` (torch accumulates it step by step: the two differ only after one of those
    changes mid-run). A loaded ``mu_product`` is therefore not read. The product is continued
    from the last step's; after a change of ``betas[0]`` or a resumed run it is recomputed, in
    at most about ``100 / (1 - beta1)`` multiplications (by then it is 0 in float32, or
    constant, for good).

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        As for ``Adam``.
    lr : float
        Learning rate (default 2e-3).
    betas, eps : as for ``Adam``.
    weight_decay : float
        Weight decay (default 0): L2 added to the gradient, or decoupled.
    momentum_decay : float
        The ``psi`` of ``mu_t`` above (default 4e-3).
    decoupled_weight_decay : bool
        Decay the parameters directly, as AdamW does (default False).
    maximize : bool
        Ascend instead of descend (default False).
    master_weights, skip_nonfinite, max_grad_norm, stochastic_rounding, seed :
        As for ``Adam``.

    Raises
    ------
    TypeError, ValueError
        As for ``Adam``, with torch's messages.
    """

    _extra = ("momentum_decay",)

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        master_weights: bool = False,
        skip_nonfinite: bool = False,
        max_grad_norm: float | None = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            params,
            {
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": weight_decay,
                "momentum_decay": momentum_decay,
                "decoupled_weight_decay": decoupled_weight_decay,
                "maximize": maximize,
            },
            master_weights=master_weights,
            skip_nonfinite=skip_nonfinite,
            max_grad_norm=max_grad_norm,
            stochastic_rounding=stochastic_rounding,
            seed=seed,
        )

    def _native(self, params, grads, arrays, steps, fresh, hypers, options=None):
        return general_call(_nadam_step_sets, params, grads, arrays, steps, hypers, options)

    def _fast_call(self, group, lists, grads, t, options):
        hyper = self._hyper_tuple(group)
        return cached_call(_nadam_step_sets, group["params"], lists, grads, t, hyper, options)

    def state_dict(self) -> dict[str, Any]:
        """``Optimizer.state_dict`` with torch's ``mu_product`` in each parameter's state."""
        out = super().state_dict()
        with_mu_product(out)
        return out


def with_mu_product(state_dict: dict[str, Any], make=lambda x: np.array(x, np.float32)) -> None:
    """Adds ``mu_product`` (``make`` of the float) to every parameter's state of a NAdam
    ``state_dict``, from its step and its group's ``betas[0]`` and ``momentum_decay``; each
    parameter's state dict is replaced by a new one."""
    group_of = {}
    for group in state_dict["param_groups"]:
        for index in group["params"]:
            group_of[index] = group
    for index, s in state_dict["state"].items():
        group = group_of[index]
        step = as_step(s["step"], f"state[{index}]['step']")  # exactly, past 2**53 too
        beta1 = float(group["betas"][0])
        product = _core.nadam_mu_product(beta1, float(group["momentum_decay"]), step)
        state_dict["state"][index] = {**s, "mu_product": make(product)}
