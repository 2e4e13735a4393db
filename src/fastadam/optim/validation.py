"""Checks shared by the optimizers: parameters, gradients, hyper-parameter values, loaded state.

Each raises TypeError/ValueError naming the argument as the user wrote it; the ``*_ok`` forms are
the cheap yes/no tests of the step's hot path, which builds a message only on failure.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..dtypes import is_param_dtype

# A native call refuses bad input with one of these before writing anything.
REFUSED = (TypeError, ValueError, KeyError, IndexError)

SET_MESSAGE = (
    "optimizer parameters need to be organized in ordered collections, but the ordering of "
    "arrays in sets will change between runs. Please use a list instead."
)


def check_param(p: object, name: str) -> np.ndarray:
    if not isinstance(p, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(p).__name__}")
    if not is_param_dtype(p.dtype):
        raise TypeError(
            f"{name} must be float32, float64, float16 or bfloat16 (native byte order), "
            f"got {p.dtype}"
        )
    flags = p.flags
    if not flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous: an update applied to a copy is lost")
    if not flags.aligned:
        raise ValueError(f"{name} must be aligned to its element size")
    if not flags.writeable:
        raise ValueError(f"{name} is read-only; the optimizer updates parameters in place")
    return p


def check_grad(g: object, p: np.ndarray, name: str) -> None:
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


def span(a: np.ndarray) -> tuple[int, int]:
    begin = a.__array_interface__["data"][0]
    return begin, begin + a.nbytes


def check_no_overlap(spans: list[tuple[int, int, bool, Any]]) -> None:
    """ValueError if a written span (begin, end, written, name) meets any other span."""
    spans = sorted((s for s in spans if s[0] < s[1]), key=lambda s: s[0])
    reach_any: tuple[int, int, bool, Any] | None = None
    reach_written: tuple[int, int, bool, Any] | None = None
    for s in spans:
        clash = reach_any if s[2] else reach_written
        if clash is not None and s[0] < clash[1]:
            raise ValueError(f"{label(s[3])} and {label(clash[3])} share memory")
        if reach_any is None or s[1] > reach_any[1]:
            reach_any = s
        if s[2] and (reach_written is None or s[1] > reach_written[1]):
            reach_written = s


def label(name: Any) -> str:
    """Names are built only for error messages: ("grads", i) or ("param", group, j)."""
    if isinstance(name, str):
        return name
    if name[0] == "grads":
        return f"grads[{name[1]}]"
    return f"param_groups[{name[1]}]['params'][{name[2]}]"


def param_ok(p: Any) -> bool:
    if not isinstance(p, np.ndarray) or not is_param_dtype(p.dtype):
        return False
    flags = p.flags
    return flags.c_contiguous and flags.aligned and flags.writeable


def grad_ok(g: Any, p: np.ndarray) -> bool:
    if not isinstance(g, np.ndarray) or g.dtype != p.dtype or g.shape != p.shape:
        return False
    flags = g.flags
    return flags.c_contiguous and flags.aligned


def real(value: Any, what: str) -> float:
    """A hyper-parameter as a float: a Python or NumPy real number, a 0-d real array, or
    another number that converts itself (a Decimal, a one-element tensor: what the native
    entries of the cached step read); never a string, as torch refuses one."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0 and value.dtype.kind in "biuf":
            return float(value.item())
    elif isinstance(value, numbers.Real):
        return float(value)
    elif hasattr(type(value), "__float__") and not isinstance(value, (str, bytes)):
        try:
            return float(value)
        except (TypeError, ValueError, RuntimeError):
            pass
    raise TypeError(f"{what} must be a real number, got {value!r}")


# A step count must leave room for the next step in the native 64-bit counter.
MAX_STEP = 2**63 - 2


def betas_pair(betas: Any) -> tuple[float, float]:
    """A group's ``betas``: a pair of numbers, each in [0, 1) (torch's messages)."""
    try:
        if isinstance(betas, (str, bytes)):
            raise TypeError
        first, second = betas
    except (TypeError, ValueError):
        raise TypeError(f"betas must be a pair of numbers, got {betas!r}") from None
    beta1, beta2 = real(first, "betas[0]"), real(second, "betas[1]")
    if not 0.0 <= beta1 < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {beta2}")
    return beta1, beta2


def adam_family(group: Any) -> dict[str, Any]:
    """What Adam and its family (Adamax, NAdam, RAdam) share, checked as torch checks it: lr,
    betas, eps, weight_decay and maximize, as plain values."""
    lr = real(group["lr"], "lr")
    eps = real(group["eps"], "eps")
    weight_decay = real(group["weight_decay"], "weight_decay")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    betas = betas_pair(group["betas"])
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    return {
        "lr": lr,
        "betas": betas,
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": bool(group["maximize"]),
    }


def as_step(value: Any, name: str) -> int:
    """A loaded step count, exactly: an int, a whole float, a 0-d array (a torch tensor's
    ``.numpy()``); from 0 to ``MAX_STEP``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number or a 0-d array, got {value!r}")
    a = np.asarray(value) if not isinstance(value, int) else None
    if a is None:
        step = value  # a Python int, of any size
    elif a.ndim != 0 or a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a number or a 0-d array, got {value!r}")
    elif a.dtype.kind == "f":
        x = float(a)
        if not (math.isfinite(x) and x == int(x)):
            raise ValueError(f"{name} must be a whole number, got {x}")
        step = int(x)
    else:
        step = int(a)  # exact for every integer dtype
    if not 0 <= step <= MAX_STEP:
        raise ValueError(f"{name} must be from 0 to {MAX_STEP}, got {step}")
    return step


def _is_index(x: object) -> bool:
    return (isinstance(x, numbers.Integral) and not isinstance(x, bool)) or (
        isinstance(x, str) and x.isdigit()
    )


def check_state_dict_layout(state_dict: Any) -> None:
    """The outer structure of a state dict to load, as ``torch.optim`` writes it: a mapping
    with 'state' (a mapping keyed by parameter index) and 'param_groups' (a list of mappings,
    each with a list of parameter indices under 'params')."""
    if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
        raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
    groups = state_dict["param_groups"]
    if not isinstance(groups, (list, tuple)):
        raise TypeError(f"state_dict['param_groups'] must be a list, got {type(groups).__name__}")
    for gi, group in enumerate(groups):
        where = f"state_dict['param_groups'][{gi}]"
        if not isinstance(group, Mapping) or "params" not in group:
            raise ValueError(f"{where} must be a dict with 'params'")
        params = group["params"]
        if not isinstance(params, (list, tuple)) or not all(map(_is_index, params)):
            raise TypeError(f"{where}['params'] must be a list of parameter indices (ints)")
    state = state_dict["state"]
    if not isinstance(state, Mapping):
        raise TypeError(f"state_dict['state'] must be a dict, got {type(state).__name__}")
    seen = set()
    for key in state:
        if not _is_index(key):
            raise TypeError(f"state_dict['state'] has key {key!r}: keys are parameter indices")
        if int(key) in seen:  # 0 and "0"
            raise ValueError(f"state_dict['state'] has parameter index {int(key)} twice")
        seen.add(int(key))


def check_loaded_master(sixteen_bit: bool, dtype: Any, master_weights: bool, where: str) -> None:
    """A loaded 'master_param' must belong to a 16-bit parameter (``dtype``, a NumPy or torch
    dtype) of an optimizer that keeps master copies: elsewhere it would be neither updated nor
    used, until an optimizer with master_weights=True loaded it again and wrote the stale copy
    over the parameter."""
    if not sixteen_bit:
        raise ValueError(
            f"{where}['master_param']: master copies are for float16 and bfloat16 parameters, "
            f"this one is {dtype}"
        )
    if not master_weights:
        raise ValueError(
            f"{where}['master_param']: this optimizer was built without master_weights=True; "
            "build it with master_weights=True to continue from the master copy, or drop the "
            "entry to continue from the parameter"
        )


def loaded_state(value: Any, p: np.ndarray, name: str) -> np.ndarray:
    """A loaded state array, checked (floating point, its parameter's shape), not yet copied."""
    try:
        a = np.asarray(value)
    except RuntimeError as exc:  # a tensor that requires grad
        raise TypeError(f"{name} cannot be read as an array: {exc}") from None
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {a.dtype}")
    if a.shape != p.shape:
        raise ValueError(f"{name} must have its parameter's shape {p.shape}, got {a.shape}")
    return a


# The state key behind each list argument of the native *_step_sets entries.
_STATE_KEYS = {
    "exp_avgs": "exp_avg",
    "exp_avg_sqs": "exp_avg_sq",
    "max_exp_avg_sqs": "max_exp_avg_sq",
    "momentum_buffers": "momentum_buffer",
    "state_sums": "sum",
    "masters": "master_param",
}
# The 8-bit entries' lists (exp_avg_codes, ...) are named as the state keys they hold.
_KEY_NAMED_LISTS = ("_codes", "_scales")
_LIST_ENTRY = re.compile(r"\b([a-z_]+)\[(\d+)\](?:\[\d+\])?")


def user_message(message: str, where: list[tuple[int, int, int | None]]) -> str:
    """A native refusal of a step (which names its flat argument lists: ``exp_avgs[3]``) in the
    user's terms: ``where[k]`` is (group, index in the group, index in ``grads``) of the k-th
    parameter of the native call, and the names become ``param_groups[g]['params'][j]``,
    ``grads[i]`` and ``state[param_groups[g]['params'][j]]['exp_avg']``. An index in ``grads``
    of None names the gradient ``param_groups[g]['params'][j].grad`` (torch's)."""

    def rename(m: re.Match) -> str:
        role, k = m.group(1), int(m.group(2))
        if k >= len(where):
            return m.group(0)
        gi, j, i = where[k]
        param = label(("param", gi, j))
        if role == "params":
            return param
        if role == "grads":
            return f"grads[{i}]" if i is not None else f"{param}.grad"
        if role == "steps":
            return f"state[{param}]['step']"
        if role == "hypers":
            return f"param_groups[{gi}]"
        key = _STATE_KEYS.get(role) or (
            role if role.endswith(_KEY_NAMED_LISTS) else role.removesuffix("s")
        )
        return f"state[{param}][{key!r}]"

    return _LIST_ENTRY.sub(rename, message)
