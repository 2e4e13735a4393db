"""RAdam (``torch.optim.RAdam``) on NumPy arrays."""

from __future__ import annotations

from .. import _core
from .base import Params
from .moments import TwoMoments, cached_call, general_call

__all__ = ["RAdam"]

_radam_step_sets = _core.radam_step_sets


class RAdam(TwoMoments):
    """RAdam (``torch.optim.RAdam``, Adam with the variance of the adaptive step rectified) on
    NumPy arrays, in place.

    Per element, at step ``t``: ``g = -g`` if maximize; weight decay (L2, or decoupled with
    ``decoupled_weight_decay``); ``exp_avg = lerp(exp_avg, g, 1 - beta1)``;
    ``exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g``; with
    ``rho_inf = 2 / (1 - beta2) - 1`` and ``rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)``:
    while ``rho_t <= 5``, ``p -= lr * exp_avg / (1 - beta1**t)``; after,
    ``p -= exp_avg / (1 - beta1**t) * lr * sqrt(1 - beta2**t) / (sqrt(exp_avg_sq) + eps) * r_t``
    with torch's rectification term ``r_t``. State: ``step``, ``exp_avg``, ``exp_avg_sq``.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        As for ``Adam``.
    lr : float
        Learning rate (default 1e-3).
    betas, eps : as for ``Adam``.
    weight_decay : float
        Weight decay (default 0): L2 added to the gradient, or decoupled.
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

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
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
        return general_call(_radam_step_sets, params, grads, arrays, steps, hypers, options)

    def _fast_call(self, group, lists, grads, t, options):
        hyper = self._hyper_tuple(group)
        return cached_call(_radam_step_sets, group["params"], lists, grads, t, hyper, options)
