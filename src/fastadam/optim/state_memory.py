"""Memory for optimizer state: the arrays a step or a loaded checkpoint creates."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core


def allocate_together(requests: list[tuple[dict[str, Any], str, np.ndarray, float]]) -> None:
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
        buffer = _core.zeros_state((sum(sizes),), dtype)
        offset = 0
        for (state, name, p, fill), size in zip(group, sizes):
            view = buffer[offset : offset + p.size].reshape(p.shape)
            if fill != 0.0:
                view.fill(fill)
            state[name] = view
            offset += size
