"""8-bit optimizer state: the block-wise codes in NumPy (the definition the kernels follow).

Each state array of ``n`` elements is stored as ``codes`` (uint8, one per element) and
``scales`` (float32, one per block of ``BLOCK`` = 256 elements: the block's largest magnitude).
A code is a small float relative to its block's scale whose bits are a slice of the float32 bits
of ``y = |x| / scale``, so decoding is an integer shift and add, a reinterpretation and one
multiply (``cpp/include/fastadam/lowbit_math.hpp`` has the same formulas for the kernels):

``exp_avg`` (m)
    bit 7 is the sign of m; bits 0-6 a magnitude code ``c``: ``c = 0`` is zero, otherwise the
    float32 with bits ``0x1FC00000 + (c << 22)`` (6 exponent bits, 1 mantissa bit: 2**-63 to 1
    in steps of 33 % and 50 %) times the scale. A negative m stays negative or becomes zero.
``exp_avg_sq``, ``max_exp_avg_sq`` (v, stored as v)
    ``c = 0`` is zero, otherwise bits ``0x1FA00000 + (c << 21)`` (6 exponent, 2 mantissa bits:
    2**-64 to 1, steps of at most 25 % in v, 12.5 % in sqrt(v)) times the scale. A non-zero v is
    never stored as 0 (its code is at least 1), so ``lr * m / eps`` jumps cannot happen.

The largest element of a block is stored exactly (its code is the top one). The kernels round
stochastically, unbiased in the float bit pattern: element i at a step adds an offset taken
from ``r = (i + key) * 0x9E3779B1 mod 2**32`` (m the top 22 bits, v the low 21 bits), with
``key`` drawn from (seed, step) (``state_random``): the codes are the same on every ISA and
thread count. Without that, an exponential average whose change per step is smaller than half
a code step (v with beta2 = 0.999 changes by 0.1 %) would never move. Conversions from float32
state (``encode`` without ``random``) round to nearest.
Block maxima below 2**-126 (or not finite) are stored as zero blocks.
"""

from __future__ import annotations

import numpy as np

from .dtypes import _mix32, rounding_key

__all__ = [
    "BLOCK",
    "FORMAT_VERSION",
    "STATE_NAMES",
    "block_count",
    "decode",
    "encode",
    "state_random",
    "zeros_state",
]

BLOCK = 256
FORMAT_VERSION = 1  # the code maps above; stored with 8-bit state dicts

# The coded arrays of an 8-bit Adam state, in the kernels' argument order.
STATE_NAMES = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

_ONE_BITS = 0x3F800000
_MAPS = {  # kind: (shift, largest code, bits of code 0's neighbour base)
    "exp_avg": (22, 127, _ONE_BITS - (127 << 22)),
    "exp_avg_sq": (21, 255, _ONE_BITS - (255 << 21)),
}
_NEAREST = 0x80100000
_FLT_MIN = np.float32(2.0**-126)
_FLT_MAX = np.finfo(np.float32).max


def block_count(size: int) -> int:
    """Scales of an ``size``-element state: one per block of ``BLOCK`` elements."""
    return (size + BLOCK - 1) // BLOCK


def _kind(name: str) -> str:
    if name == "exp_avg":
        return "exp_avg"
    if name in ("exp_avg_sq", "max_exp_avg_sq"):
        return "exp_avg_sq"
    raise ValueError(f"unknown 8-bit state {name!r} (expected one of {STATE_NAMES})")


def zeros_state(size: int, amsgrad: bool = False) -> dict[str, np.ndarray]:
    """A fresh (all-zero) 8-bit Adam state for ``size`` elements: ``{name}_codes`` and
    ``{name}_scales`` for exp_avg, exp_avg_sq (and max_exp_avg_sq with amsgrad)."""
    out = {}
    for name in STATE_NAMES[: 3 if amsgrad else 2]:
        out[f"{name}_codes"] = np.zeros(size, np.uint8)
        out[f"{name}_scales"] = np.zeros(block_count(size), np.float32)
    return out


def _inverse_scales(scales: np.ndarray) -> np.ndarray:
    """1 / scale in float32, rounded up one ulp where scale * (1 / scale) < 1 (so the largest
    element gets the top code); zero blocks for scales below 2**-126 or not finite (the scales
    array is set to 0 there)."""
    ok = (scales >= _FLT_MIN) & (scales <= _FLT_MAX)
    scales[~ok] = 0
    with np.errstate(divide="ignore"):
        inv = np.where(ok, np.float32(1) / np.where(ok, scales, 1), 0).astype(np.float32)
    low = ok & (scales * inv < 1)
    inv[low] = (inv[low].view(np.int32) + 1).view(np.float32)
    return inv


def encode(
    x: np.ndarray, name: str, random: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, scales)`` of the float32 values ``x`` (flattened) as state ``name``.

    ``random``: r per element (uint32, see ``state_random``) for the kernels' stochastic
    rounding; None rounds to nearest.
    """
    shift, top, base = _MAPS[_kind(name)]
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    n = x.size
    padded = np.zeros(block_count(n) * BLOCK, np.float32)
    padded[:n] = x
    blocks = padded.reshape(-1, BLOCK)
    magnitude = np.abs(blocks)
    scales = magnitude.max(axis=1) if n else np.zeros(0, np.float32)
    inv = _inverse_scales(scales)
    y_bits = (magnitude * inv[:, None]).reshape(-1)[:n].view(np.int32).astype(np.int64)
    r = np.full(n, _NEAREST, np.int64) if random is None else random.astype(np.int64)
    if shift == 22:  # m: the top 22 bits of r, the sign in bit 7
        c = np.clip((y_bits - base + (r >> 10)) >> shift, 0, top)
        codes = c | np.where(np.signbit(x), 0x80, 0)
    else:  # v: the low 21 bits of r; non-zero bits keep a code >= 1
        c = (y_bits - base + (r & 0x1FFFFF)) >> shift
        codes = np.clip(c, np.minimum(x.view(np.uint32), 1).astype(np.int64), top)
    return codes.astype(np.uint8), scales.astype(np.float32)


def decode(codes: np.ndarray, scales: np.ndarray, name: str) -> np.ndarray:
    """The float32 values of state ``name`` from its codes and block scales (exact)."""
    shift, _top, base = _MAPS[_kind(name)]
    c = np.asarray(codes, np.int64).reshape(-1)
    magnitude = c & 0x7F if shift == 22 else c
    bits = np.where(magnitude != 0, base + (magnitude << shift), 0)
    if shift == 22:
        bits = bits | ((c & 0x80) << 24)
    y = bits.astype(np.uint32).view(np.float32)
    per_element = np.repeat(np.asarray(scales, np.float32), BLOCK)[: c.size]
    return y * per_element


def state_key(seed: int, step: int) -> int:
    """The step key of the state's stochastic rounding (distinct from the parameter's)."""
    return rounding_key(seed ^ 0x5851F42D4C957F2D, step)


def state_random(size: int, seed: int, step: int) -> np.ndarray:
    """r per element (uint32) of the kernels' state rounding at ``step``: ``(i + key) *
    0x9E3779B1 mod 2**32`` with a per-block key made from (seed, step) and the high word of i."""
    key = state_key(seed, step)
    index = np.arange(size, dtype=np.uint64)
    lo = (index & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (index >> np.uint64(32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        block_key = np.uint32(key & 0xFFFFFFFF) ^ _mix32(np.uint32(key >> 32) ^ hi)
        return (lo + block_key) * np.uint32(0x9E3779B1)
