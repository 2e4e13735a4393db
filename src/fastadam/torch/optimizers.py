"""The torch optimizers: each pairs a ``fastadam.optim`` class with its ``torch.optim`` namesake.

A new NumPy optimizer of ``fastadam.optim`` whose namesake exists in ``torch.optim`` gets its
torch class here without new code (``generated``); declaring it below only adds a docstring.
"""

from __future__ import annotations

import torch

from .. import optim as _optim
from ..optim.nadam import with_mu_product
from .base import Optimizer

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "NAdam", "generated"]

_SWAP = (
    "Its constructor is ``torch.optim.{name}``'s (same arguments, defaults and parameter-group "
    "keys; ``foreach`` and ``fused`` are accepted and ignored, the step always being one fused "
    "native call), state and ``state_dict`` are in ``torch.optim.{name}``'s layout, and either "
    "class loads the other's state dict."
)


class Adam(Optimizer, numpy_class=_optim.Adam, torch_class=torch.optim.Adam):
    __doc__ = (
        "``torch.optim.Adam`` for CPU tensors, stepped by fastadam's fused native kernel.\n\n"
        + _SWAP.format(name="Adam")
        + " Extra keyword: ``bias_correction`` (default True), as ``fastadam.Adam``."
    )


class AdamW(Optimizer, numpy_class=_optim.AdamW, torch_class=torch.optim.AdamW):
    __doc__ = (
        "``torch.optim.AdamW`` (decoupled weight decay) for CPU tensors, stepped by fastadam's "
        "fused native kernel.\n\n"
        + _SWAP.format(name="AdamW")
        + " Extra keyword: ``bias_correction`` (default True)."
    )


class SGD(Optimizer, numpy_class=_optim.SGD, torch_class=torch.optim.SGD):
    __doc__ = (
        "``torch.optim.SGD`` (momentum, dampening, Nesterov) for CPU tensors, stepped by "
        "fastadam's native kernel.\n\n" + _SWAP.format(name="SGD")
    )


class Adagrad(Optimizer, numpy_class=_optim.Adagrad, torch_class=torch.optim.Adagrad):
    __doc__ = (
        "``torch.optim.Adagrad`` for CPU tensors, stepped by fastadam's native kernel; state is "
        "created with the parameters, as torch does.\n\n" + _SWAP.format(name="Adagrad")
    )


class NAdam(Optimizer, numpy_class=_optim.NAdam, torch_class=torch.optim.NAdam):
    __doc__ = (
        "``torch.optim.NAdam`` for CPU tensors, stepped by fastadam's native kernel.\n\n"
        + _SWAP.format(name="NAdam")
        + " ``mu_product`` is computed from the step count and the group's ``betas[0]`` and "
        "``momentum_decay`` in float32, as torch keeps it (``fastadam.NAdam``): "
        "``state_dict()`` holds it for torch, a loaded one is not read."
    )

    def state_dict(self) -> dict:
        """torch's ``state_dict``, with each parameter's ``mu_product`` (a 0-d float32 tensor)."""
        out = super().state_dict()
        with_mu_product(out, lambda x: torch.tensor(x, dtype=torch.float32))
        return out


def generated(numpy_class: type[_optim.Optimizer]) -> type[Optimizer]:
    """The torch class of a ``fastadam.optim`` optimizer whose namesake is in ``torch.optim``.

    It assumes what every ``fastadam.optim`` optimizer promises: torch's hyper-parameter names
    and state layout.
    """
    name = numpy_class.__name__
    torch_class = getattr(torch.optim, name, None)
    if not (isinstance(torch_class, type) and issubclass(torch_class, torch.optim.Optimizer)):
        raise ValueError(f"torch.optim has no optimizer named {name}")  # noqa: TRY004
    doc = (
        f"``torch.optim.{name}`` for CPU tensors, stepped by fastadam's native kernel "
        f"(``fastadam.optim.{name}``).\n\n" + _SWAP.format(name=name)
    )
    return type(
        name,
        (Optimizer,),
        {"__doc__": doc, "__module__": __name__, "__qualname__": name},
        numpy_class=numpy_class,
        torch_class=torch_class,
    )


def _generate_the_rest() -> None:
    for name in _optim.__all__:
        cls = getattr(_optim, name)
        if (
            name not in globals()
            and isinstance(cls, type)
            and issubclass(cls, _optim.Optimizer)
            and cls is not _optim.Optimizer
            and isinstance(getattr(torch.optim, name, None), type)
        ):
            globals()[name] = generated(cls)
            __all__.append(name)


_generate_the_rest()
