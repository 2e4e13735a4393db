"""Parameter dtypes: float32 and float64, and the 16-bit float16 and bfloat16 (NumPy's
``float16`` and ``ml_dtypes.bfloat16``, the latter only where ml_dtypes is installed), whose
optimizer state is float32.

Also the conversions of the compiled kernels written in NumPy (``fastadam.reference`` uses them):
rounding to nearest even with fastadam's NaN rule (a NaN stays NaN, made quiet, keeping its sign
and the top bits of its payload), and the reproducible stochastic rounding to bfloat16.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "BFLOAT16",  # noqa: F822 (made on first use by __getattr__)
    "FLOAT16",
    "PARAM_DTYPES",  # noqa: F822
    "is_16bit",
    "is_bfloat16",
    "is_param_dtype",
    "round_nearest",
    "round_stochastic",
    "rounding_key",
    "state_dtype",
]

FLOAT16 = np.dtype(np.float16)
_NATIVE = (np.dtype(np.float32), np.dtype(np.float64), FLOAT16)


def __getattr__(name: str) -> Any:
    # BFLOAT16 (ml_dtypes.bfloat16's dtype, or None without ml_dtypes) and PARAM_DTYPES are
    # made on first use: importing ml_dtypes costs more than the rest of fastadam's import, and
    # a user with bfloat16 arrays has imported it already.
    if name == "BFLOAT16":
        try:
            import ml_dtypes
        except ImportError:  # an optional extra: pip install "fastadam[bf16]"
            value = None
        else:
            value = np.dtype(ml_dtypes.bfloat16)
    elif name == "PARAM_DTYPES":
        bf16 = __getattr__("BFLOAT16")
        value = _NATIVE + ((bf16,) if bf16 is not None else ())
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def is_bfloat16(dtype: Any) -> bool:
    """ml_dtypes' bfloat16, recognised without importing ml_dtypes."""
    dtype = np.dtype(dtype)
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16"


def is_param_dtype(dtype: Any) -> bool:
    """A dtype the optimizers take: float32, float64, float16 or bfloat16."""
    return dtype in _NATIVE or is_bfloat16(dtype)


_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def is_16bit(dtype: Any) -> bool:
    """float16 or bfloat16."""
    dtype = np.dtype(dtype)
    return dtype == FLOAT16 or is_bfloat16(dtype)


def state_dtype(dtype: Any) -> np.dtype:
    """The dtype of the optimizer state (and master copy) of a parameter of ``dtype``."""
    return np.dtype(np.float32) if is_16bit(dtype) else np.dtype(dtype)


def _nan_bits(x32: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """fastadam's 16-bit NaN of each float32 NaN: sign, quiet bit, top of the payload."""
    u = x32.view(np.uint32)
    sign = (u >> 16) & 0x8000
    if dtype == FLOAT16:
        return (sign | 0x7E00 | ((u >> 13) & 0x3FF)).astype(np.uint16)
    return ((u >> 16) | 0x40).astype(np.uint16)


def round_nearest(x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` (float32 or float64) rounded once to nearest even in ``dtype`` (a NumPy cast, NaNs
    following fastadam's rule). Rounding a float64 value directly is the accuracy oracle."""
    dtype = np.dtype(dtype)
    x = np.asarray(x)
    if is_bfloat16(dtype) and x.dtype == np.float64:
        x = _to_bfloat16_precision(x)  # ml_dtypes would go through float32: two roundings
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is the rounding
        out = x.astype(dtype)
    nan = np.isnan(x)
    if is_16bit(dtype) and nan.any():
        out.view(np.uint16)[nan] = _nan_bits(np.asarray(x, np.float32)[nan], dtype)
    return out


def _to_bfloat16_precision(x: np.ndarray) -> np.ndarray:
    """float64 values rounded to nearest even at bfloat16's 8 significant bits (normal range;
    below 2**-126 the float32 cast that follows rounds), so that the cast to bfloat16 is exact."""
    u = x.view(np.uint64)
    lsb = np.uint64(1) << np.uint64(45)
    with np.errstate(over="ignore"):
        r = (u + (lsb >> np.uint64(1)) - np.uint64(1) + ((u >> np.uint64(45)) & np.uint64(1))) & ~(
            lsb - np.uint64(1)
        )
    out = r.view(np.float64)
    keep = ~np.isfinite(x) | (np.abs(x) < 2.0**-126)
    return np.where(keep, x, out)


def rounding_key(seed: int, step: int) -> int:
    """The per-step key of stochastic rounding (SplitMix64 of seed, then of step), as the
    kernels compute it."""

    def splitmix(z: int) -> int:
        z = (z + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    return splitmix(splitmix(seed & _MASK64) ^ (step & _MASK64))


def _mix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def round_stochastic(x32: np.ndarray, seed: int, step: int) -> np.ndarray:
    """float32 ``x32`` rounded stochastically to bfloat16, bit for bit as the kernels do it:
    element i adds the top 16 bits of hash(key(seed, step), i) below the bfloat16 lsb and
    truncates. NaNs as ``round_nearest``."""
    bfloat16 = __getattr__("BFLOAT16")
    if bfloat16 is None:
        raise ImportError("bfloat16 needs ml_dtypes: pip install ml_dtypes")
    key = rounding_key(seed, step)
    x32 = np.ascontiguousarray(x32, dtype=np.float32)
    index = np.arange(x32.size, dtype=np.uint64)
    lo = (index & _MASK32).astype(np.uint32)
    hi = (index >> np.uint64(32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        r = _mix32(_mix32(lo ^ np.uint32(key & _MASK32)) ^ hi ^ np.uint32(key >> 32))
        u = x32.reshape(-1).view(np.uint32)
        bits = ((u + (r >> np.uint32(16))) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x32.reshape(-1))
    bits[nan] = _nan_bits(x32.reshape(-1)[nan], bfloat16)
    return bits.view(bfloat16).reshape(x32.shape)
