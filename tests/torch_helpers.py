"""Shared helpers of the fastadam.torch tests: a small model, fixed data, a training loop, and
the parity measure (not a test module; the test files import it by name)."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch


def small_cnn(seed: int, channels_last: bool = False) -> torch.nn.Module:
    """A conv layer, two linear layers: 4-D, 2-D and 1-D parameters, about 8k of them."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 6, 3),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 6 * 6, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 10),
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def batch(seed: int, size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(size, 2, 8, 8, generator=gen), torch.randint(0, 10, (size,), generator=gen)


def train(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    steps: int,
    scheduler: Any | None = None,
    sign: float = 1.0,
    before_step: Callable[[torch.nn.Module], None] | None = None,
) -> list[float]:
    """``steps`` full-batch steps with ``zero_grad()`` (grads set to None, so every backward
    makes new gradient tensors); returns the losses."""
    x, y = data
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        (sign * loss).backward()
        if before_step is not None:
            before_step(model)
        opt.step()
        if scheduler is not None:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(loss.item())
            else:
                scheduler.step()
        losses.append(loss.item())
    return losses


def flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def rel_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """max |a - b| / max |b| over all parameters: the parity bar's measure."""
    fa, fb = flat(a), flat(b)
    return float((fa - fb).abs().max() / fb.abs().max())


@contextlib.contextmanager
def torch_threads(n: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
