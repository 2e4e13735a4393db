"""RMSprop (``torch.optim.RMSprop``) on NumPy arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _core
from .base import Optimizer, Params
from .validation import real

__all__ = ["RMSprop"]

_rmsprop_step_sets = _core.rmsprop_step_sets


class RMSprop(Optimizer):
    """RMSprop (``torch.optim.RMSprop``) on NumPy arrays, in place.

    Per element: ``g = -g`` if maximize; ``g += weight_decay * p``;
    ``square_avg = alpha * square_avg + (1 - alpha) * g * g``; centered:
    ``grad_avg = lerp(grad_avg, g, 1 - alpha)``, ``avg = sqrt(square_avg - grad_avg**2) + eps``,
    otherwise ``avg = sqrt(square_avg) + eps``; with momentum,
    ``buf = momentum * buf + g / avg`` and ``p -= lr * buf``, otherwise ``p -= lr * g / avg``.
    A parameter's state is torch's: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0)
    and ``grad_avg`` (centered), zeros at its first step.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        As for ``Adam``.
    lr : float
        Learning rate (default 1e-2).
    alpha : float
        Smoothing constant of the mean of squares (default 0.99).
    eps : float
        Added to the denominator (default 1e-8).
    weight_decay : float
        L2 penalty added to the gradient (default 0).
    momentum : float
        Momentum factor (default 0).
    centered : bool
        Normalize by the estimated variance of the gradient rather than its second moment
        (default False).
    maximize : bool
        Ascend instead of descend (default False).
    master_weights, skip_nonfinite, max_grad_norm, stochastic_rounding, seed :
        As for ``Adam``.

    Raises
    ------
    TypeError, ValueError
        As for ``Adam``, with torch's messages.
    """

    _state_arrays = ("square_avg", "grad_avg", "momentum_buffer", "master_param")
    _required_arrays = ("square_avg",)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
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
                "alpha": alpha,
                "eps": eps,
                "weight_decay": weight_decay,
                "momentum": momentum,
                "centered": centered,
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
        """Validated as torch.optim.RMSprop does."""
        lr = real(group["lr"], "lr")
        alpha = real(group["alpha"], "alpha")
        eps = real(group["eps"], "eps")
        weight_decay = real(group["weight_decay"], "weight_decay")
        momentum = real(group["momentum"], "momentum")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        return {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": bool(group["centered"]),
            "maximize": bool(group["maximize"]),
        }

    def _arrays(self, values: Mapping[str, Any]) -> dict[str, float]:
        arrays = {"square_avg": 0.0}
        if values["centered"]:
            arrays["grad_avg"] = 0.0
        if values["momentum"] > 0.0:
            arrays["momentum_buffer"] = 0.0
        return arrays

    @staticmethod
    def _hyper_tuple(values: Mapping[str, Any]) -> tuple:
        """A group's hyper-parameters in the order ``_core.rmsprop_step_sets`` reads them."""
        return (
            values["lr"],
            values["alpha"],
            values["eps"],
            values["weight_decay"],
            values["momentum"],
            values["centered"],
            values["maximize"],
        )

    def _native(self, params, grads, arrays, steps, fresh, hypers, options=None):
        return _rmsprop_step_sets(
            params,
            grads,
            arrays["square_avg"],
            arrays["grad_avg"],
            arrays["momentum_buffer"],
            steps,
            hypers,
            arrays["master_param"],
            options,
        )

    def _fast_call(self, group, lists, grads, t, options):
        params = group["params"]
        # None where the step keeps no such state: refused if the options changed since
        nones = [None] * len(params)
        square_avgs, grad_avgs, buffers, masters = lists
        return _rmsprop_step_sets(
            params,
            grads,
            square_avgs,
            grad_avgs if grad_avgs is not None else nones,
            buffers if buffers is not None else nones,
            t,
            self._hyper_tuple(group),
            masters,
            options,
        )
