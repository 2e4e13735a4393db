"""Adagrad (``torch.optim.Adagrad``) on NumPy arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _core
from .base import Optimizer, Params
from .validation import real

__all__ = ["Adagrad"]

_adagrad_step_sets = _core.adagrad_step_sets


class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``) on NumPy arrays, in place.

    Per element, at step ``t`` (1-based, per parameter): ``clr = lr / (1 + (t - 1) * lr_decay)``;
    ``g = -g`` if maximize; ``g += weight_decay * p``; ``sum += g * g``;
    ``p -= clr * g / (sqrt(sum) + eps)``. A parameter's state, ``{'step', 'sum'}``, is created
    with the parameter (``sum`` filled with ``initial_accumulator_value``), as torch does.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        As for ``Adam``.
    lr : float
        Learning rate (default 1e-2).
    lr_decay : float
        Learning-rate decay (default 0).
    weight_decay : float
        L2 penalty added to the gradient (default 0).
    initial_accumulator_value : float
        Starting value of the sum of squared gradients (default 0). A group's own value is
        honoured (torch uses the constructor's for every group).
    eps : float
        Added to the denominator (default 1e-10).
    maximize : bool
        Ascend instead of descend (default False).
    master_weights, skip_nonfinite, max_grad_norm :
        As for ``Adam``: float32 master copies of 16-bit parameters, skipping steps with inf/NaN
        gradients, global-norm clipping.
    stochastic_rounding, seed :
        As for ``Adam`` (bfloat16 parameters).

    Raises
    ------
    TypeError, ValueError
        As for ``Adam``, with torch's messages.
    """

    _state_arrays = ("sum", "master_param")
    _required_arrays = ("sum",)
    _eager_state = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
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
                "lr_decay": lr_decay,
                "weight_decay": weight_decay,
                "initial_accumulator_value": initial_accumulator_value,
                "eps": eps,
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
        """Validated as torch.optim.Adagrad does."""
        lr = real(group["lr"], "lr")
        lr_decay = real(group["lr_decay"], "lr_decay")
        weight_decay = real(group["weight_decay"], "weight_decay")
        initial = real(group["initial_accumulator_value"], "initial_accumulator_value")
        eps = real(group["eps"], "eps")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        return {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial,
            "eps": eps,
            "maximize": bool(group["maximize"]),
        }

    def _arrays(self, values: Mapping[str, Any]) -> dict[str, float]:
        return {"sum": values["initial_accumulator_value"]}

    @staticmethod
    def _hyper_tuple(values: Mapping[str, Any]) -> tuple:
        """A group's hyper-parameters in the order ``_core.adagrad_step_sets`` reads them."""
        return (
            values["lr"],
            values["lr_decay"],
            values["weight_decay"],
            values["eps"],
            values["maximize"],
        )

    def _native(self, params, grads, arrays, steps, fresh, hypers, options=None):
        return _adagrad_step_sets(
            params, grads, arrays["sum"], steps, hypers, arrays["master_param"], options
        )

    def _fast_call(self, group, lists, grads, t, options):
        # Only the first step reads initial_accumulator_value, but a bad one is refused on every
        # step, as the general path (which this refusal falls back to) refuses it.
        if not group["initial_accumulator_value"] >= 0.0:
            raise ValueError("initial_accumulator_value")
        return _adagrad_step_sets(
            group["params"], grads, lists[0], t, self._hyper_tuple(group), lists[1], options
        )
