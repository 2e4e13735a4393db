"""fastadam: fused, SIMD, multi-threaded optimizer steps (Adam/AdamW, SGD, Adagrad, RMSprop,
Adamax, NAdam, RAdam, SWATS) for NumPy arrays.

The update runs in place in one native pass over memory. See ``fastadam.Adam`` (and
``AdamW``, ``SGD``, ``Adagrad``, ``RMSprop``, ``Adamax``, ``NAdam``, ``RAdam``, ``SWATS``) for
torch-like optimizer classes, ``fastadam.adam_step`` for one parameter set,
``fastadam.adam_step_multi`` for many in one call (likewise ``sgd_step*`` and ``adagrad_step*``), ``fastadam.adam8bit_step``
for Adam with 8-bit state (``fastadam.lowbit``), and ``fastadam.reference`` for the same
mathematics in plain NumPy.
"""

from __future__ import annotations

import os as _os

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - depends on how the package was installed
    raise ImportError(
        "fastadam's compiled module (fastadam._core) could not be imported. Build and install "
        "the package with `pip install .` from the repository root (it needs a C++20 compiler "
        f"and CMake). Original error: {exc}"
    ) from exc

from . import dtypes, lowbit, reference
from ._core import (
    adagrad_step,
    adagrad_step_multi,
    adam8bit_step,
    adam_step,
    adam_step_multi,
    available_isas,
    get_isa,
    get_num_threads,
    set_isa,
    set_num_threads,
    sgd_step,
    sgd_step_multi,
)
from .config import show_config
from .optim import SGD, SWATS, Adagrad, Adam, Adamax, AdamW, NAdam, RAdam, RMSprop
from .scaling import DynamicLossScaler, StepReport

__all__ = [
    "SGD",
    "SWATS",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "DynamicLossScaler",
    "NAdam",
    "RAdam",
    "RMSprop",
    "StepReport",
    "adagrad_step",
    "adagrad_step_multi",
    "adam8bit_step",
    "adam_step",
    "adam_step_multi",
    "available_isas",
    "cuda",
    "dtypes",
    "get_isa",
    "get_num_threads",
    "lowbit",
    "reference",
    "set_isa",
    "set_num_threads",
    "sgd_step",
    "sgd_step_multi",
    "show_config",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # fastadam.cuda is imported on first use, so `import fastadam` stays as light as NumPy and
    # the compiled CPU module, yet `fastadam.cuda.is_available()` works without its own import.
    if name == "cuda":
        import importlib

        return importlib.import_module(".cuda", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"cuda"})


# The environment variables are checked here, at import, so that a bad value is an ImportError
# naming it rather than an error at the first large step. For both, surrounding whitespace is
# ignored and an empty value counts as unset.
# FASTADAM_ISA forces an instruction-set path for the whole process (used to test every path on
# one machine). An unknown or unsupported name is an error, never a silent fallback.
_isa = _os.environ.get("FASTADAM_ISA", "").strip()
if _isa:
    try:
        set_isa(_isa)
    except ValueError as exc:
        raise ImportError(f"FASTADAM_ISA={_os.environ['FASTADAM_ISA']!r}: {exc}") from None
# FASTADAM_NUM_THREADS sets the default thread count (an integer from 1 to 1024).
try:
    _core.default_num_threads()
except ValueError as exc:
    raise ImportError(str(exc)) from None
del _isa
