"""Optimizers for training loops on NumPy arrays, modelled on ``torch.optim``: ``Adam``,
``AdamW``, ``SGD`` and ``Adagrad``.

Each holds parameter groups and per-parameter state in its torch counterpart's layout and updates
the parameters in place with one native call per step for every group and dtype.

Modules: ``base`` (``Optimizer``, the shared machinery), ``validation`` (checks and their
messages), ``state_memory`` (where state arrays live), ``checkpoint`` (``.npz`` files), and one
module per optimizer family (``adam``, ``sgd``, ``adagrad``).
"""

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .base import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer"]
