"""Optimizers for training loops on NumPy arrays, modelled on ``torch.optim``: ``Adam``,
``AdamW``, ``SGD``, ``Adagrad``, ``RMSprop``, ``Adamax``, ``NAdam``, ``RAdam`` and ``SWATS``.

Each holds parameter groups and per-parameter state in its torch counterpart's layout (SWATS,
which torch lacks, in Adam's) and updates
the parameters in place with one native call per step for every group and dtype.

Modules: ``base`` (``Optimizer``, the shared machinery), ``validation`` (checks and their
messages), ``state_memory`` (where state arrays live), ``checkpoint`` (``.npz`` files), and one
module per optimizer family (``adam``, ``sgd``, ``adagrad``, ``rmsprop``, ``adamax``, ``nadam``,
``radam``, ``swats``; ``moments`` holds what NAdam and RAdam share).
"""

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .base import Optimizer
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD
from .swats import SWATS

__all__ = [
    "SGD",
    "SWATS",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
]
