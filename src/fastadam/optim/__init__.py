"""Optimizers for training loops on NumPy arrays, modelled on ``torch.optim``: ``Adam``,
``AdamW``, ``SGD``, ``Adagrad``, ``RMSprop``, ``Adamax``, ``NAdam`` and ``RAdam``.

Each holds parameter groups and per-parameter state in its torch counterpart's layout and updates
the parameters in place with one native call per step for every group and dtype.

Modules: ``base`` (``Optimizer``, the shared machinery), ``validation`` (checks and their
messages), ``state_memory`` (where state arrays live), ``checkpoint`` (``.npz`` files), and one
module per optimizer family (``adam``, ``sgd``, ``adagrad``, ``rmsprop``, ``adamax``, ``nadam``,
``radam``; ``moments`` holds what NAdam and RAdam share).
"""

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .base import Optimizer
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "Optimizer", "RAdam", "RMSprop"]
