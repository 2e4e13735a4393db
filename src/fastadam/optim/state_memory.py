"""Memory for optimizer state: the arrays a step or a loaded checkpoint creates."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from ..dtypes import state_dtype

# Where a parameter's state arrays start relative to the parameter: the k-th (exp_avg,
# exp_avg_sq, max_exp_avg_sq, ...; k = 1, 2, 3) at k * STAGGER + SHIFT bytes past it modulo
# 4 KiB, and for arrays of LARGE bytes or more at k * (LARGE_STAGGER + STAGGER) + SHIFT bytes
# past it modulo 1 MiB (the same offsets modulo 4 KiB). A step streams p, g and the state in
# lockstep. Laid end to end, the state arrays of a 2**26-element float32 parameter sat exactly
# 2**28 bytes apart, and on this project's AMD EPYC that made the step about 25 % slower than on
# separately allocated arrays: its L1 way predictor keys lines on a hash of address bits 12-27,
# so lines of the two streams in one L1 set evict each other (measured: v moved 64 bytes on was as
# slow, v moved 2 MiB on as fast as separate arrays). Staggered modulo 4 KiB, two streams' lines
# that share an L1 set are touched 8 or more lines apart in time; staggered modulo 1 MiB as well,
# their addresses differ in bits 12-27 too. SHIFT keeps the state away from a gradient at the
# parameter's own offset (NumPy's large arrays all sit at one offset) and from one 1 KiB further
# (zeros_state's next array). The padding costs under 4 KiB per array, under 1 MiB per array of
# 16 MiB or more.
PAGE = 4096
STAGGER = 1024
SHIFT = 512
LARGE = 16 << 20
LARGE_PERIOD = 1 << 20
LARGE_STAGGER = 256 << 10


def staggered_buffer(
    dtype: np.dtype, arrays: list[tuple[int, int, int]]
) -> tuple[np.ndarray, list[int]]:
    """One zeroed buffer from ``zeros_state`` for state arrays of ``dtype``, and the element
    offset in it where each array starts. ``arrays`` gives, for each, its parameter's address,
    its size in elements and its slot (1 for the parameter's first state array, 2 for the
    second, ...). Each array starts on a 64-byte line at ``slot * STAGGER + SHIFT`` bytes past
    its parameter modulo 4 KiB (modulo 1 MiB, with ``LARGE_STAGGER`` more per slot, for arrays of
    ``LARGE`` bytes or more)."""
    item = dtype.itemsize
    line = 64 // item
    sizes = [-(-n // line) * line for _, n, _ in arrays]  # rounded up to a line
    periods = [LARGE_PERIOD if n * item >= LARGE else PAGE for _, n, _ in arrays]
    room = sum(periods) - 64 * len(arrays)  # the largest padding in front of every array
    buffer = _core.zeros_state((sum(sizes) + room // item,), dtype)
    base = buffer.ctypes.data
    offsets = []
    offset = 0  # elements
    for (address, _, slot), size, period in zip(arrays, sizes, periods):
        stagger = STAGGER + (LARGE_STAGGER if period == LARGE_PERIOD else 0)
        target = (address + slot * stagger + SHIFT) % period // 64 * 64
        offset += (target - (base + offset * item)) % period // item
        offsets.append(offset)
        offset += size
    return buffer, offsets


def allocate_together(requests: list[tuple[dict[str, Any], str, np.ndarray, float]]) -> None:
    """Creates the state arrays ``state[name]`` (shaped like ``p``, filled with ``fill``) of
    ``requests`` as views into one buffer per dtype (the state dtype: float32 for a 16-bit
    parameter). ``fill`` "param" copies the parameter (a master copy).

    The buffer comes from ``zeros_state``, so once large it sits on huge pages: a model's many
    small and mid-sized tensors then get the same TLB-friendly memory as one big tensor, and their
    state streams through memory as one block. Each view starts on a 64-byte boundary, placed so
    that its offset modulo 4 KiB (1 MiB for arrays of 16 MiB and more) differs from its
    parameter's and its sibling state arrays' (see ``STAGGER``).
    """
    by_dtype: dict[np.dtype, list] = {}
    for request in requests:
        by_dtype.setdefault(state_dtype(request[2].dtype), []).append(request)
    for dtype, group in by_dtype.items():
        # Each parameter's state arrays so far (made earlier, and earlier in this group): the
        # new one takes the next slot after them.
        made: dict[int, int] = {}
        arrays = []
        for state, _, p, _ in group:
            before = made.get(id(state), sum(1 for key in state if key != "step"))
            made[id(state)] = before + 1
            arrays.append((p.ctypes.data, p.size, before + 1))
        buffer, offsets = staggered_buffer(dtype, arrays)
        for (state, name, p, fill), offset in zip(group, offsets):
            view = buffer[offset : offset + p.size].reshape(p.shape)
            if isinstance(fill, str):
                np.copyto(view, p, casting="safe")
            elif fill != 0.0:
                view.fill(fill)
            state[name] = view
