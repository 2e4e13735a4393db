"""Adam and AdamW (``torch.optim.Adam`` / ``AdamW``) on NumPy arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import _core
from ..scaling import StepReport
from .base import Grads, Optimizer, Params
from .validation import REFUSED, adam_family

__all__ = ["Adam", "AdamW"]

_adam_step_sets = _core.adam_step_sets


class Adam(Optimizer):
    """Adam (and, with ``decoupled_weight_decay=True``, AdamW) on NumPy arrays, in place.

    Names, defaults, parameter groups and ``state_dict`` layout follow ``torch.optim.Adam``: a
    parameter's state holds ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad,
    ``max_exp_avg_sq``.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to optimize (C-contiguous, writable, float32, float64, float16 or bfloat16,
        dtypes mixed freely, 16-bit ones with float32 state; views into a larger buffer are
        fine), or parameter groups: dicts with ``'params'`` and any hyper-parameters
        that differ from the defaults.
    lr : float
        Learning rate (default 1e-3).
    betas : tuple of float
        Decay rates of the first and second moment estimates (default (0.9, 0.999)).
    eps : float
        Added to the denominator (default 1e-8).
    weight_decay : float
        L2 penalty added to the gradient (default 0), or decoupled decay with
        ``decoupled_weight_decay``.
    amsgrad : bool
        Use the running maximum of the second moment (default False).
    maximize : bool
        Ascend instead of descend (default False).
    bias_correction : bool
        Divide the moments by ``1 - beta**step`` (default True).
    decoupled_weight_decay : bool
        Decay the parameters directly, as AdamW does (default False).
    eps_mode : {"torch", "keras"}
        Where ``eps`` enters the update. ``"torch"`` (default), as ``torch.optim.Adam``:
        ``p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)``. ``"keras"``, as
        ``tf.keras.optimizers.Adam``: ``p -= lr * sqrt(bc2) / bc1 * m / (sqrt(v) + eps)``, with
        ``bc1 = 1 - beta1**t`` and ``bc2 = 1 - beta2**t``. Keras's eps is in effect
        ``eps * sqrt(bc2)`` in torch's terms: the two differ where ``sqrt(v)`` is comparable to
        eps (tiny gradients, early steps).
    master_weights : bool
        Keep a float32 master copy of each float16/bfloat16 parameter (state key
        ``'master_param'``, made from the parameter at its first step): the update reads and
        writes it, and the parameter is written as its rounding in the same pass.
    skip_nonfinite : bool
        Before writing, look at all gradients of the step: if any is inf or NaN, change nothing
        (parameters, state, step counts) and report the step as skipped.
    max_grad_norm : float, optional
        Clip the global L2 norm of all the step's (unscaled) gradients to this, as torch's
        ``clip_grad_norm_``, inside the update.
    stochastic_rounding, seed : bool, int
        Round bfloat16 parameters stochastically (unbiased) with random bits keyed by (seed,
        step, element index): reproducible on every ISA and thread count. Excludes
        ``master_weights``.

    Raises
    ------
    TypeError, ValueError
        For a bad hyper-parameter (torch's messages), a parameter that is not a writable,
        C-contiguous float32/float64 ndarray, or a parameter given twice or sharing memory with
        another.

    Notes
    -----
    ``step(grads)`` updates the parameters with one native call per group and dtype. Change a
    group's hyper-parameters (``opt.param_groups[0]['lr'] = x``) between steps freely; add
    parameters with ``add_param_group``, not by editing a group's ``'params'`` list.
    """

    _state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "master_param")
    _required_arrays = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        bias_correction: bool = True,
        decoupled_weight_decay: bool = False,
        eps_mode: str = "torch",
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
                "amsgrad": amsgrad,
                "maximize": maximize,
                "bias_correction": bias_correction,
                "decoupled_weight_decay": decoupled_weight_decay,
                "eps_mode": eps_mode,
            },
            master_weights=master_weights,
            skip_nonfinite=skip_nonfinite,
            max_grad_norm=max_grad_norm,
            stochastic_rounding=stochastic_rounding,
            seed=seed,
        )

    @staticmethod
    def _validate(group: Mapping[str, Any]) -> dict[str, Any]:
        """Validated as torch.optim.Adam does."""
        eps_mode = group.get("eps_mode", "torch")  # a torch group has none
        if eps_mode not in ("torch", "keras"):
            raise ValueError(f"eps_mode must be 'torch' or 'keras', got {eps_mode!r}")
        return {
            **adam_family(group),
            "amsgrad": bool(group["amsgrad"]),
            "bias_correction": bool(group["bias_correction"]),
            "decoupled_weight_decay": bool(group["decoupled_weight_decay"]),
            "eps_mode": eps_mode,
        }

    def _arrays(self, values: Mapping[str, Any]) -> dict[str, float]:
        if values["amsgrad"]:
            return {"exp_avg": 0.0, "exp_avg_sq": 0.0, "max_exp_avg_sq": 0.0}
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}

    @staticmethod
    def _hyper_tuple(values: Mapping[str, Any]) -> tuple:
        """A group's hyper-parameters in the order ``_core.adam_step_sets`` reads them."""
        beta1, beta2 = values["betas"]
        return (
            values["lr"],
            beta1,
            beta2,
            values["eps"],
            values["weight_decay"],
            values["amsgrad"],
            values["maximize"],
            values["decoupled_weight_decay"],
            values["bias_correction"],
            values["eps_mode"] == "keras",
        )

    def _native(self, params, grads, arrays, steps, fresh, hypers, options=None) -> StepReport:
        return _adam_step_sets(
            params,
            grads,
            arrays["exp_avg"],
            arrays["exp_avg_sq"],
            arrays["max_exp_avg_sq"],
            steps,
            hypers,
            arrays["master_param"],
            options,
        )

    def step(self, grads: Grads, grad_scale: float = 1.0) -> StepReport:
        # Optimizer.step with the cached native call written inline rather than in _fast_call:
        # one Python call fewer (~50 ns) on the path that bounds small-tensor training loops.
        fast = self._fast
        options = self._options if grad_scale == 1.0 else self._options_for(grad_scale)
        if fast is not None:
            group = fast.group
            t = fast.t + 1
            exp_avgs, exp_avg_sqs, maxes, masters = fast.lists
            try:
                beta1, beta2 = group["betas"]
                report = _adam_step_sets(
                    group["params"],
                    grads,
                    exp_avgs,
                    exp_avg_sqs,
                    maxes if maxes is not None else fast.no_maxes,
                    t,
                    (
                        group["lr"],
                        beta1,
                        beta2,
                        group["eps"],
                        group["weight_decay"],
                        group["amsgrad"],
                        group["maximize"],
                        group["decoupled_weight_decay"],
                        group["bias_correction"],
                        group["eps_mode"] == "keras",
                    ),
                    masters,
                    options,
                )
            except REFUSED:
                pass
            else:
                if not report.skipped:
                    fast.t = t  # the state dicts' 'step' catch up in _sync_steps
                return report
        return self._step_general(grads, options)

    step.__doc__ = Optimizer.step.__doc__


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``): default weight_decay 1e-2.

    Same parameters as ``Adam``; every group has ``decoupled_weight_decay=True``.
    """

    _fixed: ClassVar[dict[str, Any]] = {"decoupled_weight_decay": True}

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        bias_correction: bool = True,
        eps_mode: str = "torch",
        master_weights: bool = False,
        skip_nonfinite: bool = False,
        max_grad_norm: float | None = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            bias_correction=bias_correction,
            decoupled_weight_decay=True,
            eps_mode=eps_mode,
            master_weights=master_weights,
            skip_nonfinite=skip_nonfinite,
            max_grad_norm=max_grad_norm,
            stochastic_rounding=stochastic_rounding,
            seed=seed,
        )
