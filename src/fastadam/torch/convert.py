"""State dicts between ``fastadam.optim`` (NumPy arrays) and ``torch.optim`` (tensors).

Both hold the same keys in the same places (``fastadam.optim`` keeps torch's layout); only the
containers differ: NumPy arrays and 0-d arrays against tensors and 0-d float32 tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..optim.validation import as_step

# The keys of 8-bit state (fastadam.optim.lowbit_state: <name>_codes, <name>_scales).
CODED_SUFFIXES = ("_codes", "_scales")

__all__ = ["from_torch_state_dict", "to_torch_state_dict"]

# Group entries only torch's optimizers read; fastadam's NumPy optimizers have no such options.
_TORCH_ONLY = ("foreach", "fused", "capturable", "differentiable")


def to_torch_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A ``fastadam.optim`` optimizer's ``state_dict()`` in its ``torch.optim`` counterpart's
    form, ready for ``torch.optim.Adam(...).load_state_dict`` (or ``fastadam.torch``'s).

    Parameters
    ----------
    state_dict : dict
        From ``fastadam.Adam.state_dict()`` (or ``AdamW``, ``SGD``, ``Adagrad``).

    Returns
    -------
    dict
        The same structure with every array as a tensor (a copy) and ``step`` as a 0-d float32
        tensor, as torch keeps it. Parameter groups are copied; ``bias_correction`` (an option
        torch's Adam lacks) is left out.

    Raises
    ------
    ValueError
        What torch's Adam cannot continue: a group with ``bias_correction=False`` or
        ``eps_mode='keras'``, or 8-bit state (export that with ``state_dict(dequantize=True)``).
    """
    _check_shape(state_dict)
    groups = []
    for group in state_dict["param_groups"]:
        group = dict(group)
        # torch's Adam always corrects the bias and adds eps outside the square root: those
        # entries go, and other values cannot be honoured (torch ignores keys it lacks)
        if "bias_correction" in group and not group.pop("bias_correction"):
            raise ValueError(
                "a parameter group has bias_correction=False, which torch.optim's Adam cannot do"
            )
        if group.get("eps_mode", "torch") != "torch":
            raise ValueError(
                f"a parameter group has eps_mode={group['eps_mode']!r}, which torch.optim's Adam "
                "cannot do"
            )
        group.pop("eps_mode", None)
        group["params"] = list(group["params"])
        groups.append(group)
    state = {}
    for index, saved in state_dict["state"].items():
        if any(key.endswith(CODED_SUFFIXES) for key in saved):
            raise ValueError(
                f"state[{index}] holds 8-bit state, which torch.optim's Adam cannot read: "
                "export it with state_dict(dequantize=True)"
            )
        out = {}
        for key, value in saved.items():
            if key == "step":
                step = as_step(value, f"state[{index}]['step']")
                out[key] = torch.tensor(float(step), dtype=torch.float32)
            elif value is None:
                out[key] = None
            else:
                out[key] = torch.from_numpy(np.array(value, copy=True))
        state[index] = out
    return {"state": state, "param_groups": groups}


def from_torch_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A ``torch.optim`` (or ``fastadam.torch``) optimizer's ``state_dict()`` in the form of
    its ``fastadam.optim`` counterpart, ready for ``fastadam.Adam(...).load_state_dict`` and
    ``save`` (no pickle).

    Parameters
    ----------
    state_dict : dict
        From ``torch.optim.Adam.state_dict()`` (or ``AdamW``, ``SGD``, ``Adagrad``), with tensors
        on any device.

    Returns
    -------
    dict
        The same structure with every tensor as a NumPy array (a copy; bfloat16 widened to
        float32, which NumPy lacks) and ``step`` as a 0-d float32 array (float64 past 2**24).
        Parameter groups are copied, tensor hyper-parameters become floats, and the entries
        only torch reads (``foreach``, ``fused``, ``capturable``, ``differentiable``) are left
        out.
    """
    _check_shape(state_dict)
    groups = []
    for group in state_dict["param_groups"]:
        out = {key: _plain(value) for key, value in group.items() if key not in _TORCH_ONLY}
        out["params"] = list(group["params"])
        groups.append(out)
    state = {}
    for index, saved in state_dict["state"].items():
        out = {}
        for key, value in saved.items():
            if key == "step":
                step = as_step(_plain(value), f"state[{index}]['step']")
                out[key] = np.array(step, dtype=np.float32 if step < 2**24 else np.float64)
            elif isinstance(value, torch.Tensor):
                t = value.detach().to("cpu")
                if t.dtype is torch.bfloat16:
                    t = t.float()
                out[key] = t.numpy().copy()
            else:
                out[key] = value
        state[index] = out
    return {"state": state, "param_groups": groups}


def _plain(value: Any) -> Any:
    """Tensor hyper-parameters (torch allows a tensor lr or betas) as Python numbers."""
    if isinstance(value, torch.Tensor):
        x = value.item()
        return x if not isinstance(x, float) or math.isfinite(x) else float(x)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _check_shape(state_dict: Any) -> None:
    if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
        raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
