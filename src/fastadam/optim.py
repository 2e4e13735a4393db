"""Optimizers for training loops on NumPy arrays, modelled on ``torch.optim``: ``Adam``,
``AdamW``, ``SGD`` and ``Adagrad``.

Each holds parameter groups and per-parameter state in its torch counterpart's layout and updates
the parameters in place with one native call per parameter group and dtype. ``Optimizer`` holds
the machinery they share (groups, state, validation before any write, the cached steady-state
path, ``state_dict`` and ``.npz`` checkpoints); each optimizer adds its hyper-parameters, its
state arrays and its native calls.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, ClassVar, Optional, Union

import numpy as np

from . import _core

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer"]

_adam_step_sets = _core.adam_step_sets
_sgd_step_sets = _core.sgd_step_sets
_adagrad_step_sets = _core.adagrad_step_sets
_zeros_state = _core.zeros_state
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# A native call refuses bad input with one of these before writing anything.
_REFUSED = (TypeError, ValueError, KeyError, IndexError)
_FORMAT = "fastadam.optim"
_FORMAT_VERSION = 1

ParamGroup = dict[str, Any]
Params = Union[Iterable[np.ndarray], Iterable[ParamGroup]]
Grads = Sequence[Optional[np.ndarray]]
PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]


def _check_param(p: object, name: str) -> np.ndarray:
    if not isinstance(p, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(p).__name__}")
    if p.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64 (native byte order), got {p.dtype}")
    flags = p.flags
    if not flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous: an update applied to a copy is lost")
    if not flags.aligned:
        raise ValueError(f"{name} must be aligned to its element size")
    if not flags.writeable:
        raise ValueError(f"{name} is read-only; the optimizer updates parameters in place")
    return p


def _check_grad(g: object, p: np.ndarray, name: str) -> None:
    if not isinstance(g, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or None, got {type(g).__name__}")
    if g.dtype != p.dtype:
        raise TypeError(f"{name} must have its parameter's dtype {p.dtype}, got {g.dtype}")
    if g.shape != p.shape:
        raise ValueError(f"{name} must have its parameter's shape {p.shape}, got {g.shape}")
    flags = g.flags
    if not flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not flags.aligned:
        raise ValueError(f"{name} must be aligned to its element size")


def _span(a: np.ndarray) -> tuple[int, int]:
    begin = a.__array_interface__["data"][0]
    return begin, begin + a.nbytes


def _check_no_overlap(spans: list[tuple[int, int, bool, Any]]) -> None:
    """ValueError if a written span (begin, end, written, name) meets any other span."""
    spans = sorted((s for s in spans if s[0] < s[1]), key=lambda s: s[0])
    reach_any: tuple[int, int, bool, Any] | None = None
    reach_written: tuple[int, int, bool, Any] | None = None
    for s in spans:
        clash = reach_any if s[2] else reach_written
        if clash is not None and s[0] < clash[1]:
            raise ValueError(f"{_label(s[3])} and {_label(clash[3])} share memory")
        if reach_any is None or s[1] > reach_any[1]:
            reach_any = s
        if s[2] and (reach_written is None or s[1] > reach_written[1]):
            reach_written = s


def _label(name: Any) -> str:
    """Names are built only for error messages: ("grads", i) or ("param", group, j)."""
    if isinstance(name, str):
        return name
    if name[0] == "grads":
        return f"grads[{name[1]}]"
    return f"param_groups[{name[1]}]['params'][{name[2]}]"


def _param_ok(p: Any) -> bool:
    if not isinstance(p, np.ndarray) or p.dtype not in _FLOAT_DTYPES:
        return False
    flags = p.flags
    return flags.c_contiguous and flags.aligned and flags.writeable


def _grad_ok(g: Any, p: np.ndarray) -> bool:
    if not isinstance(g, np.ndarray) or g.dtype != p.dtype or g.shape != p.shape:
        return False
    flags = g.flags
    return flags.c_contiguous and flags.aligned


def _real(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a real number, got {value!r}") from None


def _as_step(value: Any, name: str) -> int:
    """A step count from an int, a float, a 0-d array or a torch tensor's ``.numpy()``."""
    a = np.asarray(value)
    if a.ndim != 0 or a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a number or a 0-d array, got {value!r}")
    x = float(a)
    if not (math.isfinite(x) and x >= 0 and x == int(x)):
        raise ValueError(f"{name} must be a whole number >= 0, got {x}")
    return int(x)


def _step_value(step: int) -> np.ndarray:
    # torch keeps 'step' as a 0-d float32 tensor; float64 beyond float32's exact integers.
    return np.array(step, dtype=np.float32 if step < 2**24 else np.float64)


def _loaded_state(value: Any, p: np.ndarray, name: str) -> np.ndarray:
    """A loaded state array, checked (floating point, its parameter's shape), not yet copied."""
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {a.dtype}")
    if a.shape != p.shape:
        raise ValueError(f"{name} must have its parameter's shape {p.shape}, got {a.shape}")
    return a


def _allocate_together(requests: list[tuple[dict[str, Any], str, np.ndarray, float]]) -> None:
    """Creates the state arrays ``state[name]`` (shaped like ``p``, filled with ``fill``) of
    ``requests`` as views into one buffer per dtype.

    The buffer comes from ``zeros_state``, so once large it sits on huge pages: a model's many
    small and mid-sized tensors then get the same TLB-friendly memory as one big tensor, and their
    state streams through memory as one block. Each view starts on a 64-byte boundary.
    """
    by_dtype: dict[np.dtype, list] = {}
    for request in requests:
        by_dtype.setdefault(request[2].dtype, []).append(request)
    for dtype, group in by_dtype.items():
        line = 64 // dtype.itemsize
        sizes = [-(-p.size // line) * line for _, _, p, _ in group]  # rounded up to a line
        buffer = _zeros_state((sum(sizes),), dtype)
        offset = 0
        for (state, name, p, fill), size in zip(group, sizes):
            view = buffer[offset : offset + p.size].reshape(p.shape)
            if fill != 0.0:
                view.fill(fill)
            state[name] = view
            offset += size


class _Fast:
    """What a step needs when one group of one dtype updates every parameter at one step count:
    the group, its parameters' state dicts, their step count, and the lists of state arrays
    handed to the native call (one per name of ``_state_arrays``, None where the step uses
    none), kept between steps."""

    __slots__ = ("group", "lists", "no_maxes", "states", "t")

    def __init__(
        self,
        group: ParamGroup,
        states: list[dict[str, Any]],
        t: int,
        lists: tuple[list[np.ndarray] | None, ...],
    ) -> None:
        self.group = group
        self.states = states
        self.t = t
        self.lists = lists
        self.no_maxes: list[None] = [None] * len(states)  # max_exp_avg_sqs without amsgrad


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

    def __init__(self, params: Params, defaults: Mapping[str, Any]) -> None:
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
            raise TypeError(_SET_MESSAGE)
        groups: list[Any] = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        self._flat_input = not isinstance(groups[0], Mapping)
        if self._flat_input:
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

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
    ) -> None:
        """The one native call of a general step, over every parameter of every group and
        dtype: ``arrays`` maps each name of ``_state_arrays`` to one entry per parameter (None
        where the parameter's step uses no such array); ``steps`` are the counts after
        incrementing (empty unless ``_counts_steps``); ``fresh[i]`` says whether parameter i's
        state was created for this step; ``hypers[i]`` is its group's ``_hyper_tuple``. The
        native entry validates every array before it writes anything."""
        raise NotImplementedError

    def _fast_call(
        self,
        group: ParamGroup,
        lists: tuple[list[np.ndarray] | None, ...],
        grads: Grads,
        t: int,
    ) -> None:
        """The native call over ``group['params']`` and the state lists kept between steps
        (``_Fast.lists``), at step count ``t``, with the hyper-parameters read from the group as
        they are now. It does not validate: the native code checks every array and value before
        writing, and its refusal (one of ``_REFUSED``) sends the step down the general path."""
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
        self._drop_fast()  # the caller may replace state arrays; rebuild the cached lists
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
            raise TypeError(_SET_MESSAGE)
        else:
            params = list(params)
        gi = len(self.param_groups)
        names = [
            f"params[{j}]" if self._flat_input and gi == 0 else _label(("param", gi, j))
            for j in range(len(params))
        ]
        for p, name in zip(params, names):
            _check_param(p, name)
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
        spans += [(*_span(p), True, name) for p, name in zip(params, names)]
        _check_no_overlap(spans)

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
            _allocate_together(requests)

    # -- the update ----------------------------------------------------------------------------

    def step(self, grads: Grads) -> None:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : list or tuple of numpy.ndarray or None
            One gradient per parameter, in parameter-group order (the order of
            ``[p for g in opt.param_groups for p in g['params']]``), each of its parameter's
            shape and dtype and C-contiguous. ``None`` leaves that parameter (and its state)
            untouched this step.

        Raises
        ------
        TypeError, ValueError
            Before any parameter or state is changed: a wrong number of gradients, a gradient of
            the wrong type, dtype or shape, a bad hyper-parameter in a group.
        """
        fast = self._fast
        if fast is not None:
            t = fast.t + 1
            try:
                # One group, one dtype, every state present: the native call validates every
                # array and hyper-parameter before writing, so a refusal here changed nothing
                # and the general path below reports it in the optimizer's terms.
                self._fast_call(fast.group, fast.lists, grads, t)
            except _REFUSED:
                pass
            else:
                fast.t = t  # the state dicts' 'step' catch up in _sync_steps
                return
        self._step_general(grads)

    def _sync_steps(self) -> None:
        """Write the cached step count into the state dicts (the cached path leaves them)."""
        fast = self._fast
        if fast is not None and self._counts_steps:
            for s in fast.states:
                s["step"] = fast.t

    def _drop_fast(self) -> None:
        """Forget the cached lists, first bringing the state dicts up to date."""
        self._sync_steps()
        self._fast = None

    def _step_general(self, grads: Grads) -> None:
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
        i = 0
        for gi, group in enumerate(groups):
            by_dtype: dict[np.dtype, tuple[list, list]] = {}
            for j, p in enumerate(group["params"]):
                g = grads[i]
                if g is not None:
                    if not _param_ok(p):
                        _check_param(p, _label(("param", gi, j)))
                    if not _grad_ok(g, p):
                        _check_grad(g, p, f"grads[{i}]")
                    ps, gs = by_dtype.setdefault(p.dtype, ([], []))
                    ps.append(p)
                    gs.append(g)
                i += 1
            for ps, gs in by_dtype.values():
                calls.append((values[gi], ps, gs))
        created: list[tuple[int, str | None]] = []
        requests: list = []
        pending = []
        for v, ps, gs in calls:
            needed = self._arrays(v)
            states, fresh = [], []
            for p in ps:
                before = len(created)
                states.append(self._state_of(p, needed, created, requests))
                fresh.append(len(created) > before)
            pending.append((v, ps, gs, states, fresh, needed))
        _allocate_together(requests)  # all new state of this step in one buffer per dtype
        prepared = [
            (v, ps, gs, states, fresh, {name: [s[name] for s in states] for name in needed})
            for v, ps, gs, states, fresh, needed in pending
        ]
        all_steps = [
            [s["step"] + 1 for s in states] if self._counts_steps else None
            for _, _, _, states, _, _ in prepared
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
            self._native(flat_params, flat_grads, flat_arrays, flat_steps, flat_fresh, flat_hypers)
        except BaseException:
            # The native call refused before writing: forget the state created for it too.
            for key, name in reversed(created):
                if name is None:
                    del self._state[key]
                else:
                    del self._state[key][1][name]
            raise
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

    def _span_of(self, p: np.ndarray) -> tuple[int, int]:
        """A parameter's memory (begin, end), remembered: an array's memory never moves."""
        entry = self._spans.get(id(p))
        if entry is None or entry[0] is not p:
            entry = self._spans[id(p)] = (p, *_span(p))
        return entry[1], entry[2]

    def _state_of(
        self,
        p: np.ndarray,
        needed: Mapping[str, float],
        created: list[tuple[int, str | None]],
        requests: list[tuple[dict[str, Any], str, np.ndarray, float]],
    ) -> dict[str, Any]:
        """The state of ``p``; each missing array of ``needed`` goes on ``requests`` for
        ``_allocate_together`` (and on ``created``). A parameter whose optimizer keeps nothing
        for it gets no entry."""
        entry = self._state.get(id(p))
        if entry is None or entry[0] is not p:
            state: dict[str, Any] = {"step": 0} if self._counts_steps else {}
            if not state and not needed:
                return state  # as torch's SGD without momentum: no state at all
            self._state[id(p)] = (p, state)
            created.append((id(p), None))
        else:
            state = entry[1]
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
        """The optimizer's state in its ``torch.optim`` counterpart's layout, as copies.

        ``{'state': {index: {...}}, 'param_groups': [{...hyper-parameters..., 'params': [index,
        ...]}]}`` where an index counts parameters across groups in order, and a parameter's
        state holds the keys the class documents. ``step`` is a 0-d float32 array as torch keeps
        it; arrays are copies, so later steps do not change a saved dict. Convert the arrays with
        ``torch.from_numpy`` to load it into the torch optimizer.
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
                        {"step": _step_value(s["step"])} if self._counts_steps else {}
                    )
                    for key in self._state_arrays:
                        if key in s:
                            out[key] = s[key].copy()
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
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
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
            s: dict[str, Any] = {}
            if self._counts_steps:
                s["step"] = _as_step(saved.get("step"), f"state[{index}]['step']")
            arrays_before = len(requests)
            for name in self._state_arrays:
                value = saved.get(name)
                if value is not None:  # torch's SGD may hold a None momentum_buffer
                    sources.append(_loaded_state(value, p, f"state[{index}][{name!r}]"))
                    requests.append((s, name, p, 0.0))
                elif name in self._required_arrays:
                    raise ValueError(f"state[{index}] has no {name!r}")
            if s or len(requests) > arrays_before:
                new_state[id(p)] = (p, s)
        _allocate_together(requests)
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
        sd = self.state_dict()
        arrays: dict[str, Any] = {}
        state_meta = {}
        for index, s in sd["state"].items():
            # The indices with state, and their step counts (null for an optimizer without).
            state_meta[str(index)] = int(s["step"]) if "step" in s else None
            for name in self._state_arrays:
                if name in s:
                    arrays[f"state.{index}.{name}"] = s[name]
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "class": type(self).__name__,
            "param_groups": sd["param_groups"],
            "steps": state_meta,
        }
        try:
            text = json.dumps(meta, allow_nan=True)
        except TypeError as exc:
            raise TypeError(f"a parameter group holds a value JSON cannot store: {exc}") from None
        arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        if isinstance(file, (str, os.PathLike)):
            with open(file, "wb") as f:
                np.savez(f, **arrays)
        else:
            np.savez(file, **arrays)

    def load(self, file: PathOrFile) -> None:
        """Read a file written by ``save`` (never unpickles) and ``load_state_dict`` it."""
        with np.load(file, allow_pickle=False) as npz:
            if "meta" not in npz.files:
                raise ValueError("not a fastadam optimizer checkpoint (no 'meta' entry)")
            meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
                raise ValueError("not a fastadam optimizer checkpoint of a known version")
            writer = _CLASSES.get(meta.get("class"))
            if writer is not None and writer._state_arrays != self._state_arrays:
                raise ValueError(
                    f"the checkpoint holds the state of {meta['class']}, not of "
                    f"{type(self).__name__}"
                )
            state = {}
            for index, step in meta["steps"].items():
                s: dict[str, Any] = {} if step is None else {"step": step}
                for name in self._state_arrays:
                    key = f"state.{index}.{name}"
                    if key in npz.files:
                        s[name] = npz[key]
                state[int(index)] = s
        self.load_state_dict({"state": state, "param_groups": meta["param_groups"]})

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


# -- Adam and AdamW ----------------------------------------------------------------------------


class Adam(Optimizer):
    """Adam (and, with ``decoupled_weight_decay=True``, AdamW) on NumPy arrays, in place.

    Names, defaults, parameter groups and ``state_dict`` layout follow ``torch.optim.Adam``: a
    parameter's state holds ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad,
    ``max_exp_avg_sq``.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to optimize (C-contiguous, writable, float32 or float64; views into a larger
        buffer are fine), or parameter groups: dicts with ``'params'`` and any hyper-parameters
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

    _state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
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
            },
        )

    @staticmethod
    def _validate(group: Mapping[str, Any]) -> dict[str, Any]:
        """Validated as torch.optim.Adam does."""
        lr = _real(group["lr"], "lr")
        eps = _real(group["eps"], "eps")
        weight_decay = _real(group["weight_decay"], "weight_decay")
        betas = group["betas"]
        try:
            if isinstance(betas, (str, bytes)):
                raise TypeError
            first, second = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair of numbers, got {betas!r}") from None
        beta1, beta2 = _real(first, "betas[0]"), _real(second, "betas[1]")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {beta2}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        return {
            "lr": lr,
            "betas": (beta1, beta2),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": bool(group["amsgrad"]),
            "maximize": bool(group["maximize"]),
            "bias_correction": bool(group["bias_correction"]),
            "decoupled_weight_decay": bool(group["decoupled_weight_decay"]),
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
        )

    def _native(self, params, grads, arrays, steps, fresh, hypers) -> None:
        _adam_step_sets(
            params,
            grads,
            arrays["exp_avg"],
            arrays["exp_avg_sq"],
            arrays["max_exp_avg_sq"],
            steps,
            hypers,
        )

    def step(self, grads: Grads) -> None:
        # Optimizer.step with the cached native call written inline rather than in _fast_call:
        # one Python call fewer (~50 ns) on the path that bounds small-tensor training loops.
        fast = self._fast
        if fast is not None:
            group = fast.group
            t = fast.t + 1
            exp_avgs, exp_avg_sqs, maxes = fast.lists
            try:
                beta1, beta2 = group["betas"]
                _adam_step_sets(
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
                    ),
                )
            except _REFUSED:
                pass
            else:
                fast.t = t  # the state dicts' 'step' catch up in _sync_steps
                return
        self._step_general(grads)

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
        )


# -- SGD ---------------------------------------------------------------------------------------


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

    Raises
    ------
    TypeError, ValueError
        As for ``Adam``, with torch's messages.
    """

    _state_arrays = ("momentum_buffer",)
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
        )

    @staticmethod
    def _validate(group: Mapping[str, Any]) -> dict[str, Any]:
        """Validated as torch.optim.SGD does."""
        lr = _real(group["lr"], "lr")
        momentum = _real(group["momentum"], "momentum")
        dampening = _real(group["dampening"], "dampening")
        weight_decay = _real(group["weight_decay"], "weight_decay")
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

    def _native(self, params, grads, arrays, steps, fresh, hypers) -> None:
        _sgd_step_sets(params, grads, arrays["momentum_buffer"], fresh, hypers)

    def _fast_call(self, group, lists, grads, t) -> None:
        params = group["params"]
        # None without momentum: refused if momentum was switched on since
        buffers = lists[0] if lists[0] is not None else [None] * len(params)
        _sgd_step_sets(params, grads, buffers, False, self._hyper_tuple(group))


# -- Adagrad -----------------------------------------------------------------------------------


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

    Raises
    ------
    TypeError, ValueError
        As for ``Adam``, with torch's messages.
    """

    _state_arrays = ("sum",)
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
        )

    @staticmethod
    def _validate(group: Mapping[str, Any]) -> dict[str, Any]:
        """Validated as torch.optim.Adagrad does."""
        lr = _real(group["lr"], "lr")
        lr_decay = _real(group["lr_decay"], "lr_decay")
        weight_decay = _real(group["weight_decay"], "weight_decay")
        initial = _real(group["initial_accumulator_value"], "initial_accumulator_value")
        eps = _real(group["eps"], "eps")
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

    def _native(self, params, grads, arrays, steps, fresh, hypers) -> None:
        _adagrad_step_sets(params, grads, arrays["sum"], steps, hypers)

    def _fast_call(self, group, lists, grads, t) -> None:
        _adagrad_step_sets(group["params"], grads, lists[0], t, self._hyper_tuple(group))


# Checkpoints name the class that wrote them; one with other state arrays is refused on load.
_CLASSES: dict[str, type[Optimizer]] = {c.__name__: c for c in (Adam, AdamW, SGD, Adagrad)}

_SET_MESSAGE = (
    "optimizer parameters need to be organized in ordered collections, but the ordering of "
    "arrays in sets will change between runs. Please use a list instead."
)
