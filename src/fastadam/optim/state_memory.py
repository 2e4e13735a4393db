"""Memory for optimizer state: the arrays a step or a loaded checkpoint creates."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core

# Where a parameter's state arrays start relative to the parameter, modulo 4 KiB: the k-th state
# array (exp_avg, exp_avg_sq, max_exp_avg_sq, ...) at k * STAGGER bytes past the parameter's
# offset. A step streams p, g and the state in lockstep; when two of these streams share their
# address modulo 4 KiB (as arrays of 2**k elements laid end to end do), the CPU's L1 and its
# 4 KiB-alias checks see them collide on every line: measured at 2**26 float32 elements, one
# thread, m and v 2**28 bytes apart took 1.09 ns/element against 0.80 with v offset by 4160
# bytes. 1 KiB apart (16 cache lines) keeps the streams of one parameter in distinct L1 sets
# at every moment; distinct modulo 4 KiB, they are distinct modulo every larger power of two.
PAGE = 4096
STAGGER = 1024


def allocate_together(requests: list[tuple[dict[str, Any], str, np.ndarray, float]]) -> None:
    """Creates the state arrays ``state[name]`` (shaped like ``p``, filled with ``fill``) of
    ``requests`` as views into one buffer per dtype.

    The buffer comes from ``zeros_state``, so once large it sits on huge pages: a model's many
    small and mid-sized tensors then get the same TLB-friendly memory as one big tensor, and their
    state streams through memory as one block. Each view starts on a 64-byte boundary, placed so
    that its offset modulo 4 KiB differs from its parameter's and its sibling state arrays' by at
    least 1 KiB (``STAGGER``); the padding this costs is under 4 KiB per array.
    """
    by_dtype: dict[np.dtype, list] = {}
    for request in requests:
        by_dtype.setdefault(request[2].dtype, []).append(request)
    for dtype, group in by_dtype.items():
        item = dtype.itemsize
        line = 64 // item
        sizes = [-(-p.size // line) * line for _, _, p, _ in group]  # rounded up to a line
        # Room for the largest padding in front of every view.
        buffer = _core.zeros_state((sum(sizes) + len(group) * (PAGE - 64) // item,), dtype)
        base = buffer.ctypes.data
        offset = 0  # elements
        for (state, name, p, fill), size in zip(group, sizes):
            # This parameter's state arrays so far (those made earlier and in this loop):
            # the new one takes the next slot after them.
            slot = 1 + sum(1 for key in state if key != "step")
            target = (p.ctypes.data + slot * STAGGER) % PAGE // 64 * 64
            offset += (target - (base + offset * item)) % PAGE // item
            view = buffer[offset : offset + p.size].reshape(p.shape)
            if fill != 0.0:
                view.fill(fill)
            state[name] = view
            offset += size
