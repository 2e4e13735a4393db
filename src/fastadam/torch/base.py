"""``Optimizer``: a ``torch.optim.Optimizer`` whose step is one call of a fastadam native entry.

A subclass names a NumPy optimizer of ``fastadam.optim`` (which knows the hyper-parameters, their
validation, the state arrays and the native entry) and its ``torch.optim`` counterpart (whose
constructor signature it takes)::

    class Adam(Optimizer, numpy_class=fastadam.optim.Adam, torch_class=torch.optim.Adam):
        "docstring"

Everything else (groups, hooks, ``zero_grad``, ``state_dict``) is torch's own. The step:

- reads every ``p.grad`` afresh and hands the native entry NumPy views of the tensors' own
  memory (parameters, gradients, state), never copies, in one call for all groups and dtypes;
- keeps, between steps, a plan: each parameter's NumPy view and state views, and one buffer of
  step counts that every ``state['step']`` (a 0-d tensor, torch's layout) is a view of. Each step
  checks the plan still describes the tensors (same parameter storage, same state dict and
  state tensors) and rebuilds it if not, so parameters moved by ``p.data = ...``, state
  replaced by ``opt.state[p] = ...`` or ``load_state_dict`` are honoured;
- leaves everything unchanged when the native entry refuses its input (it validates before
  writing), and bumps the autograd version counter of every tensor it wrote.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import operator
from collections.abc import Iterable
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.optim.optimizer as _torch_optimizer

from .. import _core
from ..optim import Optimizer as NumpyOptimizer
from ..optim.validation import REFUSED, as_step, check_loaded_master, user_message
from ..scaling import StepReport
from .memory import (
    MemoryOrder,
    allocate_state,
    grad_viewer,
    memory_order,
    numpy_dtypes,
    numpy_view,
    state_dtype,
)

__all__ = ["Optimizer"]

# torch.autograd.graph.increment_version without its Python wrapper (it takes a list as is).
_increment_version = torch._C._increment_version
_HALF = (torch.float16, torch.bfloat16)
# The NumPy base's optimizer-wide options and their defaults.
_PRECISION = {
    name: p.default
    for name, p in inspect.signature(NumpyOptimizer.__init__).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
}
_profiler_enabled = getattr(torch._C._autograd, "_profiler_enabled", None)
_global_pre_hooks = getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None)
_global_post_hooks = getattr(_torch_optimizer, "_global_optimizer_post_hooks", None)


# With another torch than the one this was written for, every step takes torch's own wrapper.
_ALWAYS_WRAP = None in (_profiler_enabled, _global_pre_hooks, _global_post_hooks)


def _hooked(step: Callable) -> Callable:
    """``step`` with torch's step hooks and profiler range, as ``Optimizer.profile_hook_step``
    adds them, except that the range (``record_function``, 10-20 us per call, more than a small
    model's whole update) is opened only while a profiler runs, and that a step without a
    closure tries the steady-state path first."""
    with_hooks = torch.optim.Optimizer.profile_hook_step(step)

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        if (
            _ALWAYS_WRAP
            or _global_pre_hooks
            or _global_post_hooks
            or self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or _profiler_enabled()
        ):
            return with_hooks(self, *args, **kwargs)
        if args or kwargs or not self._quick():
            out = step(self, *args, **kwargs)
        else:
            out = None
        self._optimizer_step_code()
        return out

    wrapper.hooked = True  # tells torch's Optimizer.__init__ not to wrap it again
    return wrapper


# Options of the NumPy classes that the torch layer does not have (it keeps float32 state):
# refused with a message rather than accepted and ignored.
_NUMPY_ONLY = {
    "state_bits": "8-bit state (state_bits=8) is in fastadam.Adam/AdamW for NumPy arrays only; "
    "fastadam.torch keeps float32 state",
    "min_8bit_size": "min_8bit_size goes with state_bits=8, which fastadam.torch does not have",
}


def _signature(numpy_class: type, torch_class: type) -> inspect.Signature:
    """torch's constructor signature, then the NumPy class's extra options as keyword-only
    (but those the torch layer does not have)."""
    theirs = inspect.signature(torch_class)
    params = list(theirs.parameters.values())
    tail = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for name, p in inspect.signature(numpy_class).parameters.items()
        if name not in theirs.parameters
        and name not in _NUMPY_ONLY
        and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    return theirs.replace(parameters=params + extra + tail, return_annotation=None)


def _numbers(group: dict) -> dict:
    """The group with tensor options (torch allows a tensor lr or betas, which schedulers update
    in place) read as Python numbers, for the NumPy class's validation."""
    out = None
    for key, value in group.items():
        if isinstance(value, torch.Tensor) or (
            type(value) is tuple and any(isinstance(x, torch.Tensor) for x in value)
        ):
            if out is None:
                out = dict(group)
            out[key] = _number(value, key)
    return group if out is None else out


def _number(value: Any, key: str) -> Any:
    if isinstance(value, tuple):
        return tuple(_number(x, key) for x in value)
    if not isinstance(value, torch.Tensor):
        return value
    if value.numel() != 1:
        raise ValueError(f"{key} as a tensor must have one element, got shape {tuple(value.shape)}")
    return value.item()


def _name(group: dict, gi: int, j: int) -> str:
    name = f"param_groups[{gi}]['params'][{j}]"
    names = group.get("param_names")
    return f"{name} ({names[j]!r})" if names and j < len(names) else name


class _Slot:
    """One parameter's place in the plan: its tensor and memory, its state dict, and the state
    tensors and their NumPy views by name."""

    __slots__ = (
        "bump",
        "fresh",
        "grad_view",
        "ids",
        "index",
        "order",
        "param",
        "recorded",
        "state",
        "tensors",
        "view",
        "views",
    )

    def __init__(self, param: torch.Tensor, order: MemoryOrder) -> None:
        self.param = param
        self.order = order
        self.view = numpy_view(param.detach() if order is None else param.detach().permute(order))
        self.grad_view = grad_viewer(param.dtype, order)
        self.state: dict | None = None
        self.ids: list[int] | None = None  # id() of each state value, to spot replacements
        self.tensors: dict[str, torch.Tensor] = {}
        self.views: dict[str, np.ndarray] = {}
        # Tensors whose autograd version a step bumps: the parameter and state tensors it did
        # not allocate (those share their buffer's version counter, bumped once per step).
        self.bump: list[torch.Tensor] = [param]
        self.index = -1  # position in the plan's step counts
        self.recorded: list = []  # watched() once the plan is built
        self.fresh = False  # state created, not yet stepped (SGD copies the gradient then)

    def adopt(self, name: str, t: torch.Tensor) -> None:
        self.tensors[name] = t
        self.views[name] = numpy_view(t if self.order is None else t.permute(self.order))
        self.bump.append(t)

    def watched(self) -> list[tuple[torch.Tensor, str, Any]]:
        """(tensor, method, value) for what the plan's NumPy views assume about the memory of
        the parameter and its state tensors: the same storage (``share_memory_()`` or
        ``.data = ...`` move it under the same tensor object, and the views would write to
        freed memory) and, for the parameter, the same layout (``p.data = p.data.t()`` on a
        square parameter keeps its pointer)."""
        p = self.param
        out = [(p, "data_ptr", p.data_ptr()), (p, "stride", p.stride())]
        out += [(t, "data_ptr", t.data_ptr()) for t in self.tensors.values()]
        return out

    def moved(self) -> bool:
        """Whether anything ``watched`` recorded when the plan was built has changed."""
        return any(getattr(t, method)() != value for t, method, value in self.recorded)


class _Quick:
    """A successful step's native-call lists, reused while nothing but the gradients changes.

    ``_core.unchanged`` makes the checks that nothing else changed in one native call (in Python
    they cost about 2 us, as much as the update of a small tensor): per group (the group, its
    option keys and values, its parameters); the parameters stepped, and the storage and layout
    of them and their state tensors (``_Slot.watched``);
    the items of the state mapping and of every stepped parameter's state dict (the objects are
    kept, so identities stay unique); the parameters without state (which must still have no
    gradient)."""

    __slots__ = (
        "arrays",
        "bump",
        "dicts",
        "fresh",
        "groups",
        "hypers",
        "native",
        "others",
        "params",
        "tensors",
        "viewers",
        "watched",
    )

    def __init__(self, native_class, state, groups, slots, others, params, arrays, hypers, bump):
        self.groups = tuple(groups)
        self.tensors = tuple(slot.param for slot in slots)
        self.watched = tuple(_chain(slot.recorded for slot in slots))
        viewers = [slot.grad_view for slot in slots]
        # None: every gradient is viewed by Tensor.numpy, mapped over the list in one pass.
        self.viewers = None if all(v is torch.Tensor.numpy for v in viewers) else viewers
        dicts = [state, *(slot.state for slot in slots if slot.state is not None)]
        self.dicts = tuple((d, tuple(_chain(d.items()))) for d in dicts)
        self.others = tuple(others)
        self.params = params
        self.arrays = arrays
        self.hypers = hypers
        self.bump = bump
        self.fresh = [False] * len(slots)
        self.native = native_class._bound_native(params, arrays, self.fresh)


_chain = itertools.chain.from_iterable
_unchanged = _core.unchanged
_tensor_numpy = torch.Tensor.numpy


class _Plan:
    __slots__ = ("bases", "counts", "counts_tensor", "hypers", "quick", "slots", "state")

    def __init__(
        self,
        state: Any,
        slots: dict[int, _Slot],
        counts: np.ndarray | None,
        bases: list[torch.Tensor],
    ) -> None:
        self.state = state  # the optimizer's state mapping it was built for
        self.slots = slots  # id(param) -> slot
        self.counts = counts  # step counts, one per slot; every state['step'] is a view
        self.counts_tensor = None if counts is None else torch.from_numpy(counts)
        # The buffers holding the state this plan allocated (their views share their version).
        self.bases = bases if counts is None else [*bases, self.counts_tensor]
        self.hypers: dict[int, tuple] = {}  # id(group) -> (group, options, hyper, used)
        self.quick: _Quick | None = None


_SCALARS = (int, float, bool, str, type(None))


def _immutable(options: tuple) -> bool:
    """Whether a group's option values can be compared to spot a change (a tensor lr, say,
    changes in place, so a group holding one is validated at every step)."""
    return all(
        isinstance(v, _SCALARS) or (type(v) is tuple and all(isinstance(x, _SCALARS) for x in v))
        for v in options
    )


class Optimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` stepping CPU tensors in place with fastadam's native kernels.

    Not used directly: ``Adam``, ``AdamW``, ``SGD`` and ``Adagrad`` are subclasses. A subclass
    passes ``numpy_class`` (a ``fastadam.optim`` optimizer: hyper-parameters, validation,
    state arrays, native entry) and ``torch_class`` (its ``torch.optim`` counterpart, whose
    constructor signature and defaults it takes, plus the NumPy class's extra options as
    keyword-only arguments). ``foreach`` and ``fused`` are accepted and ignored (the step is
    always one fused native call); ``capturable`` and ``differentiable`` must be False.

    The NumPy classes' optimizer-wide options are keyword arguments here too and mean the same:
    ``master_weights`` (a float32 copy of each 16-bit parameter, in its state as
    ``'master_param'``), ``stochastic_rounding`` and ``seed`` (bfloat16), ``max_grad_norm``
    (global gradient clipping in the native pre-pass) and ``skip_nonfinite`` (a step whose
    gradients hold an inf or NaN changes nothing). float16 and bfloat16 parameters keep float32
    state; stochastic rounding's element index is the position in the parameter's memory (for
    a channels_last parameter, its memory order). ``last_report`` is the last step's
    ``fastadam.StepReport`` (skipped, grad_norm), None before the first step.
    ``torch.amp.GradScaler`` hands the optimizer its scale and inf flag
    (``_step_supports_amp_scaling``): the native call unscales, or the step is skipped (its
    report's grad_norm is then None: no gradient was read). Unlike torch's fused Adam, the
    step leaves ``p.grad`` scaled; call ``scaler.unscale_(opt)`` before ``scaler.step(opt)``
    where gradients are read after the step.
    """

    # torch.amp.GradScaler sets ``grad_scale`` and ``found_inf`` on the optimizer and calls
    # step(), which unscales inside the native call (or skips the step), rather than unscaling
    # the gradients itself first: 16-bit gradients work too.
    _step_supports_amp_scaling = True

    _numpy: ClassVar[type[NumpyOptimizer]]
    _torch: ClassVar[type[torch.optim.Optimizer]]
    _init_signature: ClassVar[inspect.Signature]

    def __init_subclass__(
        cls,
        numpy_class: type[NumpyOptimizer] | None = None,
        torch_class: type[torch.optim.Optimizer] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if numpy_class is None or torch_class is None:
            if "__init__" in cls.__dict__:
                cls.__signature__ = None  # a user subclass: inspect reads its own __init__
            return
        cls._numpy = numpy_class
        cls._torch = torch_class
        cls._init_signature = cls.__signature__ = _signature(numpy_class, torch_class)

    def __init__(self, params: Any, *args: Any, **kwargs: Any) -> None:
        for name, why in _NUMPY_ONLY.items():
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}: {why}")
        bound = self._init_signature.bind(params, *args, **kwargs)
        bound.apply_defaults()
        defaults = dict(bound.arguments)
        del defaults["params"]
        # Optimizer-wide options of the NumPy base (mixed precision, the gradient pre-pass), not
        # group entries: validated and kept as the NumPy optimizers keep them.
        precision = {k: defaults.pop(k) for k in list(defaults) if k in _PRECISION}
        self._set_precision(precision)
        for flag in ("capturable", "differentiable"):
            if defaults.get(flag):
                raise ValueError(
                    f"{type(self).__name__}: {flag}=True is not supported (fastadam's step is "
                    "one native call on CPU tensors, outside autograd and CUDA graphs)"
                )
        defaults.update(self._numpy._fixed)
        self._numpy._validate(_numbers(defaults))  # torch's messages for a bad hyper-parameter
        self._plan: _Plan | None = None
        self.last_report: StepReport | None = None
        self._set_option_keys(defaults)
        super().__init__(params, defaults)

    def _set_option_keys(self, defaults: dict[str, Any]) -> None:
        """The group options compared to spot a group's changes: their keys (for the native
        steady-state check) and a getter of their values."""
        self._option_keys = tuple(defaults)
        self._group_options = operator.itemgetter(*self._option_keys)

    def _set_precision(self, given: dict[str, Any]) -> None:
        """Sets ``master_weights``, ``skip_nonfinite``, ``max_grad_norm``,
        ``stochastic_rounding``, ``seed`` and the native options tuple ``_options`` with the
        NumPy base's own checks."""
        NumpyOptimizer._set_precision_options(self, **{**_PRECISION, **given})

    def _precision(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _PRECISION}

    # -- groups, pickling, state_dict --------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group``, then fastadam's checks: a CPU tensor of a supported
        dtype, dense (any dimension order), valid hyper-parameters. Adagrad's state is created
        here, as torch creates it in the constructor."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            group.update(self._numpy._fixed)
            self._numpy._validate(_numbers(group))
            gi = len(self.param_groups) - 1
            for j, p in enumerate(group["params"]):
                self._check_param(p, _name(group, gi, j))
        except BaseException:
            self.param_groups.pop()
            raise
        self._plan = None
        if self._numpy._eager_state:
            self._prepare(eager=group["params"])

    def __getstate__(self) -> dict[str, Any]:
        out = super().__getstate__()
        out["_precision_options"] = self._precision()
        return out

    def __setstate__(self, state: dict[str, Any]) -> None:
        precision = state.pop("_precision_options", None)
        if precision is not None:  # an unpickled optimizer (load_state_dict keeps the options)
            self._set_precision(precision)
        super().__setstate__(state)
        self._set_option_keys(self.defaults)
        for group in self.param_groups:  # groups saved by torch lack fastadam's extra options
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        self._plan = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict`` (this class's or its torch counterpart's state dicts),
        then every state tensor copied into fresh memory laid out like its parameter, so the
        optimizer never shares memory with the dict it was given. torch casts loaded state to
        its parameter's dtype; the float32 state of a 16-bit parameter is copied from the dict's
        own tensors instead, so it keeps its precision.

        A refused dict (a bad hyper-parameter in any group, state of the wrong shape or type, a
        bad 'step') raises with the optimizer as it was: torch's loader replaces the state and
        groups before they can be checked, so the previous ones are put back."""
        wide: dict[int, Any] = {}
        saved_ids = [i for g in state_dict.get("param_groups", ()) for i in g.get("params", ())]
        ours = [p for g in self.param_groups for p in g["params"]]
        for index, p in zip(saved_ids, ours):
            saved = state_dict.get("state", {}).get(index)
            if p.dtype in _HALF and isinstance(saved, dict):
                wide[id(p)] = saved
        previous = self.state, self.param_groups, self._plan
        super().load_state_dict(state_dict)
        try:
            for group in self.param_groups:
                self._numpy._validate(_numbers(group))
            self._check_loaded_state()
            self._prepare(rehome=True, sources=wide)
        except BaseException:
            self.state, self.param_groups, self._plan = previous
            raise

    def _check_loaded_state(self) -> None:
        """What the NumPy class's loader checks and torch's does not: every loaded state holds
        the entries its next step reads (else the step would silently start them afresh), and
        a 'master_param' only where master copies are kept."""
        numpy_class = self._numpy
        for gi, group in enumerate(self.param_groups):
            for j, p in enumerate(group["params"]):
                st = self.state.get(p)
                if not st:
                    continue
                name = _name(group, gi, j)
                wanted = ("step",) if numpy_class._counts_steps else ()
                for key in (*wanted, *numpy_class._required_arrays):
                    if st.get(key) is None:
                        raise ValueError(f"state of {name} has no {key!r}")
                if st.get("master_param") is not None:
                    check_loaded_master(
                        p.dtype in _HALF, p.dtype, self.master_weights, f"state of {name}"
                    )

    # -- the step ------------------------------------------------------------------------------

    @_hooked
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient, in place, with one native call.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (run with gradients enabled).

        Returns
        -------
        The closure's loss, or None.

        Raises
        ------
        TypeError, ValueError, RuntimeError
            Before anything is changed: a bad hyper-parameter in a group (torch's messages), a
            parameter that is not a dense CPU tensor of a supported dtype, a sparse gradient
            (RuntimeError, as torch), a gradient of another dtype, shape or device.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._update()
        return loss

    def _scaling(self) -> tuple[bool, Any]:
        """(skip, native options) for this step: GradScaler's ``found_inf`` skips it, its
        ``grad_scale`` unscales the gradients in the native call."""
        found_inf = self.__dict__.get("found_inf")
        if found_inf is not None and float(found_inf) != 0.0:
            return True, None
        scale = self.__dict__.get("grad_scale")
        if scale is None:
            return False, self._options
        return False, NumpyOptimizer._options_for(self, float(scale))

    def _update(self) -> None:
        if self._quick():
            return
        skip, options = self._scaling()
        if skip:
            self.last_report = StepReport(skipped=True)
            return
        created: list = []
        gathered = self._gather(careful=False)
        if gathered is None:  # the plan does not describe this step: build it (and state)
            created = self._prepare()
            gathered = self._careful_gather(created)
        params, grads, arrays, steps, fresh, hypers, stepped, written = gathered
        if not params:  # no gradient: what the native call reports for an empty step
            looked = options is not None and (options[1] is not None or bool(options[2]))
            self.last_report = StepReport(False, 0.0 if looked else None)
            return
        try:
            report = self._numpy._native(None, params, grads, arrays, steps, fresh, hypers, options)
        except REFUSED as exc:
            if created:
                self._rollback(created)
                self._in_user_terms(exc, stepped)
                raise
            # The quick gather trusts the plan and the gradients' layout: check everything,
            # then a refusal is the input's fault and is raised.
            created = self._prepare()
            gathered = self._careful_gather(created)
            params, grads, arrays, steps, fresh, hypers, stepped, written = gathered
            try:
                report = self._numpy._native(
                    None, params, grads, arrays, steps, fresh, hypers, options
                )
            except REFUSED as exc:
                self._rollback(created)
                self._in_user_terms(exc, stepped)
                raise
        self.last_report = report
        if report is not None and report.skipped:  # skip_nonfinite saw an inf or NaN
            if created:
                self._rollback(created)  # a skipped step changes nothing, not even new state
            return
        plan = self._plan
        if plan.counts is not None:
            if len(stepped) == len(plan.counts):
                np.add(plan.counts, 1, out=plan.counts)
            else:
                plan.counts[[s.index for s in stepped]] += 1
        if True in fresh:
            for slot in stepped:
                slot.fresh = False
        # The native code wrote through raw pointers; tell autograd, as in-place ops do.
        written += plan.bases
        _increment_version(written)
        self._remember(gathered)

    def _in_user_terms(self, exc: BaseException, stepped: list) -> None:
        """Rewrites a native refusal's names of the call's flat lists (``params[2]``,
        ``exp_avgs[0]``, counting only the parameters that stepped) as the parameters'
        places in ``param_groups``."""
        if not (isinstance(exc, (TypeError, ValueError)) and len(exc.args) == 1):
            return
        if not isinstance(exc.args[0], str):
            return
        place = {
            id(p): (gi, j)
            for gi, g in enumerate(self.param_groups)
            for j, p in enumerate(g["params"])
        }
        where = [(*place[id(slot.param)], None) for slot in stepped]
        exc.args = (user_message(exc.args[0], where),)

    def _careful_gather(self, created: list) -> Any:
        try:
            return self._gather(careful=True)
        except BaseException:  # a gradient that cannot be stepped: undo the new state
            self._rollback(created)
            raise

    def _remember(self, gathered: Any) -> None:
        """Keeps a successful step's lists for ``_quick`` when every parameter with state
        stepped and every group's options can be compared."""
        plan = self._plan
        params, _, arrays, _, _, hypers, stepped, written = gathered
        if len(stepped) != len(plan.slots):
            return
        groups = []
        for group in self.param_groups:
            entry = plan.hypers.get(id(group))
            if entry is None:  # no parameter of this group stepped
                try:
                    entry = (group, self._group_options(group))
                except KeyError:
                    return
            if entry[1] is None:
                return
            groups.append((group, self._option_keys, entry[1], tuple(group["params"])))
        slots = plan.slots
        others = [p for g in self.param_groups for p in g["params"] if id(p) not in slots]
        state = self.state
        if any(state.get(slot.param) is not slot.state for slot in stepped):
            return
        plan.quick = _Quick(
            self._numpy, state, groups, stepped, others, params, arrays, hypers, written
        )

    def _quick(self) -> bool:
        """The steady-state step: the same parameters, state and options as the last step, only
        new gradients. Returns False, having changed nothing, when anything else is new."""
        plan = self._plan
        if plan is None or plan.state is not self.state:
            return False
        q = plan.quick
        if q is None:
            return False
        grads = _unchanged(self.param_groups, q.groups, q.tensors, q.watched, q.dicts, q.others)
        if grads is None:
            return False  # options, parameters, storage or state changed, or a new gradient
        try:
            if q.viewers is None:
                grads = list(map(_tensor_numpy, grads))
            else:
                grads = [view(g) for view, g in zip(q.viewers, grads)]
        except (RuntimeError, TypeError, AttributeError):  # None, sparse, requires grad, ...
            return False
        attrs = self.__dict__
        if "found_inf" in attrs or "grad_scale" in attrs:  # GradScaler's step
            skip, options = self._scaling()
            if skip:
                self.last_report = StepReport(skipped=True)
                return True
        else:
            options = self._options
        counts = plan.counts
        if counts is not None:
            c = counts.tolist()
            t = c[0]
            uniform = c.count(t) == len(c)
            steps = int(t) + 1 if uniform else [int(x) + 1 for x in c]  # int: every set
        else:
            steps = []
        try:
            report = q.native(grads, steps, q.hypers, options)
        except REFUSED:
            return False  # the general path checks everything and says what is wrong
        self.last_report = report
        if report is not None and report.skipped:
            return True
        if counts is not None:
            if uniform:
                counts.fill(t + 1)
            else:
                np.add(counts, 1, out=counts)
        # The native code wrote through raw pointers; tell autograd, as in-place ops do.
        _increment_version(q.bump)
        return True

    def _hyper(self, plan: _Plan, group: dict) -> tuple:
        """(group, options, hyper tuple, which state arrays the step uses) for a group, kept
        while the group's options stay the same."""
        entry = plan.hypers.get(id(group))
        if entry is not None and entry[0] is group and entry[1] is not None:
            try:
                if self._group_options(group) == entry[1]:
                    return entry
            except KeyError:
                pass
        numpy_class = self._numpy
        values = numpy_class._validate(_numbers(group))
        needed = numpy_class._arrays(None, values)
        try:
            options = self._group_options(group)
        except KeyError:
            options = None
        if options is not None and not _immutable(options):
            options = None
        # Per state array: True, the step needs it; False, it passes None; None, it passes the
        # array where the parameter has one (the float32 master copy of a 16-bit parameter).
        used = tuple(
            True
            if name in needed
            else (None if name == "master_param" and self.master_weights else False)
            for name in numpy_class._state_arrays
        )
        entry = (group, options, numpy_class._hyper_tuple(values), used)
        plan.hypers[id(group)] = entry
        return entry

    def _gather(self, careful: bool) -> Any:
        """The native call's lists for this step, from the plan; None when the plan does not
        describe the tensors as they are now (only when not ``careful``)."""
        plan = self._plan
        state = self.state
        if plan is None or plan.state is not state:
            if careful:
                raise AssertionError("the plan was just built")
            return None
        names = self._numpy._state_arrays
        slots = plan.slots
        counts = plan.counts.tolist() if plan.counts is not None else None
        params: list = []
        grads: list = []
        steps: list = []
        fresh: list = []
        hypers: list = []
        stepped: list = []
        written: list = []
        arrays: dict[str, list] = {name: [] for name in names}
        lists = [arrays[name] for name in names]
        for gi, group in enumerate(self.param_groups):
            used = None
            for j, p in enumerate(group["params"]):
                g = p.grad
                if g is None:
                    continue
                if used is None:
                    _, _, hyper, used = self._hyper(plan, group)
                    columns = list(zip(names, lists, used))
                slot = slots.get(id(p))
                if (
                    slot is None
                    or slot.param is not p
                    or state.get(p) is not slot.state
                    or (slot.ids is not None and list(map(id, slot.state.values())) != slot.ids)
                    or slot.moved()
                ):
                    if careful:
                        raise AssertionError("the plan was just built")
                    return None
                if careful:
                    gv = self._grad_view(g, p, slot.order, _name(group, gi, j))
                else:
                    try:
                        gv = slot.grad_view(g)
                    except (RuntimeError, TypeError):  # requires grad, sparse, other device
                        return None
                params.append(slot.view)
                grads.append(gv)
                hypers.append(hyper)
                views = slot.views
                for name, lst, use in columns:
                    if use:
                        view = views.get(name)
                        if view is None:  # e.g. amsgrad switched on: state to create
                            if careful:
                                raise AssertionError("the plan was just built")
                            return None
                        lst.append(view)
                    elif use is None:
                        lst.append(views.get(name))
                    else:
                        lst.append(None)
                if counts is not None:
                    steps.append(int(counts[slot.index]) + 1)
                fresh.append(slot.fresh)
                stepped.append(slot)
                written += slot.bump
        return params, grads, arrays, steps, fresh, hypers, stepped, written

    # -- building the plan ---------------------------------------------------------------------

    def _prepare(
        self,
        eager: Iterable[torch.Tensor] = (),
        rehome: bool = False,
        sources: dict[int, Any] | None = None,
    ) -> list:
        """Builds the plan for every parameter that has a gradient or state (and ``eager``):
        checks the parameters, creates missing state, adopts state tensors laid out like their
        parameter (or copies them into new memory that is, always with ``rehome``), and puts
        every 'step' count into one buffer. Returns what it created, for ``_rollback``; on an
        error it removes that itself."""
        created: list = []  # (param, name or None)
        try:
            self._build_plan(eager, rehome, created, sources or {})
        except BaseException:
            self._rollback(created)
            raise
        return created

    def _build_plan(
        self, eager: Iterable[torch.Tensor], rehome: bool, created: list, sources: dict
    ) -> None:
        self._plan = None
        numpy_class = self._numpy
        names = numpy_class._state_arrays
        counts_steps = numpy_class._counts_steps
        state = self.state
        eager_ids = {id(p) for p in eager}
        slots: dict[int, _Slot] = {}
        order_of_slots: list[_Slot] = []
        step_values: list[int] = []
        requests: list = []  # (param, order, init) for allocate_state
        receivers: list = []  # (slot, state dict, name) for each request
        for gi, group in enumerate(self.param_groups):
            needed = None
            for j, p in enumerate(group["params"]):
                st = state.get(p)
                stepping = p.grad is not None or id(p) in eager_ids
                if not stepping and not st:
                    continue
                name = _name(group, gi, j)
                order = self._check_param(p, name)
                if needed is None:
                    needed = numpy_class._arrays(None, numpy_class._validate(_numbers(group)))
                slot = _Slot(p, order)
                new = st is None and bool(
                    counts_steps or needed or (self.master_weights and p.dtype in _HALF)
                )
                if new:
                    st = state[p]
                    created.append((p, None))
                for key in names:
                    t = st.get(key) if st is not None else None
                    if t is None:  # torch's SGD keeps a None momentum_buffer
                        if stepping and key in needed:
                            requests.append((p, order, needed[key]))
                            receivers.append((slot, st, key))
                            slot.fresh = True
                            if not new:
                                created.append((p, key))
                        continue
                    if not rehome and self._usable(t, p, order):
                        slot.adopt(key, t)
                    else:
                        source = sources.get(id(p), {}).get(key)  # before torch's cast
                        if isinstance(source, torch.Tensor) and source.shape == t.shape:
                            t = source
                        requests.append((p, order, self._loaded(t, p, f"state of {name}[{key!r}]")))
                        receivers.append((slot, st, key))
                if (
                    stepping
                    and self.master_weights
                    and p.dtype in _HALF
                    and "master_param" in names
                    and st.get("master_param") is None
                ):
                    requests.append((p, order, p.detach()))  # a float32 copy of the parameter
                    receivers.append((slot, st, "master_param"))
                    if not new:
                        created.append((p, "master_param"))
                if counts_steps and st is not None:
                    slot.index = len(step_values)
                    step_values.append(
                        as_step(st["step"], f"state of {name}['step']") if "step" in st else 0
                    )
                slot.state = st
                slots[id(p)] = slot
                order_of_slots.append(slot)
        made, bases = allocate_state(requests)
        for (slot, st, key), (t, view) in zip(receivers, made):
            st[key] = t
            slot.tensors[key] = t
            slot.views[key] = view
        counts = None
        if counts_steps:
            counts = np.array(step_values, dtype=_step_dtype())
        plan = _Plan(state, slots, counts, bases)
        for slot in order_of_slots:
            if slot.index >= 0:
                slot.state["step"] = plan.counts_tensor[slot.index]  # a 0-d view, torch's layout
            if slot.state is not None:
                slot.ids = list(map(id, slot.state.values()))
            slot.recorded = slot.watched()
        self._plan = plan

    def _rollback(self, created: list) -> None:
        """Removes the state a refused step created."""
        for p, key in reversed(created):
            if key is None:
                self.state.pop(p, None)
            else:
                self.state[p].pop(key, None)
        self._plan = None

    def _check_param(self, p: torch.Tensor, name: str) -> MemoryOrder:
        if p.device.type != "cpu":
            raise TypeError(
                f"{name} is on {p.device}: fastadam.torch steps CPU tensors (keep torch.optim "
                "for parameters on an accelerator)"
            )
        if p.layout is not torch.strided:
            raise TypeError(f"{name} is a {p.layout} tensor: fastadam.torch steps dense tensors")
        if p.dtype not in numpy_dtypes():
            if p.dtype in (torch.float16, torch.bfloat16):
                raise TypeError(
                    f"{name} is {p.dtype}: 16-bit parameters need fastadam's mixed-precision "
                    "kernels, which this build does not have; keep the parameters in float32 "
                    "(torch.autocast computes in 16 bits with float32 parameters)"
                )
            raise TypeError(
                f"{name} is {p.dtype}: fastadam.torch steps float32 or float64 parameters"
            )
        try:
            return memory_order(p)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None

    @staticmethod
    def _usable(t: Any, p: torch.Tensor, order: MemoryOrder) -> bool:
        """Whether a state tensor can be stepped where it is: on the CPU, of the parameter's
        state dtype and shape, laid out like it."""
        if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
            return False
        if t.layout is not torch.strided or t.requires_grad:
            return False
        if t.dtype != state_dtype(p.dtype) or t.shape != p.shape:
            return False
        return t.is_contiguous() if order is None else t.permute(order).is_contiguous()

    @staticmethod
    def _loaded(t: Any, p: torch.Tensor, name: str) -> torch.Tensor:
        """A state value to copy into new memory, checked."""
        if not isinstance(t, torch.Tensor):
            try:
                t = torch.as_tensor(np.asarray(t))
            except (TypeError, ValueError):
                raise TypeError(f"{name} must be a tensor, got {type(t).__name__}") from None
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {t.dtype}")
        if t.shape != p.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, its parameter {tuple(p.shape)}")
        return t.detach()

    def _grad_view(self, g: torch.Tensor, p: torch.Tensor, order: MemoryOrder, name: str):
        """``g`` as a NumPy view lined up with its parameter's, after checking it: a clear
        error for what cannot be stepped; a copy in the parameter's layout for a gradient laid
        out otherwise (it is only read, so nothing is lost)."""
        if g.layout is not torch.strided:
            raise RuntimeError(
                f"{type(self).__name__} does not support sparse gradients ({name}.grad)"
            )
        if g.device != p.device:
            raise ValueError(f"{name}.grad is on {g.device}, its parameter on {p.device}")
        if g.dtype != p.dtype:
            raise TypeError(f"{name}.grad is {g.dtype}, its parameter {p.dtype}")
        if g.shape != p.shape:
            raise ValueError(
                f"{name}.grad has shape {tuple(g.shape)}, its parameter {tuple(p.shape)}"
            )
        g = g.detach()
        lined = g if order is None else g.permute(order)
        if not lined.is_contiguous():
            g = torch.empty_like(p, memory_format=torch.preserve_format).copy_(g)
            lined = g if order is None else g.permute(order)
        return numpy_view(lined)


def _step_dtype() -> np.dtype:
    # torch keeps 'step' in float32, or float64 when that is the default dtype.
    return np.dtype(np.float64 if torch.get_default_dtype() == torch.float64 else np.float32)
