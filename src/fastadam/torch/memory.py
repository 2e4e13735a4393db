"""Tensor memory as the native kernels see it: NumPy views of a tensor's own storage, in memory
order, and new optimizer state laid out like its parameter.

The element-wise updates do not care about shapes, only that parameter, gradient and state
elements line up. A dense tensor (contiguous, channels_last, any permutation of a contiguous
tensor) is therefore handed over as the C-contiguous array of its storage in memory order:
``t.permute(order)`` for the order of its strides. State created here takes the parameter's
strides (``torch.preserve_format``), so the same order lines it up.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import numpy as np
import torch

from .. import _core
from ..optim.state_memory import staggered_buffer

__all__ = [
    "MemoryOrder",
    "allocate_state",
    "grad_viewer",
    "memory_order",
    "numpy_dtypes",
    "numpy_view",
    "state_dtype",
]

# None for a C-contiguous tensor, else the permutation of its dimensions that lists its memory
# outermost first.
MemoryOrder = Optional[tuple[int, ...]]

_HALF = (torch.float16, torch.bfloat16)


def memory_order(t: torch.Tensor) -> MemoryOrder:
    """The memory order of a dense tensor; ValueError for a tensor with gaps or overlaps."""
    if t.is_contiguous():
        return None
    order = tuple(sorted(range(t.dim()), key=lambda d: (-t.stride(d), d)))
    if not t.permute(order).is_contiguous():
        raise ValueError(
            f"a tensor of shape {tuple(t.shape)} and strides {t.stride()} is not dense (it has "
            "gaps or overlaps): fastadam.torch updates a parameter's storage element by "
            "element, which needs a dense tensor (contiguous, channels_last or any permutation "
            "of a contiguous tensor)"
        )
    return order


def numpy_view(t: torch.Tensor) -> np.ndarray:
    """A NumPy array over ``t``'s own memory, never a copy (``t`` on the CPU, no autograd).

    float32, float64 and float16 map to NumPy's types; bfloat16 is reinterpreted as
    ``ml_dtypes.bfloat16`` (same bits), which the native entries take once they accept it.
    """
    if t.dtype is torch.bfloat16:
        return t.view(torch.int16).numpy().view(_bfloat16())
    return t.numpy()


def grad_viewer(dtype: torch.dtype, order: MemoryOrder) -> Callable[[torch.Tensor], np.ndarray]:
    """``numpy_view`` of a gradient of a parameter of this dtype and memory order, as the
    cheapest call that does it (the step makes one per parameter). It raises for a gradient
    that ``.numpy()`` refuses (one that requires grad, sparse, on another device); one in
    another layout comes back non-contiguous, which the native entry refuses."""
    if dtype is torch.bfloat16:
        if order is None:
            return numpy_view
        return lambda g: numpy_view(g.permute(order))
    if order is None:
        return torch.Tensor.numpy
    return lambda g: g.permute(order).numpy()


@functools.cache
def _bfloat16() -> np.dtype:
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - depends on the environment
        raise TypeError(
            "bfloat16 parameters need the ml_dtypes package (pip install ml_dtypes)"
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


def state_dtype(param_dtype: torch.dtype) -> torch.dtype:
    """The dtype of a parameter's optimizer state: its own, float32 for 16-bit parameters."""
    return torch.float32 if param_dtype in _HALF else param_dtype


@functools.cache
def numpy_dtypes() -> frozenset:
    """The parameter dtypes the native entries accept, found by asking them: float32 and float64
    always; float16 and bfloat16 (with float32 state) once the build has the mixed-precision
    kernels. The probe is a one-element step on arrays made here."""
    accepted = {torch.float32, torch.float64}
    for dtype in _HALF:
        try:
            p = numpy_view(torch.zeros(1, dtype=dtype))
            g = numpy_view(torch.zeros(1, dtype=dtype))
        except TypeError:  # no ml_dtypes
            continue
        m, v = np.zeros(1, np.float32), np.zeros(1, np.float32)
        try:
            _core.adam_step_sets(
                [p],
                [g],
                [m],
                [v],
                [None],
                1,
                (0.0, 0.9, 0.999, 1e-8) + (0.0,) + (False, False, False, True),
            )
        except (TypeError, ValueError):
            continue
        accepted.add(dtype)
    return frozenset(accepted)


def allocate_state(
    requests: list[tuple[torch.Tensor, MemoryOrder, Any]],
) -> tuple[list[tuple[torch.Tensor, np.ndarray]], list[torch.Tensor]]:
    """New state tensors, one per request ``(param, order, init)``: shaped and strided like the
    parameter, of its ``state_dtype``, filled with ``init`` (a number, or a tensor to copy).
    Returns them with their NumPy views in memory order, and the buffers they are views of.

    Tensors of one dtype are views into one buffer from ``_core.zeros_state`` (huge pages once
    large), each starting on a 64-byte line, so a model's many tensors stream like one block;
    each placed against its parameter and its siblings as the NumPy optimizers place theirs
    (``staggered_buffer``: streams whose addresses agree modulo 4 KiB or 1 MiB collide in L1).
    """
    out: list[Any] = [None] * len(requests)
    bases = []
    by_dtype: dict[torch.dtype, list[int]] = {}
    for i, (p, _, _) in enumerate(requests):
        by_dtype.setdefault(state_dtype(p.dtype), []).append(i)
    for dtype, indices in by_dtype.items():
        np_dtype = np.dtype(torch.empty(0, dtype=dtype).numpy().dtype)
        slots: dict[int, int] = {}  # a parameter's state arrays so far in this call
        arrays = []
        for i in indices:
            p = requests[i][0]
            slots[id(p)] = slots.get(id(p), 0) + 1
            arrays.append((p.data_ptr(), p.numel(), slots[id(p)]))
        buffer, offsets = staggered_buffer(np_dtype, arrays)
        base = torch.from_numpy(buffer)
        bases.append(base)
        for i, offset in zip(indices, offsets):
            p, order, init = requests[i]
            n = p.numel()
            flat = base[offset : offset + n]
            if order is None:
                t = flat.view(p.shape)
                view = buffer[offset : offset + n].reshape(p.shape)
            else:
                t = flat.as_strided(p.shape, p.stride())
                view = buffer[offset : offset + n].reshape([p.shape[d] for d in order])
            if isinstance(init, torch.Tensor):
                t.copy_(init)
            elif init != 0:
                t.fill_(init)
            out[i] = (t, view)
    return out, bases
