"""Adam's 8-bit state in the optimizer classes (``Adam(..., state_bits=8)``).

A parameter with 8-bit state keeps, instead of ``exp_avg``/``exp_avg_sq``/``max_exp_avg_sq``,
the coded arrays of ``fastadam.lowbit``: ``<name>_codes`` (uint8, one per element; in
the parameter's shape in state dicts) and ``<name>_scales`` (float32, one per 256-element
block), under those keys of its state dict.
Which parameters get it: every float32, float16 or bfloat16 parameter of at least
``min_8bit_size`` elements (default 4096, as bitsandbytes' ``min_8bit_size``); smaller ones and
float64 ones keep float state. ``state_dict()`` carries the codes, the scales and
``lowbit_version`` (the code maps' version, ``fastadam.lowbit.FORMAT_VERSION``);
``state_dict(dequantize=True)`` gives float32 state in torch's layout instead. Loading takes
either kind: float state is quantized (to nearest) where this optimizer keeps 8-bit state, and
8-bit state is decoded where it keeps float state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import lowbit
from ..dtypes import state_dtype

__all__ = ["CODED_ARRAYS", "VERSION_KEY", "coded_names", "dequantized", "quantize_into"]

VERSION_KEY = "lowbit_version"
CODED_ARRAYS = tuple(
    f"{name}_{part}" for name in lowbit.STATE_NAMES for part in ("codes", "scales")
)


def coded_names(name: str) -> tuple[str, str]:
    """The codes and scales keys of float state ``name``."""
    return f"{name}_codes", f"{name}_scales"


def wants_8bit(p: np.ndarray, state_bits: int, min_8bit_size: int) -> bool:
    """Whether parameter ``p`` gets 8-bit state."""
    return state_bits == 8 and p.size >= min_8bit_size and p.dtype != np.float64


def create(state: dict[str, Any], p: np.ndarray, name: str) -> None:
    """Fresh (zero) coded arrays of state ``name`` for ``p`` in ``state``."""
    codes, scales = coded_names(name)
    state[codes] = np.zeros(p.size, np.uint8)
    state[scales] = np.zeros(lowbit.block_count(p.size), np.float32)


def _checked_coded(saved: Mapping[str, Any], name: str, shape: tuple, where: str) -> tuple:
    codes_key, scales_key = coded_names(name)
    codes = np.asarray(saved[codes_key])
    scales = np.asarray(saved.get(scales_key))
    if codes.dtype != np.uint8 or codes.shape != shape:
        raise ValueError(
            f"{where}[{codes_key!r}] must be a uint8 array of its parameter's shape {shape}, "
            f"got {codes.dtype} {codes.shape}"
        )
    blocks = lowbit.block_count(codes.size)
    if scales.dtype != np.float32 or scales.shape != (blocks,):
        raise ValueError(
            f"{where}[{scales_key!r}] must be a float32 array of shape ({blocks},), got "
            f"{scales.dtype} {scales.shape}"
        )
    return codes, scales


def dequantized(saved: Mapping[str, Any], p: np.ndarray, where: str) -> dict[str, Any]:
    """A loaded parameter state with every coded state decoded to float arrays of ``p``'s
    shape (its state dtype); other entries as they are. Checks the version first."""
    if not any(key in saved for key in CODED_ARRAYS):
        return dict(saved)
    version = saved.get(VERSION_KEY)
    number = np.asarray(version) if version is not None else None
    if number is None or number.shape != () or number != lowbit.FORMAT_VERSION:
        raise ValueError(
            f"{where} holds 8-bit state of code-map version {version!r}; this fastadam reads "
            f"version {lowbit.FORMAT_VERSION}"
        )
    out = {k: v for k, v in saved.items() if k not in CODED_ARRAYS and k != VERSION_KEY}
    for name in lowbit.STATE_NAMES:
        if coded_names(name)[0] in saved:
            if saved.get(name) is not None:
                raise ValueError(f"{where} holds both {name!r} and its codes: keep one")
            codes, scales = _checked_coded(saved, name, p.shape, where)
            values = lowbit.decode(codes, scales, name).reshape(p.shape)
            out[name] = values.astype(state_dtype(p.dtype), copy=False)
    return out


def quantize_into(state: dict[str, Any]) -> None:
    """Replace the float state arrays of a live state dict by their codes (to nearest)."""
    for name in lowbit.STATE_NAMES:
        if name in state:
            values = dict.__getitem__(state, name)
            codes, scales = coded_names(name)
            state[codes], state[scales] = lowbit.encode(values.astype(np.float32), name)
            del state[name]


def exported(state: Mapping[str, Any], shape: tuple, dequantize: bool) -> dict[str, Any]:
    """A parameter's state_dict entry: the coded arrays with the version, or (``dequantize``)
    float32 arrays in torch's layout."""
    out = {k: v for k, v in state.items() if k not in CODED_ARRAYS}
    if not any(key in state for key in CODED_ARRAYS):
        return out
    if not dequantize:  # the codes in the parameter's shape (views), so that loads can check it
        out.update(
            (k, v.reshape(shape) if k.endswith("_codes") else v)
            for k, v in state.items()
            if k in CODED_ARRAYS
        )
        out[VERSION_KEY] = np.array(lowbit.FORMAT_VERSION, dtype=np.int32)
        return out
    for name in lowbit.STATE_NAMES:
        codes, scales = coded_names(name)
        if codes in state:
            out[name] = lowbit.decode(state[codes], state[scales], name).reshape(shape)
    return out
