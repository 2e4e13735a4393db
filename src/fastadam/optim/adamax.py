"""Adamax (``torch.optim.Adamax``) on NumPy arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _core
from .base import Optimizer, Params
from .validation import adam_family

__all__ = ["Adamax"]

_adamax_step_sets = _core.adamax_step_sets


class Adamax(Optimizer):
    """Adamax (``torch.optim.Adamax``, Adam with the infinity norm) on NumPy arrays, in place.

    Per element, at step ``t``: ``g = -g`` if maximize; ``g += weight_decay * p``;
    ``exp_avg = lerp(exp_avg, g, 1 - beta1)``;
    ``exp_inf = max(beta2 * exp_inf, |g| + eps)``; ``p -= lr / (1 - beta1**t) * exp_avg /
    exp_inf``. State: ``step``, ``exp_avg``, ``exp_inf`` (torch's keys).

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        As for ``Adam``.
    lr : float
        Learning rate (default 2e-3).
    betas : tuple of float
        Decay rates of the first moment and of the infinity norm (default (0.9, 0.999)).
    eps : float
        Added to ``|g|`` (default 1e-8).
    weight_decay : float
        L2 penalty added to the gradient (default 0).
    maximize : bool
        Ascend instead of descend (default False).
    master_weights, skip_nonfinite, max_grad_norm, stochastic_rounding, seed :
        As for ``Adam``.

    Raises
    ------
    TypeError, ValueError
        As for ``Adam``, with torch's messages.
    """

    _state_arrays = ("exp_avg", "exp_inf", "master_param")
    _required_arrays = ("exp_avg", "exp_inf")

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
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
                "maximize": maximize,
            },
            master_weights=master_weights,
            skip_nonfinite=skip_nonfinite,
            max_grad_norm=max_grad_norm,
            stochastic_rounding=stochastic_rounding,
            seed=seed,
        )

    @staticmethod
    def _validate(group: Mapping[str, Any]) -> dict[str, Any]:
        """Validated as torch.optim.Adamax does."""
        return adam_family(group)

    def _arrays(self, values: Mapping[str, Any]) -> dict[str, float]:
        return {"exp_avg": 0.0, "exp_inf": 0.0}

    @staticmethod
    def _hyper_tuple(values: Mapping[str, Any]) -> tuple:
        """A group's hyper-parameters in the order ``_core.adamax_step_sets`` reads them."""
        beta1, beta2 = values["betas"]
        return (
            values["lr"],
            beta1,
            beta2,
            values["eps"],
            values["weight_decay"],
            values["maximize"],
        )

    def _native(self, params, grads, arrays, steps, fresh, hypers, options=None):
        return _adamax_step_sets(
            params,
            grads,
            arrays["exp_avg"],
            arrays["exp_inf"],
            steps,
            hypers,
            arrays["master_param"],
            options,
        )

    def _fast_call(self, group, lists, grads, t, options):
        exp_avgs, exp_infs, masters = lists
        return _adamax_step_sets(
            group["params"],
            grads,
            exp_avgs,
            exp_infs,
            t,
            self._hyper_tuple(group),
            masters,
            options,
        )
