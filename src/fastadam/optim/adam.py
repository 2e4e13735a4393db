"""Adam and AdamW (``torch.optim.Adam`` / ``AdamW``) on NumPy arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .. import _core, lowbit
from ..scaling import StepReport
from . import lowbit_state
from .base import Grads, Optimizer, Params, ParamState
from .validation import REFUSED, adam_family, check_state_dict_layout, loaded_state

__all__ = ["Adam", "AdamW"]

_adam_step_sets = _core.adam_step_sets
_adam8bit_step_sets = _core.adam8bit_step_sets
_FLOAT_ARRAYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
# The cached step reads eps_mode through this table: a value the general path would refuse is
# a KeyError (or a TypeError), which sends the step down that path to be refused there.
_KERAS_OF_EPS_MODE = {"torch": False, "keras": True}


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
        Before writing, look at all gradients of the step: if any is inf or NaN, or would be
        once divided by ``grad_scale`` (possible only for ``grad_scale`` < 1), or their norm
        overflows float64, change nothing (parameters, state, step counts) and report the
        step as skipped.
    max_grad_norm : float, optional
        Clip the global L2 norm of all the step's (unscaled) gradients to this, as torch's
        ``clip_grad_norm_``, inside the update.
    stochastic_rounding, seed : bool, int
        Round bfloat16 parameters stochastically (unbiased) with random bits keyed by (seed,
        step, element index): reproducible on every ISA and thread count. Excludes
        ``master_weights``. ``seed`` also keys the rounding of 8-bit state.
    state_bits : {32, 8}
        8: block-wise 8-bit ``exp_avg``/``exp_avg_sq`` (and ``max_exp_avg_sq``), about 2 bytes
        per parameter instead of 8, for every float32/float16/bfloat16 parameter of at least
        ``min_8bit_size`` elements (``fastadam.optim.lowbit_state`` describes the state keys,
        ``fastadam.lowbit`` the codes). Default 32 (float state).
    min_8bit_size : int
        Parameters smaller than this keep float state with ``state_bits=8``: float32, float64
        for a float64 parameter (default 4096).

    Raises
    ------
    TypeError, ValueError
        For a bad hyper-parameter (torch's messages), a parameter that is not a writable,
        C-contiguous float32, float64, float16 or bfloat16 ndarray, or a parameter given twice
        or sharing memory with another.

    Notes
    -----
    ``step(grads)`` updates the parameters with one native call for all groups and dtypes.
    Change a group's hyper-parameters (``opt.param_groups[0]['lr'] = x``) between steps
    freely; add parameters with ``add_param_group``, not by editing a group's ``'params'``
    list.
    """

    _state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "master_param")
    _required_arrays = ("exp_avg", "exp_avg_sq")
    _checkpoint_arrays = (*_state_arrays, *lowbit_state.CODED_ARRAYS, lowbit_state.VERSION_KEY)

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
        state_bits: int = 32,
        min_8bit_size: int = 4096,
    ) -> None:
        if isinstance(state_bits, bool) or state_bits not in (8, 32):
            raise ValueError(f"state_bits must be 8 or 32, got {state_bits!r}")
        if isinstance(min_8bit_size, bool) or not isinstance(min_8bit_size, (int, np.integer)):
            raise TypeError(f"min_8bit_size must be an int, got {min_8bit_size!r}")
        if min_8bit_size < 0:
            raise ValueError(f"min_8bit_size must be >= 0, got {min_8bit_size}")
        self.state_bits = int(state_bits)
        self.min_8bit_size = int(min_8bit_size)
        if self.state_bits == 8:
            # The coded arrays travel with the float ones through the step's lists.
            self._state_arrays = (*type(self)._state_arrays, *lowbit_state.CODED_ARRAYS)
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
        # (fastadam.torch calls this with self None: float state only)
        if getattr(self, "state_bits", 32) == 8:
            return _adam8bit_step_sets(
                params,
                grads,
                *(arrays[name] for name in _FLOAT_ARRAYS),
                *(arrays[name] for name in lowbit_state.CODED_ARRAYS),
                steps,
                hypers,
                arrays["master_param"],
                options,
            )
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

    @classmethod
    def _bound_native(cls, params, arrays, fresh):
        # The float-state entry itself, its state lists bound: no per-step lookups.
        m, v, vmax, master = (arrays[k] for k in _FLOAT_ARRAYS + ("master_param",))

        def call(grads, steps, hypers, options):
            return _adam_step_sets(params, grads, m, v, vmax, steps, hypers, master, options)

        return call

    def step(self, grads: Grads, grad_scale: float = 1.0) -> StepReport:
        # Optimizer.step with the cached native call written inline rather than in _fast_call:
        # one Python call fewer (~50 ns) on the path that bounds small-tensor training loops.
        if self.state_bits == 8:
            return Optimizer.step(self, grads, grad_scale)
        fast = self._fast
        options = self._options if grad_scale == 1.0 else self._options_for(grad_scale)
        if fast is not None and fast.describes(self.param_groups, grads):
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
                        _KERAS_OF_EPS_MODE[group["eps_mode"]],  # refuses a bad mode
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

    # -- 8-bit state (state_bits=8; lowbit_state.py) -------------------------------------------

    def _fast_call(self, group, lists, grads, t, options) -> StepReport:
        """The cached step of an optimizer with 8-bit state: ``lists`` follow
        ``self._state_arrays`` (the float state, the master copies, the coded arrays)."""
        n = len(group["params"])
        names = self._state_arrays
        by_name = {name: lst if lst is not None else [None] * n for name, lst in zip(names, lists)}
        return _adam8bit_step_sets(
            group["params"],
            grads,
            *(by_name[name] for name in _FLOAT_ARRAYS),
            *(by_name[name] for name in lowbit_state.CODED_ARRAYS),
            t,
            self._hyper_tuple(self._validate(group)),
            by_name["master_param"],
            options,
        )

    def _set_precision_options(self, *args) -> None:
        super()._set_precision_options(*args)
        if self.state_bits == 8 and self._options is None and self.seed != 0:
            # the seed keys the 8-bit state's rounding even when nothing else asks for options
            self._options = (1.0, None, False, False, self.seed)

    def _wants_8bit(self, p: np.ndarray) -> bool:
        return lowbit_state.wants_8bit(p, self.state_bits, self.min_8bit_size)

    def _state_of(self, p, needed, created, requests):
        if not self._wants_8bit(p):
            return super()._state_of(p, needed, created, requests)
        # As Optimizer._state_of, with the coded arrays made here (they are not float arrays).
        entry = self._state.get(id(p))
        if entry is None or entry[0] is not p:
            state = ParamState(self, step=0)
            self._state[id(p)] = (p, state)
            created.append((id(p), None))
        else:
            state = entry[1]
            self._restart_if_emptied(p, state, created)
        if self.master_weights and p.dtype.itemsize == 2 and "master_param" not in state:
            requests.append((state, "master_param", p, "param"))
            created.append((id(p), "master_param"))
        for name in needed:
            codes, scales = lowbit_state.coded_names(name)
            if codes not in state:
                lowbit_state.create(state, p, name)
                created += [(id(p), codes), (id(p), scales)]
        return state

    def _lists_of(self, states, needed):
        if self.state_bits != 8:
            return super()._lists_of(states, needed)
        lists = {}
        for name in needed:
            for key in (name, *lowbit_state.coded_names(name)):
                lists[key] = [dict.get(s, key) for s in states]
        if self.master_weights:
            lists["master_param"] = [dict.get(s, "master_param") for s in states]
        return lists

    def state_dict(self, dequantize: bool = False) -> dict[str, Any]:
        """``Optimizer.state_dict``; a parameter with 8-bit state holds its coded arrays and
        ``lowbit_version``, or with ``dequantize=True`` float32 ``exp_avg``/``exp_avg_sq``
        (/``max_exp_avg_sq``) decoded from them: the layout ``torch.optim.Adam`` loads."""
        sd = super().state_dict()
        if self.state_bits == 8:
            params = self._params()
            sd["state"] = {
                k: lowbit_state.exported(s, params[k].shape, dequantize)
                for k, s in sd["state"].items()
            }
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """``Optimizer.load_state_dict``, taking 8-bit or float state for every parameter: float
        state is quantized (to nearest) where this optimizer keeps 8-bit state, 8-bit state
        decoded where it keeps float state. Everything is checked before anything changes."""
        check_state_dict_layout(state_dict)
        by_index = {}
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            saved_params = saved.get("params", []) if isinstance(saved, Mapping) else []
            by_index.update((int(i), p) for i, p in zip(saved_params, group["params"]))
        plain, coded = {}, {}
        for key, saved in state_dict["state"].items():
            p = by_index.get(int(key))
            if p is None or not isinstance(saved, Mapping):
                plain[key] = saved  # the base class names the problem
                continue
            where = f"state[{int(key)}]"
            entry = lowbit_state.dequantized(saved, p, where)
            if not self._wants_8bit(p):
                for name in self._required_arrays:
                    if entry.get(name) is None:
                        raise ValueError(f"{where} has no {name!r}")
                plain[key] = entry
                continue
            arrays = {}
            for name in _FLOAT_ARRAYS:
                value = entry.pop(name, None)
                if value is not None:
                    value = loaded_state(value, p, f"{where}[{name!r}]")
                    codes, scales = lowbit_state.coded_names(name)
                    arrays[codes], arrays[scales] = lowbit.encode(value, name)
            for name in self._required_arrays:
                if lowbit_state.coded_names(name)[0] not in arrays:
                    raise ValueError(f"{where} has no {name!r}")
            plain[key] = entry
            coded[id(p)] = arrays
        required = self._required_arrays
        self._required_arrays = ()  # the coded parameters' float arrays are made below
        try:
            super().load_state_dict({**state_dict, "state": plain})
        finally:
            self._required_arrays = required
        for key, arrays in coded.items():
            self._state[key][1].update(arrays)


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
        state_bits: int = 32,
        min_8bit_size: int = 4096,
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
            state_bits=state_bits,
            min_8bit_size=min_8bit_size,
        )
