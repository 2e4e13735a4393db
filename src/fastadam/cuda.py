"""Adam/AdamW on CUDA device arrays, with the same element function as the CPU kernels.

Takes any objects exposing ``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors,
Numba device arrays) and updates them in place with one kernel launch for many tensors. PyTorch
gives the interface only for tensors that do not require grad: pass ``p.detach()`` (same memory). The
compiled part, ``fastadam._cuda``, exists only in builds made with
``pip install . -Ccmake.define.FASTADAM_CUDA=ON``; without it, or without a driver or device,
:func:`is_available` is False and the step functions raise RuntimeError.

The update is enqueued on a CUDA stream and the call returns without waiting for it, like any
CUDA library call. By default it runs on the stream the parameter array reports in its
interface (PyTorch and CuPy report their current stream), else on the default stream; it is
ordered after the work pending on every other stream the arrays report.

Results are bitwise identical to :func:`fastadam.adam_step` on the same data: the kernel runs
the same IEEE operations in the same order, with no fused multiply-add.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    from . import _cuda
except ImportError as _exc:  # a build without -DFASTADAM_CUDA=ON
    _cuda = None
    _IMPORT_ERROR: str | None = str(_exc)
else:
    _IMPORT_ERROR = None

__all__ = ["adam_step", "adam_step_multi", "device_count", "is_available", "unavailable_reason"]

_HOST_HINT = "fastadam.cuda takes device arrays; for NumPy arrays use fastadam.adam_step"
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_NAMES = (
    ("param", "params"),
    ("grad", "grads"),
    ("exp_avg", "exp_avgs"),
    ("exp_avg_sq", "exp_avg_sqs"),
    ("max_exp_avg_sq", "max_exp_avg_sqs"),
)


def unavailable_reason() -> str | None:
    """Why CUDA cannot be used by fastadam here, or None when it can. Never raises."""
    if _cuda is None:
        return (
            "fastadam was built without CUDA (fastadam._cuda is missing: "
            f"{_IMPORT_ERROR}); rebuild with pip install . -Ccmake.define.FASTADAM_CUDA=ON"
        )
    try:
        reason = _cuda.unavailable_reason()
    except RuntimeError as exc:  # pragma: no cover - the C++ side does not throw
        return f"CUDA runtime error: {exc}"
    return reason or None


def is_available() -> bool:
    """True when the CUDA module is built and a CUDA device is usable. Never raises."""
    return unavailable_reason() is None


def device_count() -> int:
    """CUDA devices visible to this process (0 without the CUDA module or a driver)."""
    if _cuda is None:
        return 0
    try:
        return int(_cuda.device_count())
    except RuntimeError:  # pragma: no cover
        return 0


class _Array:
    """What the kernel needs from one array's __cuda_array_interface__."""

    __slots__ = ("dtype", "nbytes", "pointer", "shape", "size", "stream")

    def __init__(self, obj: Any, name: str, written: bool) -> None:
        try:
            iface = obj.__cuda_array_interface__
        except AttributeError:
            raise TypeError(
                f"{name} must be a device array exposing __cuda_array_interface__, got "
                f"{type(obj).__name__}: {_HOST_HINT}"
            ) from None
        except RuntimeError as exc:  # PyTorch refuses for tensors that require grad
            raise TypeError(
                f"{name} would not give its __cuda_array_interface__ ({exc}); for a PyTorch "
                "tensor that requires grad pass tensor.detach(), which shares its memory"
            ) from None
        if not isinstance(iface, dict):
            raise TypeError(f"{name}.__cuda_array_interface__ must be a dict")
        try:
            shape = tuple(int(n) for n in iface["shape"])
            typestr = iface["typestr"]
            pointer, readonly = iface["data"]
        except (KeyError, TypeError, ValueError) as exc:
            raise TypeError(f"{name} has a malformed __cuda_array_interface__: {exc!r}") from None
        try:
            dtype = np.dtype(typestr)
        except TypeError:
            raise TypeError(f"{name} has an unknown typestr {typestr!r}") from None
        if iface.get("mask") is not None:
            raise ValueError(f"{name} has a mask; masked arrays are not supported")
        self.shape = shape
        self.dtype = dtype
        self.size = math.prod(shape)
        self.nbytes = self.size * dtype.itemsize
        self.pointer = int(pointer or 0)
        self.stream = iface.get("stream")
        if not _c_contiguous(shape, iface.get("strides"), dtype.itemsize):
            raise ValueError(f"{name} must be C-contiguous (an update applied to a copy is lost)")
        if self.size and self.pointer % dtype.itemsize:
            raise ValueError(f"{name} must be aligned to its element size")
        if written and readonly:
            raise ValueError(f"{name} must be writable")


def _c_contiguous(shape: tuple, strides: Any, itemsize: int) -> bool:
    # NumPy's rule: any stride is fine along a dimension of length 1, or when there are no
    # elements at all.
    if strides is None or 0 in shape:
        return True
    if len(strides) != len(shape):
        return False
    expected = itemsize
    for n, s in zip(reversed(shape), reversed(tuple(strides))):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _stream_handle(stream: Any) -> int:
    """A cudaStream_t as an integer, from an int or a CuPy/PyTorch/Numba stream object."""
    if hasattr(stream, "__cuda_stream__"):  # the CUDA Python stream protocol
        return int(stream.__cuda_stream__()[1])
    for attribute in ("cuda_stream", "ptr"):  # torch.cuda.Stream, cupy.cuda.Stream
        if hasattr(stream, attribute):
            return int(getattr(stream, attribute))
    handle = getattr(stream, "handle", None)  # numba.cuda stream: a ctypes c_void_p
    if handle is not None:
        return int(getattr(handle, "value", handle) or 0)
    try:
        return operator.index(stream)
    except TypeError:
        raise TypeError(
            f"stream must be an int handle or a CuPy/PyTorch/Numba stream, got "
            f"{type(stream).__name__}"
        ) from None


def _interface_stream(value: Any) -> int | None:
    # The protocol: None means no synchronisation needed; 1 and 2 are the legacy and
    # per-thread default streams, which the CUDA runtime accepts as the same handle values.
    if value is None:
        return None
    return operator.index(value)


def _run(
    sets: Sequence[tuple],
    steps: Sequence[int],
    multi: bool,
    hyper: dict,
    stream: Any,
) -> None:
    """Validate every array of every set, then hand the raw pointers to fastadam._cuda."""
    amsgrad = hyper["amsgrad"]
    count = 5 if amsgrad else 4

    def name(k: int, i: int) -> str:
        return f"{_NAMES[k][1]}[{i}]" if multi else _NAMES[k][0]

    dtype = None
    pointers, sizes, streams = [], [], []
    for i, objs in enumerate(sets):
        param = _Array(objs[0], name(0, i), True)
        if param.dtype not in _FLOAT_DTYPES or not param.dtype.isnative:
            raise TypeError(
                f"{name(0, i)} must be float32 or float64 (native byte order), got {param.dtype}"
            )
        if dtype is not None and param.dtype != dtype:
            raise TypeError(
                f"{name(0, i)} has another dtype than {name(0, 0)}: one call updates one dtype"
            )
        dtype = param.dtype
        arrays = [param]
        for k in range(1, count):
            a = _Array(objs[k], name(k, i), k != 1)
            if a.dtype != dtype:
                raise TypeError(
                    f"{name(k, i)} must have dtype {dtype} like the parameter, got {a.dtype} "
                    "(arrays are never converted: an update applied to a copy is lost)"
                )
            if a.shape != param.shape:
                raise ValueError(
                    f"{name(k, i)} must have the parameter's shape {param.shape}, got {a.shape}"
                )
            arrays.append(a)
        ptrs = [a.pointer for a in arrays] + [0] * (5 - count)
        pointers.append(tuple(ptrs))
        sizes.append(param.size)
        streams.extend(a.stream for a in arrays)
    if _cuda is None:
        raise RuntimeError(f"fastadam.cuda: CUDA is not available: {unavailable_reason()}")
    producer_streams = []
    for s in streams:
        s = _interface_stream(s)
        if s is not None and s not in producer_streams:
            producer_streams.append(s)
    if stream is None:
        handle = producer_streams[0] if producer_streams else 0
    else:
        handle = _stream_handle(stream)
    _cuda.adam_step(
        dtype.itemsize if dtype is not None else 4,
        pointers,
        sizes,
        list(steps),
        multi,
        hyper["lr"],
        hyper["betas"],
        hyper["eps"],
        hyper["weight_decay"],
        amsgrad,
        hyper["maximize"],
        hyper["decoupled"],
        hyper["bias_correction"],
        handle,
        [s for s in producer_streams if s != handle],
    )


def _as_list(obj: Any, name: str, size: int | None = None) -> list:
    if not isinstance(obj, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple")
    if size is not None and len(obj) != size:
        raise ValueError(f"{name} has {len(obj)} entries but params has {size}")
    return list(obj)


def adam_step(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    *,
    step: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    max_exp_avg_sq: Any = None,
    maximize: bool = False,
    decoupled: bool = False,
    bias_correction: bool = True,
    stream: Any = None,
) -> None:
    """One fused Adam/AdamW update of one parameter set of CUDA device arrays, in place.

    Parameters
    ----------
    param, grad, exp_avg, exp_avg_sq : device arrays
        Objects exposing ``__cuda_array_interface__`` (CuPy, PyTorch CUDA, Numba), C-contiguous,
        of one shape and one dtype (float32 or float64), on one device. param, exp_avg and
        exp_avg_sq are updated in place; grad is only read. Nothing is ever converted.
    step : int
        The 1-based step count of this update (increment it before calling).
    lr, betas, eps, weight_decay, amsgrad, maximize : as torch.optim.Adam.
    max_exp_avg_sq : device array, optional
        Required with amsgrad=True, forbidden otherwise.
    decoupled : bool
        Decoupled weight decay (AdamW) instead of L2 added to the gradient.
    bias_correction : bool
        Divide by 1 - beta**step as Adam does (default) or not.
    stream : int or stream object, optional
        The CUDA stream to enqueue on (a handle, or a CuPy/PyTorch/Numba stream). Default: the
        stream the param's interface reports, else the default stream.

    Raises
    ------
    TypeError
        For arrays without ``__cuda_array_interface__`` (NumPy arrays: use
        :func:`fastadam.adam_step`) or of a wrong dtype.
    ValueError
        For bad shapes, layouts, hyper-parameters or overlapping arrays, before anything runs.
    RuntimeError
        When fastadam was built without CUDA or no CUDA device/driver is usable.
    """
    if not amsgrad and max_exp_avg_sq is not None:
        raise ValueError("max_exp_avg_sq is only used with amsgrad=True")
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("max_exp_avg_sq is required when amsgrad=True")
    hyper = _hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction)
    _run(
        [(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)],
        [operator.index(step)],
        False,
        hyper,
        stream,
    )


def adam_step_multi(
    params: Sequence[Any],
    grads: Sequence[Any],
    exp_avgs: Sequence[Any],
    exp_avg_sqs: Sequence[Any],
    *,
    steps: int | Sequence[int],
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    max_exp_avg_sqs: Sequence[Any] | None = None,
    maximize: bool = False,
    decoupled: bool = False,
    bias_correction: bool = True,
    stream: Any = None,
) -> None:
    """Adam/AdamW update of many parameter sets of CUDA device arrays, in one launch.

    The lists are aligned element by element; every array of every set is validated before any
    is written. All params share one dtype and one device. ``steps`` is one int for all sets or
    one int per set. One kernel launch updates up to 64 tensors (1024 chunks of 65536 elements);
    longer lists take a few launches. Other arguments are as for :func:`adam_step`.
    """
    p = _as_list(params, "params")
    g = _as_list(grads, "grads", len(p))
    m = _as_list(exp_avgs, "exp_avgs", len(p))
    v = _as_list(exp_avg_sqs, "exp_avg_sqs", len(p))
    if amsgrad:
        if max_exp_avg_sqs is None:
            raise ValueError("max_exp_avg_sqs is required when amsgrad=True")
        vmax = _as_list(max_exp_avg_sqs, "max_exp_avg_sqs", len(p))
    elif max_exp_avg_sqs is not None:
        raise ValueError("max_exp_avg_sqs is only used with amsgrad=True")
    else:
        vmax = [None] * len(p)
    if isinstance(steps, int):
        step_list = [steps] * len(p)
    else:
        step_list = _as_list(steps, "steps", len(p))
        if not all(isinstance(s, int) for s in step_list):
            raise TypeError("steps must be an int or a list of ints")
    hyper = _hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction)
    _run(list(zip(p, g, m, v, vmax)), step_list, True, hyper, stream)


def _hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction) -> dict:
    # Values are checked in C++ by the CPU binding's own check_hyper (fastadam._cuda links it).
    beta1, beta2 = betas
    return {
        "lr": float(lr),
        "betas": (float(beta1), float(beta2)),
        "eps": float(eps),
        "weight_decay": float(weight_decay),
        "amsgrad": bool(amsgrad),
        "maximize": bool(maximize),
        "decoupled": bool(decoupled),
        "bias_correction": bool(bias_correction),
    }
