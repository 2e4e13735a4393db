"""``TwoMoments``: what NAdam and RAdam share with Adam's layout (state ``step``, ``exp_avg``,
``exp_avg_sq``; L2 or decoupled weight decay), and their native ``*_step_sets`` call shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import Optimizer
from .validation import adam_family, real

__all__ = ["TwoMoments"]


class TwoMoments(Optimizer):
    """Base of optimizers with Adam's two moments. A subclass sets ``_extra``, its own
    hyper-parameters (between weight_decay and decoupled_weight_decay in the native tuple, each
    validated as ``>= 0`` with torch's message), and defines ``_native`` and ``_fast_call`` with
    ``call(entry, ...)`` (``_native`` is called on the class by ``fastadam.torch``, so it names
    its entry itself)."""

    _state_arrays = ("exp_avg", "exp_avg_sq", "master_param")
    _required_arrays = ("exp_avg", "exp_avg_sq")
    _extra: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _validate(cls, group: Mapping[str, Any]) -> dict[str, Any]:
        values = adam_family(group)
        for name in cls._extra:
            value = real(group[name], name)
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name} value: {value}")
            values[name] = value
        values["decoupled_weight_decay"] = bool(group["decoupled_weight_decay"])
        return values

    def _arrays(self, values: Mapping[str, Any]) -> dict[str, float]:
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}

    @classmethod
    def _hyper_tuple(cls, values: Mapping[str, Any]) -> tuple:
        beta1, beta2 = values["betas"]
        return (
            values["lr"],
            beta1,
            beta2,
            values["eps"],
            values["weight_decay"],
            *(values[name] for name in cls._extra),
            values["decoupled_weight_decay"],
            values["maximize"],
        )


def general_call(entry, params, grads, arrays, steps, hypers, options):
    """``entry`` over the general step's flat lists (``Optimizer._native``)."""
    return entry(
        params,
        grads,
        arrays["exp_avg"],
        arrays["exp_avg_sq"],
        steps,
        hypers,
        arrays["master_param"],
        options,
    )


def cached_call(entry, params, lists, grads, t, hyper, options):
    """``entry`` over the cached lists of the steady-state path (``Optimizer._fast_call``)."""
    exp_avgs, exp_avg_sqs, masters = lists
    return entry(params, grads, exp_avgs, exp_avg_sqs, t, hyper, masters, options)
