"""``Optimizer``: the machinery fastadam's optimizers share (parameter groups, per-parameter
state, the validated step with its cached steady-state path, ``state_dict``), in
``torch.optim``'s terms. Checkpoint files are in ``checkpoint``; each optimizer is a module of its
own (``adam``, ``sgd``, ``adagrad``)."""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, ClassVar, Optional, Union

import numpy as np

from ..dtypes import is_16bit
from ..scaling import StepReport
from . import checkpoint
from .state_memory import allocate_together
from .validation import (
    REFUSED,
    SET_MESSAGE,
    as_step,
    check_grad,
    check_loaded_master,
    check_no_overlap,
    check_param,
    check_state_dict_layout,
    grad_ok,
    label,
    loaded_state,
    param_ok,
    span,
    user_message,
)

__all__ = ["Grads", "Optimizer", "ParamGroup", "Params"]

ParamGroup = dict[str, Any]
Params = Union[Iterable[np.ndarray], Iterable[ParamGroup]]
Grads = Sequence[Optional[np.ndarray]]
PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]


def step_value(step: int) -> np.ndarray:
    """A step count as torch keeps it, a 0-d float32 array, with wider types where float32 (or
    float64) would round it."""
    if step < 2**24:
        return np.array(step, dtype=np.float32)
    return np.array(step, dtype=np.float64 if step <= 2**53 else np.int64)


class ParamState(dict):
    """A parameter's state dict, live: it is the truth the optimizer steps from.

    The steady-state path keeps the state arrays in lists and the step count in one number
    between steps; any write to this dict (a replaced ``exp_avg``, a reset ``step``) drops those
    lists, so the next step reads the dict again, and reads of ``step`` bring it up to date first.
    """

    def __init__(self, owner: Optimizer | None, *args: Any, **kwargs: Any) -> None:
        dict.__init__(self, *args, **kwargs)
        self._owner = owner

    def _before_write(self) -> None:
        owner = getattr(self, "_owner", None)
        if owner is not None:
            owner._drop_fast()

    def _before_read(self) -> None:
        owner = getattr(self, "_owner", None)
        if owner is not None and owner._fast is not None:
            owner._sync_steps()

    def __setitem__(self, key: Any, value: Any) -> None:
        self._before_write()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._before_write()
        dict.__delitem__(self, key)

    def __ior__(self, other: Any) -> ParamState:  # noqa: PYI034
        self._before_write()
        dict.update(self, other)
        return self

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) and key == "step":
            self._before_read()
        return dict.__getitem__(self, key)

    def __iter__(self) -> Any:
        # Defined so that dict(state) and {**state} copy through keys() and __getitem__ (which
        # brings 'step' up to date) instead of reading the dict's storage directly.
        return dict.__iter__(self)

    def __reduce__(self) -> tuple:
        self._before_read()
        return (dict, (dict(self),))  # a copy or a pickle is a plain dict

    def __repr__(self) -> str:
        self._before_read()
        return dict.__repr__(self)

    def __eq__(self, other: object) -> bool:
        self._before_read()
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]


def _reading(name: str) -> Any:
    method = getattr(dict, name)

    def read(self: ParamState, *args: Any) -> Any:
        self._before_read()
        return method(self, *args)

    read.__name__ = name
    return read


def _writing(name: str) -> Any:
    method = getattr(dict, name)

    def write(self: ParamState, *args: Any, **kwargs: Any) -> Any:
        self._before_write()
        return method(self, *args, **kwargs)

    write.__name__ = name
    return write


for _name in ("get", "items", "values", "copy"):
    setattr(ParamState, _name, _reading(_name))
for _name in ("clear", "pop", "popitem", "setdefault", "update"):
    setattr(ParamState, _name, _writing(_name))
del _name


class _Fast:
    """What a step needs when one group of one dtype updates every parameter at one step count:
    the group, its parameters' state dicts, their step count, and the lists of state arrays
    handed to the native call (one per name of ``_state_arrays``, None where the step uses
    none), kept between steps."""

    __slots__ = ("group", "lists", "no_maxes", "params", "states", "t")

    def __init__(
        self,
        group: ParamGroup,
        states: list[dict[str, Any]],
        t: int,
        lists: tuple[list[np.ndarray] | None, ...],
    ) -> None:
        self.group = group
        self.params = list(group["params"])
        self.states = states
        self.t = t
        self.lists = lists
        self.no_maxes: list[None] = [None] * len(states)  # max_exp_avg_sqs without amsgrad

    def describes(self, groups: list[ParamGroup], grads: Any) -> bool:
        """Whether the lists still fit this step: the same group dict holding the same arrays
        (an entry replaced or reordered by hand would be stepped with another's state), and
        grads a list or tuple, as the general path requires."""
        params = self.group["params"]
        return (
            len(groups) == 1
            and groups[0] is self.group
            and isinstance(grads, (list, tuple))
            and len(params) == len(self.params)
            and all(map(operator.is_, params, self.params))
        )


class _StateView(Mapping):
    """``opt.state[param]``: the live state dict of a parameter, looked up by identity."""

    def __init__(self, opt: Optimizer) -> None:
        self._opt = opt

    def __getitem__(self, param: np.ndarray) -> dict[str, Any]:
        entry = self._opt._state.get(id(param))
        if entry is None or entry[0] is not param:
            raise KeyError("this array has no optimizer state")
        return entry[1]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (entry[0] for entry in self._opt._state.values())

    def __len__(self) -> int:
        return len(self._opt._state)


class Optimizer:
    """The machinery of fastadam's optimizers: parameter groups, per-parameter state, the step
    (validate everything, create state, one native call for every group and dtype, cache the
    lists for the steady state), ``state_dict`` and ``.npz`` checkpoints, all in
    ``torch.optim``'s terms.

    Not used directly. An optimizer subclasses it with a constructor that passes its defaults,
    and describes its update:

    - ``_state_arrays``: the names of its per-parameter state arrays (torch's keys), and
      ``_required_arrays``, those a loaded state must hold;
    - ``_counts_steps``: whether its state has a ``'step'`` count, incremented before the update;
    - ``_eager_state``: whether state is created with the parameter rather than at its first
      step (torch's Adagrad does that);
    - ``_fixed``: group entries every group gets whatever it says (AdamW's decoupled decay);
    - ``_validate(group)``: its hyper-parameters checked as torch checks them, as plain values;
    - ``_arrays(values)``: the state arrays a step with those values needs, with their initial
      value;
    - ``_hyper_tuple(values)``: a group's hyper-parameters in the order its native entry reads;
    - ``_native(...)``: the one native call (a ``_core.*_step_sets`` entry) over every parameter
      of the step, given flat lists (the general path), and ``_fast_call(...)``: the same call
      over one group's parameters and the state lists kept between steps (the cached path;
      ``Adam`` writes it inline in its ``step``).

    ``SGD`` and ``Adagrad`` below are complete examples.
    """

    _state_arrays: ClassVar[tuple[str, ...]] = ()
    _required_arrays: ClassVar[tuple[str, ...]] = ()
    _counts_steps: ClassVar[bool] = True
    _eager_state: ClassVar[bool] = False
    _fixed: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        checkpoint.CLASSES[cls.__name__] = cls  # a checkpoint names the class that wrote it

    def __init__(
        self,
        params: Params,
        defaults: Mapping[str, Any],
        *,
        master_weights: bool = False,
        skip_nonfinite: bool = False,
        max_grad_norm: float | None = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        self._set_precision_options(
            master_weights, skip_nonfinite, max_grad_norm, stochastic_rounding, seed
        )
        self.defaults: dict[str, Any] = self._normalized(defaults)
        self.param_groups: list[ParamGroup] = []
        # id(param) -> (param, state dict); keyed by identity as torch keys by tensor.
        self._state: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
        self._fast: _Fast | None = None
        self._spans: dict[int, tuple[np.ndarray, int, int]] = {}

        if isinstance(params, (np.ndarray, str, bytes, Mapping)) or not isinstance(
            params, Iterable
        ):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of arrays or "
                f"dicts, but got {type(params).__name__}"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(SET_MESSAGE)
        groups: list[Any] = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        self._flat_input = not isinstance(groups[0], Mapping)
        if self._flat_input:
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- mixed precision and the gradient pre-pass ---------------------------------------------

    def _set_precision_options(
        self, master_weights, skip_nonfinite, max_grad_norm, stochastic_rounding, seed
    ) -> None:
        """The optimizer-wide options of the step (documented by each class)."""
        if max_grad_norm is not None:
            max_grad_norm = float(max_grad_norm)
            if not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
                raise ValueError(f"max_grad_norm must be a finite number > 0, got {max_grad_norm}")
        if master_weights and stochastic_rounding:
            raise ValueError(
                "master_weights and stochastic_rounding exclude each other: the master copy "
                "keeps the precision that stochastic rounding approximates"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.master_weights = bool(master_weights)
        self.skip_nonfinite = bool(skip_nonfinite)
        self.max_grad_norm = max_grad_norm
        self.stochastic_rounding = bool(stochastic_rounding)
        self.seed = int(seed)
        asked = self.skip_nonfinite or max_grad_norm is not None or self.stochastic_rounding
        self._options = (
            (1.0, max_grad_norm, self.skip_nonfinite, self.stochastic_rounding, self.seed)
            if asked
            else None
        )

    def _options_for(self, grad_scale: float) -> tuple | None:
        """The native entry's options tuple for a step with this loss scale."""
        if grad_scale == 1.0:
            return self._options
        return (
            grad_scale,
            self.max_grad_norm,
            self.skip_nonfinite,
            self.stochastic_rounding,
            self.seed,
        )

    # -- copies and pickles ------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """``copy.deepcopy`` and ``pickle`` carry the parameters and their state together: state
        is keyed by the parameter's identity, so it travels as (parameter, state) pairs that
        ``__setstate__`` keys again by the copies' identities."""
        self._sync_steps()
        out = dict(self.__dict__)
        out["_state"] = [(p, dict(s)) for p, s in self._state.values()]
        out["_fast"] = None
        out["_spans"] = {}
        return out

    def __setstate__(self, saved: dict[str, Any]) -> None:
        saved = dict(saved)
        pairs = saved.pop("_state")
        self.__dict__.update(saved)
        self._state = {id(p): (p, ParamState(self, s)) for p, s in pairs}

    # -- what an optimizer defines -------------------------------------------------------------

    @staticmethod
    def _validate(group: Mapping[str, Any]) -> dict[str, Any]:
        """The group's hyper-parameters, validated, as plain Python values under their keys."""
        raise NotImplementedError

    def _arrays(self, values: Mapping[str, Any]) -> dict[str, float]:
        """The state arrays a step with these hyper-parameters needs: name -> initial value."""
        raise NotImplementedError

    @staticmethod
    def _hyper_tuple(values: Mapping[str, Any]) -> tuple:
        """A group's hyper-parameters as the tuple the native ``*_step_sets`` entry reads."""
        raise NotImplementedError

    def _native(
        self,
        params: list[np.ndarray],
        grads: list[np.ndarray],
        arrays: Mapping[str, list[np.ndarray | None]],
        steps: list[int],
        fresh: list[bool],
        hypers: list[tuple],
        options: tuple | None = None,
    ) -> StepReport:
        """The one native call of a general step, over every parameter of every group and
        dtype: ``arrays`` maps each name of ``_state_arrays`` to one entry per parameter (None
        where the parameter's step uses no such array); ``steps`` are the counts after
        incrementing (empty unless ``_counts_steps``; one int stands for every parameter);
        ``fresh[i]`` says whether parameter i's state was created for this step; ``hypers[i]``
        is its group's ``_hyper_tuple``; ``options`` is ``_options_for(grad_scale)``. The
        native entry validates every array before it writes anything, and returns the step's
        report."""
        raise NotImplementedError

    @classmethod
    def _bound_native(
        cls, params: list[np.ndarray], arrays: Mapping[str, list], fresh: list[bool]
    ) -> Callable[..., StepReport]:
        """``_native`` (float state, ``self`` None) with the parameters and state lists bound:
        ``call(grads, steps, hypers, options)``. fastadam.torch's steady-state step reuses it
        while only the gradients change; a subclass may bind its native entry directly."""
        native = cls._native

        def call(grads, steps, hypers, options):
            return native(None, params, grads, arrays, steps, fresh, hypers, options)

        return call

    def _fast_call(
        self,
        group: ParamGroup,
        lists: tuple[list[np.ndarray] | None, ...],
        grads: Grads,
        t: int,
        options: tuple | None,
    ) -> StepReport:
        """The native call over ``group['params']`` and the state lists kept between steps
        (``_Fast.lists``), at step count ``t``, with the hyper-parameters read from the group as
        they are now. It does not validate: the native code checks every array and value before
        writing, and its refusal (one of ``REFUSED``) sends the step down the general path."""
        raise NotImplementedError

    # -- parameter groups and state ------------------------------------------------------------

    def _normalized(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """The group with its hyper-parameters validated and stored as plain Python values."""
        out = dict(group)
        out.update(self._fixed)
        out.update(self._validate(out))
        return out

    @property
    def state(self) -> Mapping[np.ndarray, dict[str, Any]]:
        """Per-parameter state, looked up by the parameter array itself: ``opt.state[param]``."""
        return _StateView(self)

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a parameter group (a dict with ``'params'``), as ``torch.optim`` does.

        Hyper-parameters the group leaves out take the optimizer's defaults.
        """
        if not isinstance(param_group, Mapping):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("parameter group didn't specify a value of required parameter params")
        params = param_group["params"]
        if isinstance(params, np.ndarray):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(SET_MESSAGE)
        else:
            params = list(params)
        gi = len(self.param_groups)
        names = [
            f"params[{j}]" if self._flat_input and gi == 0 else label(("param", gi, j))
            for j in range(len(params))
        ]
        for p, name in zip(params, names):
            check_param(p, name)
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        if any(id(p) in ids for g in self.param_groups for p in g["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        spans: list[tuple[int, int, bool, Any]] = [
            (*self._span_of(p), True, ("param", i, j))
            for i, g in enumerate(self.param_groups)
            for j, p in enumerate(g["params"])
        ]
        spans += [(*span(p), True, name) for p, name in zip(params, names)]
        check_no_overlap(spans)

        group = dict(self.defaults)
        group.update(param_group)
        group = self._normalized(group)
        group["params"] = params
        self.param_groups.append(group)
        self._drop_fast()
        if self._eager_state:
            needed = self._arrays(group)
            requests: list = []
            for p in params:
                self._state_of(p, needed, [], requests)
            allocate_together(requests)

    # -- the update ----------------------------------------------------------------------------

    def step(self, grads: Grads, grad_scale: float = 1.0) -> StepReport:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : list or tuple of numpy.ndarray or None
            One gradient per parameter, in parameter-group order (the order of
            ``[p for g in opt.param_groups for p in g['params']]``), each of its parameter's
            shape and dtype and C-contiguous. ``None`` leaves that parameter (and its state)
            untouched this step.
        grad_scale : float
            The factor the loss was multiplied by (loss scaling): the gradients are divided by
            it inside the update (default 1).

        Returns
        -------
        StepReport
            ``skipped`` (with ``skip_nonfinite``: a gradient was inf or NaN, and nothing, step
            counts included, changed) and ``grad_norm`` (the global norm of the unscaled
            gradients when ``skip_nonfinite`` or ``max_grad_norm`` asked for it, else None).

        Raises
        ------
        TypeError, ValueError
            Before any parameter or state is changed: a wrong number of gradients, a gradient of
            the wrong type, dtype or shape, a bad hyper-parameter in a group or grad_scale.
        """
        options = self._options_for(grad_scale)
        fast = self._fast
        if fast is not None and fast.describes(self.param_groups, grads):
            t = fast.t + 1
            try:
                # One group, one dtype, every state present: the native call validates every
                # array and hyper-parameter before writing, so a refusal here changed nothing
                # and the general path below reports it in the optimizer's terms.
                report = self._fast_call(fast.group, fast.lists, grads, t, options)
            except REFUSED:
                pass
            else:
                if not report.skipped:
                    fast.t = t  # the state dicts' 'step' catch up in _sync_steps
                return report
        return self._step_general(grads, options)

    def _sync_steps(self) -> None:
        """Write the cached step count into the state dicts (the cached path leaves them)."""
        fast = self._fast
        if fast is not None and self._counts_steps:
            for s in fast.states:
                dict.__setitem__(s, "step", fast.t)

    def _drop_fast(self) -> None:
        """Forget the cached lists, first bringing the state dicts up to date."""
        self._sync_steps()
        self._fast = None

    def _step_general(self, grads: Grads, options: tuple | None = None) -> StepReport:
        self._drop_fast()
        if not isinstance(grads, (list, tuple)):
            raise TypeError(
                f"grads must be a list or tuple with one array (or None) per parameter, "
                f"got {type(grads).__name__}"
            )
        groups = self.param_groups
        n = sum(len(g["params"]) for g in groups)
        if len(grads) != n:
            raise ValueError(f"grads has {len(grads)} entries but the optimizer has {n} parameters")
        values = [self._validate(g) for g in groups]

        # Validate everything, then create state, then update: a bad input changes nothing.
        # (Names for messages are made only when something is wrong.)
        calls = []  # (values, params, grads)
        where: list[tuple[int, int, int]] = []  # (group, index in group, index in grads) per call
        i = 0
        for gi, group in enumerate(groups):
            by_dtype: dict[np.dtype, tuple[list, list, list]] = {}
            for j, p in enumerate(group["params"]):
                g = grads[i]
                if g is not None:
                    if not param_ok(p):
                        check_param(p, label(("param", gi, j)))
                    if not grad_ok(g, p):
                        check_grad(g, p, f"grads[{i}]")
                    ps, gs, ws = by_dtype.setdefault(p.dtype, ([], [], []))
                    ps.append(p)
                    gs.append(g)
                    ws.append((gi, j, i))
                i += 1
            for ps, gs, ws in by_dtype.values():
                calls.append((values[gi], ps, gs))
                where += ws
        created: list[tuple[int, str | None]] = []

        def forget_created() -> None:
            for key, name in reversed(created):
                if name is None:
                    del self._state[key]
                else:
                    dict.__delitem__(self._state[key][1], name)

        requests: list = []
        pending = []
        try:
            for v, ps, gs in calls:
                needed = self._arrays(v)
                states, fresh = [], []
                for p in ps:
                    before = len(created)
                    states.append(self._state_of(p, needed, created, requests))
                    fresh.append(len(created) > before)
                pending.append((v, ps, gs, states, fresh, needed))
            # the counts first: a state whose 'step' is missing or bad is refused before any
            # state is allocated
            all_steps = [
                [self._next_step(s) for s in states] if self._counts_steps else None
                for _, _, _, states, _, _ in pending
            ]
            allocate_together(requests)  # all new state of this step in one buffer per dtype
        except BaseException:
            forget_created()
            raise
        prepared = [
            (v, ps, gs, states, fresh, self._lists_of(states, needed))
            for v, ps, gs, states, fresh, needed in pending
        ]
        # Flat lists over every group and dtype, for the one native call.
        flat_params: list = []
        flat_grads: list = []
        flat_steps: list = []
        flat_fresh: list = []
        flat_hypers: list = []
        flat_arrays: dict[str, list] = {name: [] for name in self._state_arrays}
        for (v, ps, gs, _, fresh, arrays), steps in zip(prepared, all_steps):
            flat_params += ps
            flat_grads += gs
            flat_steps += steps or []
            flat_fresh += fresh
            flat_hypers += [self._hyper_tuple(v)] * len(ps)
            for name, lst in flat_arrays.items():
                lst += arrays.get(name) or [None] * len(ps)

        try:
            report = self._native(
                flat_params, flat_grads, flat_arrays, flat_steps, flat_fresh, flat_hypers, options
            )
        except BaseException as exc:
            forget_created()  # the native call refused before writing: forget its new state
            if isinstance(exc, (TypeError, ValueError)) and len(exc.args) == 1:
                raise type(exc)(user_message(str(exc), where)) from None
            raise
        if report.skipped:
            forget_created()  # a skipped step changes nothing, not even the state it created
            return report
        for (_, _, _, states, _, _), steps in zip(prepared, all_steps):
            for s, t in zip(states, steps or ()):
                s["step"] = t

        # Cache the lists for the next steps when the fast path's conditions hold.
        if len(groups) == 1 and len(prepared) == 1:
            _, ps, _, states, _, arrays = prepared[0]
            steps = all_steps[0]
            if len(ps) == len(groups[0]["params"]) and (
                steps is None or all(t == steps[0] for t in steps)
            ):
                t = steps[0] if steps is not None else 0
                lists = tuple(arrays.get(name) for name in self._state_arrays)
                self._fast = _Fast(groups[0], states, t, lists)
        return report

    def _lists_of(self, states: list, needed: Mapping[str, Any]) -> dict[str, list]:
        """A call's state lists by name, master copies included when the optimizer keeps them
        (None for a parameter without one)."""
        lists = {name: [s[name] for s in states] for name in needed}
        if self.master_weights:
            lists["master_param"] = [s.get("master_param") for s in states]
        return lists

    @staticmethod
    def _next_step(state: dict[str, Any]) -> int:
        """A parameter's step count after this step; a count the user wrote into the state dict
        is checked first."""
        t = state.get("step")
        if type(t) is not int:
            if t is None:
                raise ValueError("a parameter's state has arrays but no 'step'")
            t = as_step(t, "a parameter's state['step']")
        return t + 1

    def _span_of(self, p: np.ndarray) -> tuple[int, int]:
        """A parameter's memory (begin, end), remembered: an array's memory never moves."""
        entry = self._spans.get(id(p))
        if entry is None or entry[0] is not p:
            entry = self._spans[id(p)] = (p, *span(p))
        return entry[1], entry[2]

    def _restart_if_emptied(self, p: np.ndarray, state: dict, created: list) -> None:
        """A state emptied by hand (``state.clear()``) starts afresh, as torch starts an empty
        one: its step count back at 0 (forgotten again if the step is refused)."""
        if not state and self._counts_steps:
            dict.__setitem__(state, "step", 0)
            created.append((id(p), "step"))

    def _state_of(
        self,
        p: np.ndarray,
        needed: Mapping[str, float],
        created: list[tuple[int, str | None]],
        requests: list[tuple[dict[str, Any], str, np.ndarray, float]],
    ) -> dict[str, Any]:
        """The state of ``p``; each missing array of ``needed`` goes on ``requests`` for
        ``allocate_together`` (and on ``created``). A parameter whose optimizer keeps nothing
        for it gets no entry."""
        entry = self._state.get(id(p))
        if entry is None or entry[0] is not p:
            state = ParamState(self, step=0) if self._counts_steps else ParamState(self)
            if not state and not needed:
                return state  # as torch's SGD without momentum: no state at all
            self._state[id(p)] = (p, state)
            created.append((id(p), None))
        else:
            state = entry[1]
            self._restart_if_emptied(p, state, created)
        if self.master_weights and is_16bit(p.dtype) and "master_param" not in state:
            requests.append((state, "master_param", p, "param"))  # a float32 copy of p
            created.append((id(p), "master_param"))
        for name, fill in needed.items():
            if name not in state:
                # e.g. amsgrad or momentum switched on after state existed: it starts from here.
                requests.append((state, name, p, fill))
                created.append((id(p), name))
        return state

    # -- state_dict ----------------------------------------------------------------------------

    def _params(self) -> list[np.ndarray]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in its ``torch.optim`` counterpart's layout.

        ``{'state': {index: {...}}, 'param_groups': [{...hyper-parameters..., 'params': [index,
        ...]}]}`` where an index counts parameters across groups in order, and a parameter's
        state holds the keys the class documents. ``step`` is a 0-d float32 array as torch keeps
        it. The state arrays are the optimizer's own arrays, not copies (as torch returns its
        tensors): a checkpoint costs no extra memory, and later steps change a dict you hold, so
        copy it (``copy.deepcopy``) to keep a snapshot. ``load_state_dict`` copies what it loads.
        Convert the arrays with ``torch.from_numpy`` to load it into the torch optimizer.
        """
        self._sync_steps()
        groups = []
        state = {}
        k = 0
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = list(range(k, k + len(group["params"])))
            groups.append(packed)
            for p in group["params"]:
                entry = self._state.get(id(p))
                if entry is not None and entry[0] is p:
                    s = entry[1]
                    out: dict[str, Any] = (
                        {"step": step_value(s["step"])} if self._counts_steps else {}
                    )
                    for key in self._state_arrays:
                        if key in s:
                            out[key] = dict.__getitem__(s, key)
                    if out:
                        state[k] = out
                k += 1
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a ``state_dict()`` of this class or of its ``torch.optim`` counterpart.

        Parameters are matched by position, as torch does. Arrays (NumPy, or anything
        ``numpy.asarray`` takes, such as CPU tensors) are copied into fresh state arrays of each
        parameter's dtype; ``step`` may be an int, a float or a 0-d array. Everything is checked
        before anything changes.
        """
        check_state_dict_layout(state_dict)
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        by_index: dict[int, np.ndarray] = {}
        new_groups = []
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            saved_params = list(saved["params"])
            if len(saved_params) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict's parameter group {gi} has {len(saved_params)} "
                    f"parameters, the optimizer's has {len(group['params'])}"
                )
            for index, p in zip(saved_params, group["params"]):
                by_index[int(index)] = p
            new = dict(self.defaults)
            new.update((key, value) for key, value in saved.items() if key != "params")
            new = self._normalized(new)  # AdamW's decoupled decay is set, as torch's AdamW does
            new["params"] = group["params"]
            new_groups.append(new)

        new_state: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
        requests: list = []  # the new state arrays, made together as a step makes them
        sources: list[np.ndarray] = []
        for key, saved in state_dict["state"].items():
            index = int(key)
            if index not in by_index:
                raise ValueError(f"state[{key!r}] names no parameter of this optimizer")
            p = by_index[index]
            if not isinstance(saved, Mapping):
                raise TypeError(f"state[{index}] must be a dict, got {type(saved).__name__}")
            s = ParamState(self)
            if self._counts_steps:
                s["step"] = as_step(saved.get("step"), f"state[{index}]['step']")
            arrays_before = len(requests)
            for name in self._state_arrays:
                value = saved.get(name)
                if value is not None and name == "master_param":
                    check_loaded_master(
                        is_16bit(p.dtype), p.dtype, self.master_weights, f"state[{index}]"
                    )
                if value is not None:  # torch's SGD may hold a None momentum_buffer
                    sources.append(loaded_state(value, p, f"state[{index}][{name!r}]"))
                    requests.append((s, name, p, 0.0))
                elif name in self._required_arrays:
                    raise ValueError(f"state[{index}] has no {name!r}")
            if s or len(requests) > arrays_before:
                new_state[id(p)] = (p, s)
        allocate_together(requests)
        for (s, name, _, _), source in zip(requests, sources):
            np.copyto(s[name], source, casting="same_kind")

        for group, new in zip(self.param_groups, new_groups):
            group.clear()  # in place: code holding a group (an lr schedule) keeps working
            group.update(new)
        self._fast = None  # its lists hold the replaced state
        self._state = new_state

    # -- .npz checkpoints ----------------------------------------------------------------------

    def save(self, file: PathOrFile) -> None:
        """Write ``state_dict()`` to a ``.npz`` file (at exactly this path) that loads without
        pickle. Hyper-parameters travel as JSON, so extra group entries must be JSON values."""
        checkpoint.save(self, file)

    def load(self, file: PathOrFile) -> None:
        """Read a file written by ``save`` (never unpickles) and ``load_state_dict`` it."""
        checkpoint.load(self, file)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
