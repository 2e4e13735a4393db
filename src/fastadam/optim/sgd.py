"""SGD with momentum (``torch.optim.SGD``) on NumPy arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _core
from .base import Optimizer, Params
from .validation import real

__all__ = ["SGD"]

_sgd_step_sets = _core.sgd_step_sets


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (``torch.optim.SGD``) on NumPy arrays, in place.

    Per element: ``g = -g`` if maximize; ``g += weight_decay * p``; with momentum,
    ``buf = g`` at a parameter's first step and ``momentum * buf + (1 - dampening) * g`` after,
    then ``g = g + momentum * buf`` (Nesterov) or ``g = buf``; ``p -= lr * g``. A parameter's
    state is ``{'momentum_buffer': array}`` once it has stepped with momentum, and nothing without
    momentum, as in torch.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        As for ``Adam``.
    lr : float
        Learning rate (default 1e-3).
    momentum : float
        Momentum factor (default 0).
    dampening : float
        Dampening of the momentum (default 0).
    weight_decay : float
        L2 penalty added to the gradient (default 0).
    nesterov : bool
        Nesterov momentum (default False); needs momentum > 0 and dampening 0.
    maximize : bool
        Ascend instead of descend (default False).
    master_weights, skip_nonfinite, max_grad_norm :
        As for ``Adam``: float32 master copies of 16-bit parameters, skipping steps with inf/NaN
        gradients, global-norm clipping.

    Raises
    ------
    TypeError, ValueError
        As for ``Adam``, with torch's messages.
    """

    _state_arrays = ("momentum_buffer", "master_param")
    _counts_steps = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        master_weights: bool = False,
        skip_nonfinite: bool = False,
        max_grad_norm: float | None = None,
    ) -> None:
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": dampening,
                "weight_decay": weight_decay,
                "nesterov": nesterov,
                "maximize": maximize,
            },
            master_weights=master_weights,
            skip_nonfinite=skip_nonfinite,
            max_grad_norm=max_grad_norm,
        )

    @staticmethod
    def _validate(group: Mapping[str, Any]) -> dict[str, Any]:
        """Validated as torch.optim.SGD does."""
        lr = real(group["lr"], "lr")
        momentum = real(group["momentum"], "momentum")
        dampening = real(group["dampening"], "dampening")
        weight_decay = real(group["weight_decay"], "weight_decay")
        nesterov = bool(group["nesterov"])
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0.0 or dampening != 0.0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        return {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": bool(group["maximize"]),
        }

    def _arrays(self, values: Mapping[str, Any]) -> dict[str, float]:
        # A new buffer's contents do not matter: its first step copies the gradient into it.
        return {"momentum_buffer": 0.0} if values["momentum"] != 0.0 else {}

    @staticmethod
    def _hyper_tuple(values: Mapping[str, Any]) -> tuple:
        """A group's hyper-parameters in the order ``_core.sgd_step_sets`` reads them."""
        return (
            values["lr"],
            values["momentum"],
            values["dampening"],
            values["weight_decay"],
            values["nesterov"],
            values["maximize"],
        )

    def _native(self, params, grads, arrays, steps, fresh, hypers, options=None):
        return _sgd_step_sets(
            params,
            grads,
            arrays["momentum_buffer"],
            fresh,
            hypers,
            arrays["master_param"],
            options,
        )

    def _fast_call(self, group, lists, grads, t, options):
        params = group["params"]
        # None without momentum: refused if momentum was switched on since
        buffers = lists[0] if lists[0] is not None else [None] * len(params)
        return _sgd_step_sets(
            params, grads, buffers, False, self._hyper_tuple(group), lists[1], options
        )
