"""fastadam for PyTorch: ``torch.optim`` optimizers whose step is fastadam's native kernel.

Swap ``torch.optim.Adam`` for ``fastadam.torch.Adam`` (likewise ``AdamW``, ``SGD``,
``Adagrad``): same constructor, parameter groups, state layout, ``state_dict``, hooks; lr
schedulers, ``clip_grad_norm_``, ``torch.amp.GradScaler`` and ``ZeroRedundancyOptimizer`` work
unchanged. Each step updates the model's CPU tensors in place through NumPy views of their own
memory (no copies), in one native call for every group and dtype.

``to_torch_state_dict`` and ``from_torch_state_dict`` move state dicts between fastadam's NumPy
optimizers (``fastadam.Adam``) and torch's.

``import fastadam`` does not import torch; this module needs it.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "fastadam.torch needs PyTorch, which is not installed. Install it with `pip install "
        "torch` (CPU-only wheels: `pip install torch --index-url "
        f"https://download.pytorch.org/whl/cpu`). Original error: {exc}"
    ) from exc

from . import optimizers as _optimizers
from .base import Optimizer
from .convert import from_torch_state_dict, to_torch_state_dict
from .optimizers import SGD, Adagrad, Adam, AdamW, generated

# Optimizers added to fastadam.optim later, with a torch.optim namesake, appear here too.
globals().update({name: getattr(_optimizers, name) for name in _optimizers.__all__})

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "from_torch_state_dict",
    "generated",
    "to_torch_state_dict",
]
__all__ += [name for name in _optimizers.__all__ if name not in __all__]
